"""Public sources for the sentiment task (3 classes: negative / neutral / positive).

convmon's definition: the sentiment of the message's author.
- negative: complaint, anger, sadness, distress, disappointment, hostility
- positive: satisfaction, thanks, joy, praise
- neutral: factual statements, questions, requests without affect
Rows whose source label is mixed or ambiguous are dropped, never forced into a class.

Train:
- goemotions: Reddit comments (GoEmotions), 27 emotions + neutral grouped into sentiment with the
  authors' own grouping; conversational, the closest public match to chat turns.
- clinc_requests: requests to a virtual assistant (CLINC150), neutral by construction (task
  requests), plus the "thank_you" intent as positive; gives neutral user-prompt style text.
Eval (never trained on):
- emobank: MASC sentences (blogs, essays, fiction, letters, newspapers, travel guides) with
  continuous valence ratings, thresholded into 3 classes; edited prose, unlike Reddit or assistant
  requests, so it measures cross-style generalisation with the same 3-class metric.

Excluded on purpose (see the data card): the reserved sentiment benchmarks; EmoBank's
SemEval-2007 Task 14 headline subset (a SemEval sentiment/emotion task) and EmoBank's pilot folder
(built on the Stanford treebank); DynaSent (licence fine, CC BY 4.0, but its only file in
cgpotts/dynasent, dynasent-v1.1.zip, is over the mirror's size limit and no licensed copy of the
jsonl files was found).
"""

from __future__ import annotations

import csv
import io
import json

from convmon_dev.modelsuite.public.sources import GitFile, Row, Source, clean_text, dedup_key, stable_hash

MIN_CHARS, MAX_CHARS = 3, 2000


def _keep(text: str) -> bool:
    return MIN_CHARS <= len(text) <= MAX_CHARS


def _finish(rows: list[Row], per_label_cap: dict[str, int] | None = None) -> list[Row]:
    """Clean, length-filter, drop exact duplicates (first kept; a text seen with two different labels
    is dropped altogether), then optionally cap each label by a deterministic text-hash sample."""
    by_key: dict[str, Row] = {}
    conflicted: set[str] = set()
    for r in rows:
        text = clean_text(r["text"])
        if not _keep(text):
            continue
        k = dedup_key(text)
        if not k:
            continue
        if k in by_key:
            if by_key[k]["label"] != r["label"]:
                conflicted.add(k)
            continue
        by_key[k] = {"text": text, "label": r["label"], "tag": r.get("tag", "")}
    out = [r for k, r in by_key.items() if k not in conflicted]
    if per_label_cap:
        kept: list[Row] = []
        for label in ("negative", "neutral", "positive"):
            group = [r for r in out if r["label"] == label]
            cap = per_label_cap.get(label)
            if cap is not None and len(group) > cap:
                group = sorted(group, key=lambda r: stable_hash("cap:" + dedup_key(r["text"])))[:cap]
            kept.extend(group)
        out = kept
    return out


# --------------------------------------------------------------------------- GoEmotions

GOEMO_REPO = "monologg/GoEmotions-pytorch"
GOEMO_COMMIT = "b75f9d3a8b76bc1060687925b04ca98a1b8ea66b"
GOEMO_SPLITS = ["data/original/train.tsv", "data/original/dev.tsv", "data/original/test.tsv"]
GOEMO_LABELS = "data/original/labels.txt"

# The GoEmotions authors' sentiment grouping, google-research/google-research
# goemotions/data/sentiment_dict.json (same grouping as the "group" taxonomy of the paper).
GOEMO_POSITIVE = {"amusement", "excitement", "joy", "love", "desire", "optimism", "caring", "pride",
                  "admiration", "gratitude", "relief", "approval"}
GOEMO_NEGATIVE = {"fear", "nervousness", "remorse", "embarrassment", "disappointment", "sadness", "grief",
                  "disgust", "anger", "annoyance", "disapproval"}
GOEMO_AMBIGUOUS = {"realization", "surprise", "curiosity", "confusion"}
GOEMO_CAP = {"negative": 4500, "neutral": 3000, "positive": 4500}


def _goemo_group(emotion: str) -> str:
    if emotion == "neutral":
        return "neutral"
    if emotion in GOEMO_POSITIVE:
        return "positive"
    if emotion in GOEMO_NEGATIVE:
        return "negative"
    if emotion in GOEMO_AMBIGUOUS:
        return "ambiguous"
    raise ValueError(f"GoEmotions: unknown emotion {emotion!r}")


def read_goemotions(git: GitFile) -> list[Row]:
    names = [n.strip() for n in git.read_text(GOEMO_LABELS).splitlines() if n.strip()]
    if len(names) != 28 or names[-1] != "neutral":
        raise SystemExit(f"GoEmotions: unexpected label list ({len(names)} names)")
    rows: list[Row] = []
    for path in GOEMO_SPLITS:
        for rec in csv.reader(io.StringIO(git.read_text(path)), delimiter="\t"):
            if len(rec) != 3:
                raise SystemExit(f"GoEmotions {path}: malformed row {rec[:1]!r}")
            text, ids = rec[0], rec[1]
            emotions = sorted({names[int(i)] for i in ids.split(",") if i.strip()})
            groups = {_goemo_group(e) for e in emotions}
            if len(groups) != 1 or "ambiguous" in groups:
                continue  # mixed (e.g. joy+sadness, neutral+anger) or ambiguous-only: dropped
            rows.append({"text": text, "label": groups.pop(), "tag": "+".join(emotions)})
    return _finish(rows, GOEMO_CAP)


# --------------------------------------------------------------------------- CLINC150

CLINC_REPO = "clinc/oos-eval"
CLINC_COMMIT = "828f8093932c8fe6ca7936c3d2e52903b1c523de"
CLINC_PATH = "data/data_full.json"
CLINC_POSITIVE = {"thank_you"}
# Intents dropped: social/phatic or one-word turns whose sentiment is not "a request without affect"
# (greeting, goodbye, yes, no, maybe, cancel), and intents whose queries are often distressed or
# complaining (lost or damaged cards, fraud, blocked accounts, declined cards, lost luggage, a dead
# battery, "you're talking too fast i don't understand you"), plus meaning_of_life (philosophical).
CLINC_DROP = {"greeting", "goodbye", "yes", "no", "maybe", "cancel", "report_fraud", "report_lost_card",
              "damaged_card", "account_blocked", "card_declined", "lost_luggage", "jump_start", "change_speed",
              "meaning_of_life"}
CLINC_CAP = {"neutral": 2850}


def read_clinc(git: GitFile) -> list[Row]:
    data = json.loads(git.read_text(CLINC_PATH))
    rows: list[Row] = []
    for split in ("train", "val", "test", "oos_train", "oos_val", "oos_test"):
        for text, intent in data[split]:
            if intent in CLINC_DROP:
                continue
            label = "positive" if intent in CLINC_POSITIVE else "neutral"
            rows.append({"text": text, "label": label, "tag": intent})
    # Every thank_you row is kept; neutral requests are capped so the source stays a minority of the
    # neutral class (the lower-case, unpunctuated CLINC style must not become "the" neutral style).
    return _finish(rows, CLINC_CAP)


# --------------------------------------------------------------------------- EmoBank (eval)

EMOBANK_REPO = "JULIELab/EmoBank"
EMOBANK_COMMIT = "248ce2a43e165a66d31aeaed83cff9641d6654e0"
EMOBANK_PATHS = ["corpus/emobank.csv", "corpus/meta.tsv"]
EMOBANK_NEG_MAX, EMOBANK_NEU_RANGE, EMOBANK_POS_MIN = 2.5, (2.9, 3.1), 3.5
EMOBANK_CAP = {"neutral": 2000}


def read_emobank(git: GitFile) -> list[Row]:
    meta = {r["id"]: r["category"].strip() for r in csv.DictReader(io.StringIO(git.read_text(EMOBANK_PATHS[1])),
                                                                   delimiter="\t")}
    rows: list[Row] = []
    for r in csv.DictReader(io.StringIO(git.read_text(EMOBANK_PATHS[0]))):
        category = meta.get(r["id"])
        if category is None:
            raise SystemExit(f"EmoBank: no meta row for {r['id']}")
        if category == "SemEval":
            continue  # SemEval-2007 Task 14 headlines: a SemEval affect task, excluded
        v = float(r["V"])
        if v <= EMOBANK_NEG_MAX:
            label = "negative"
        elif EMOBANK_NEU_RANGE[0] <= v <= EMOBANK_NEU_RANGE[1]:
            label = "neutral"
        elif v >= EMOBANK_POS_MIN:
            label = "positive"
        else:
            continue  # weakly valenced (2.5 < V < 2.9 or 3.1 < V < 3.5): ambiguous, dropped
        rows.append({"text": r["text"], "label": label, "tag": category})
    return _finish(rows, EMOBANK_CAP)


# --------------------------------------------------------------------------- sources

SOURCES: list[Source] = [
    Source(
        id="goemotions", task="sentiment", role="train", repo=GOEMO_REPO, commit=GOEMO_COMMIT,
        paths=GOEMO_SPLITS + [GOEMO_LABELS],
        licence="Apache-2.0",
        licence_evidence=("LICENSE file at that commit: Apache License 2.0. The data files are byte-identical "
                          "in length and content spot-checks to google-research/google-research goemotions/data "
                          "(Apache-2.0 repository; official dataset card google-research-datasets/go_emotions: "
                          "apache-2.0; some catalogues list CC BY 4.0 - both allowed)."),
        citation=("Demszky et al. 2020, GoEmotions: A Dataset of Fine-Grained Emotions, ACL 2020 "
                  "(copy: monologg/GoEmotions-pytorch)."),
        labels=("Reddit comments with 1-3 of 27 emotions or neutral (rater-agreement split files). Grouped with "
                "the authors' sentiment_dict.json: positive = admiration, amusement, approval, caring, desire, "
                "excitement, gratitude, joy, love, optimism, pride, relief; negative = anger, annoyance, "
                "disappointment, disapproval, disgust, embarrassment, fear, grief, nervousness, remorse, sadness; "
                "neutral = neutral. Ambiguous group (confusion, curiosity, realization, surprise) dropped. "
                "Tag = the row's emotions joined by '+'."),
        filters=("train+dev+test files pooled; rows whose emotions fall in more than one group (including "
                 "neutral + an emotion) or in the ambiguous group dropped; clean_text; 3-2000 chars; exact "
                 "duplicates dropped (texts seen with conflicting labels dropped entirely); each label capped by "
                 "text hash for balance (negative 4,500, neutral 3,000, positive 4,500; CLINC adds neutral). "
                 "[NAME]/[RELIGION] masks from the source kept as-is."),
        read=read_goemotions, max_rows=12000,
    ),
    Source(
        id="clinc_requests", task="sentiment", role="train", repo=CLINC_REPO, commit=CLINC_COMMIT,
        paths=[CLINC_PATH],
        licence="CC-BY-3.0",
        licence_evidence="LICENSE file at that commit: Creative Commons Attribution 3.0 Unported (legal code).",
        citation=("Larson et al. 2019, An Evaluation Dataset for Intent Classification and Out-of-Scope "
                  "Prediction, EMNLP-IJCNLP 2019 (CLINC150)."),
        labels=("Crowdsourced requests to a task-oriented assistant, labelled with 150 intents (+ out-of-scope). "
                "No sentiment annotation: intent 'thank_you' -> positive; every other kept intent and the "
                "out-of-scope queries -> neutral (requests and questions without affect). Tag = intent."),
        filters=("all splits of data_full.json pooled; intents dropped: greeting, goodbye, yes, no, maybe, cancel "
                 "(phatic/one-word), report_fraud, report_lost_card, damaged_card, account_blocked, card_declined, "
                 "lost_luggage, jump_start, change_speed (often distressed or complaining), meaning_of_life; "
                 "clean_text; 3-2000 chars; exact duplicates dropped; neutral capped at 2,850 by text hash "
                 "(all thank_you rows kept). Texts are lower-case and unpunctuated (a style cue the trainer may "
                 "want to vary)."),
        read=read_clinc, max_rows=3000,
    ),
    Source(
        id="emobank", task="sentiment", role="eval", repo=EMOBANK_REPO, commit=EMOBANK_COMMIT,
        paths=EMOBANK_PATHS,
        licence="CC-BY-SA-4.0",
        licence_evidence="README.md at that commit, section License: 'licensed under CC-BY-SA 4.0'.",
        citation=("Buechel & Hahn 2017, EmoBank: Studying the Impact of Annotation Perspective and Representation "
                  "Format on Dimensional Emotion Analysis, EACL 2017; text from MASC (Ide et al. 2010)."),
        labels=("Valence V (1-5, mean of writer- and reader-perspective ratings, corpus/emobank.csv): "
                "V <= 2.5 -> negative; 2.9 <= V <= 3.1 -> neutral; V >= 3.5 -> positive. Tag = genre "
                "(blog, essays, fiction, letters, newspaper, travel-guides)."),
        filters=("SemEval category (headlines) dropped; weakly valenced rows (2.5 < V < 2.9, 3.1 < V < 3.5) "
                 "dropped as ambiguous; clean_text; 3-2000 chars; exact duplicates dropped; neutral capped at "
                 "2,000 by text hash."),
        read=read_emobank,
    ),
]
