"""Toxicity task: public labelled sources.

convmon's label: toxic (1) = insulting, harassing, threatening, demeaning or hateful toward a person or
group (slurs used against someone, dehumanising statements, calls for violence). Not toxic (0):
untargeted profanity, frustration, quoting/reporting an insult to complain about it, counter-speech,
academic discussion, identity terms in neutral contexts, blunt but civil disagreement.

Sources (see each `Source` for licence evidence, mapping and filters):
- stormfront  (train) sentences from a white-supremacist forum, hate / noHate.
- edos        (train) Reddit and Gab posts, sexist / not sexist (SemEval-2023 Task 10).
- toxigen_seeds (train) ToxiGen's human-written seed statements about 16 groups: implicit hate /
  neutral or positive mentions of the same groups (hard negatives for identity terms).
- toxichat    (train) Reddit threads and chatbot replies, offensive toward a person or group / safe
  (Baheti et al. 2021; not LMSYS ToxicChat).
- diasafety_offending_user (train) dialogue replies that insult, mock or belittle the person they
  answer / do not (DiaSafety's "Offending User" category).
- openai_moderation (train) OpenAI's moderation evaluation set: hate or harassment / neither.
- hatecheck   (eval)  functional tests, hateful / non-hateful, tagged by functionality.
- convabuse   (eval)  what users typed to two conversational agents, abusive / not.

The eval sources differ in style from the train ones on purpose: HateCheck is short templated
test cases that probe the hard negatives of our definition (counter-speech, quoting, negation,
untargeted profanity, reclaimed slurs); ConvAbuse is human-written chat typed at a bot, the
closest public data to convmon's own traffic. Neither is ever trained on.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import subprocess

from convmon_dev.modelsuite.public.sources import GitFile, Row, Source, clean_text, dedup_key

MAX_CHARS = 2000

_user = re.compile(r"\[USER\]|@\w+")
_url = re.compile(r"\[URL\]|https?://\S+")


def _norm(text: str) -> str:
    """clean_text plus the placeholder convention: mentions -> "@user", links -> "http"."""
    return clean_text(_url.sub("http", _user.sub("@user", text)))


def _finish(rows: list[Row], key=dedup_key) -> list[Row]:
    """Drop empty / too short / too long texts and exact duplicates (first occurrence wins;
    a duplicate whose label disagrees with the kept one removes both)."""
    kept: dict[str, Row] = {}
    clash: set[str] = set()
    for r in rows:
        t = r["text"]
        if len(t) < 3 or len(t) > MAX_CHARS:
            continue
        k = key(t)
        if not dedup_key(t):
            continue
        if k in kept:
            if kept[k]["label"] != r["label"]:
                clash.add(k)
            continue
        kept[k] = r
    return [r for k, r in kept.items() if k not in clash]


def _csv(git: GitFile, path: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(git.read_text(path))))


# --- Insult / slur lexicon used only to drop *negatives* of single-axis sources -------------------
# EDOS labels sexism only, so its "not sexist" class contains racist slurs and personal insults
# ("you're an idiot", "hey f*ggot") that are toxic under convmon's definition. Such negatives are
# dropped (not relabelled). Untargeted profanity (fuck, shit, hell, damn) is deliberately NOT in the
# lexicon, so "holy shit that worked"-style negatives stay.
_INSULT = re.compile(
    r"\b(idiots?|idiotic|morons?|moronic|retards?|retarded|imbeciles?|stupid|dumbass\w*|dumb ?fucks?|"
    r"scum\w*|cunts?|twats?|bitch\w*|whores?|sluts?|skanks?|bastards?|assholes?|arseholes?|"
    r"douche\w*|jackass\w*|shitheads?|dickheads?|pieces? of shit|fuck (?:you|off|him|her|them)|"
    r"(?:go )?kill (?:yo)?urself|kys|stfu|shut (?:the fuck )?up|"
    r"n[i1]gg\w*|f[a4]gg?\w*|f[a4]gs?|dykes?|trann\w*|k[i1]kes?|spics?|chinks?|wetbacks?|"
    r"towelheads?|sand ?n\w*|coons?|darkies|muzzies|savages?|vermin|subhumans?|"
    r"cucks?|soy ?boys?|libtards?|feminazis?|dindus?)\b",
    re.I,
)


# --- Stormfront (de Gibert et al. 2018) ----------------------------------------------------------------

def _read_dir(git: GitFile, folder: str) -> dict[str, bytes]:
    """All blobs directly under `folder` (name -> bytes), with one `git ls-tree` and one
    `git cat-file --batch` (one subprocess for ~11k small files, not one per file)."""
    gd = str(git.git_dir)
    listing = subprocess.run(["git", "--git-dir", gd, "ls-tree", "-z", f"{git.commit}:{folder}"],
                             check=True, capture_output=True).stdout.decode()
    entries = []  # (name, sha)
    for item in listing.split("\0"):
        if not item:
            continue
        meta, name = item.split("\t", 1)
        _mode, kind, sha = meta.split()
        if kind == "blob":
            entries.append((name, sha))
    out = subprocess.run(["git", "--git-dir", gd, "cat-file", "--batch"],
                         input="".join(sha + "\n" for _, sha in entries).encode(),
                         check=True, capture_output=True).stdout
    res: dict[str, bytes] = {}
    pos = 0
    for name, _sha in entries:
        nl = out.index(b"\n", pos)
        size = int(out[pos:nl].split()[2])
        res[name] = out[nl + 1:nl + 1 + size]
        pos = nl + 1 + size + 1  # blob + trailing newline
    return res


def _read_stormfront(git: GitFile) -> list[Row]:
    meta = _csv(git, "annotations_metadata.csv")
    labels = {m["file_id"]: m["label"] for m in meta if m["label"] in ("hate", "noHate")}
    blobs = _read_dir(git, "all_files")
    rows = []
    for i in sorted(labels):
        if f"{i}.txt" not in blobs:
            raise SystemExit(f"{git.git_dir}: all_files/{i}.txt missing at {git.commit}")
        text = _norm(blobs[f"{i}.txt"].decode("utf-8", errors="replace"))
        hate = labels[i] == "hate"
        rows.append({"text": text, "label": int(hate), "tag": "hate" if hate else "noHate"})
    return _finish(rows)


# --- EDOS (Kirk et al. 2023) ---------------------------------------------------------------------------

_EDOS_TAG = {
    "1. threats, plans to harm and incitement": "sexist_threat",
    "2. derogation": "sexist_derogation",
    "3. animosity": "sexist_animosity",
    "4. prejudiced discussions": "sexist_prejudiced_discussion",
}


def _read_edos(git: GitFile) -> list[Row]:
    rows = []
    for r in _csv(git, "data/edos_labelled_aggregated.csv"):
        text = _norm(r["text"])
        if r["label_sexist"] == "sexist":
            rows.append({"text": text, "label": 1, "tag": _EDOS_TAG.get(r["label_category"], "sexist")})
        elif r["label_sexist"] == "not sexist":
            if _INSULT.search(text):
                continue  # possibly toxic toward a non-gender target: not a safe negative
            rows.append({"text": text, "label": 0, "tag": "not_sexist"})
    return _finish(rows)


# --- HateCheck (Röttger et al. 2021) ----------------------------------------------------------------

# Functionalities whose gold label disagrees with convmon's definition: HateCheck calls abuse of
# individuals ("I hate you", "you are a disgrace") and of non-protected groups ("waiters are scum")
# non-hateful, because it tests *hate speech*; convmon calls insults toward a person or group toxic.
# These cases are dropped rather than relabelled.
_HATECHECK_DROP = {"target_indiv_nh", "target_group_nh"}


def _read_hatecheck(git: GitFile) -> list[Row]:
    rows = []
    for r in _csv(git, "test_suite_cases.csv"):
        f = r["functionality"]
        if f in _HATECHECK_DROP:
            continue
        rows.append({"text": clean_text(r["test_case"]), "label": int(r["label_gold"] == "hateful"), "tag": f})
    # Duplicates by lower-cased text, not dedup_key: the spelling-perturbation tests ("I h a t e
    # women", "Ihate women") differ from their originals only in spaces/punctuation, which
    # dedup_key ignores; they are the point of those tests and this source is never trained on.
    return _finish(rows, key=str.lower)


# --- ConvAbuse (Cercas Curry et al. 2021) -------------------------------------------------------------

# Note: in the split files the transphobic column of annotators 7 and 8 is headed "Annotator6_transphobic"
# (a typo in the source); transphobic tags from those annotators are therefore not counted.
_CA_TYPES = ("sexist", "sex_harassment", "intellectual", "racist", "homophobic", "transphobic", "ableist")


def _read_convabuse(git: GitFile) -> list[Row]:
    rows = []
    for path in ("2_splits/ConvAbuseEMNLPtrain.csv", "2_splits/ConvAbuseEMNLPvalid.csv",
                 "2_splits/ConvAbuseEMNLPtest.csv"):
        for r in _csv(git, path):
            n = abusive = 0
            types: dict[str, int] = {}
            for a in range(1, 9):
                p = f"Annotator{a}_"
                vals = {k: r.get(p + "is_abuse." + k, "") for k in ("1", "0", "-1", "-2", "-3")}
                if not any(v.strip() for v in vals.values()):
                    continue  # this annotator did not label this example
                n += 1
                if any(vals[k].strip() in ("1", "1.0") for k in ("-1", "-2", "-3")):
                    abusive += 1
                    for t in _CA_TYPES:
                        if r.get(p + t, "").strip() in ("1", "1.0"):
                            types[t] = types.get(t, 0) + 1
            if n == 0:
                continue
            if abusive * 2 > n:
                label = 1
                top = max(types.items(), key=lambda kv: (kv[1], kv[0]), default=None)
                tag = f"abuse_{top[0]}" if top and top[1] * 2 > n else "abuse_general"
            elif abusive == 0:
                label, tag = 0, "not_abusive"
            else:
                continue  # annotators split (some but not most called it abusive): dropped
            rows.append({"text": _norm(r["user"]), "label": label, "tag": tag})
    return _finish(rows)


# --- ToxiGen seed statements (Hartvigsen et al. 2022) ---------------------------------------------

_TOXIGEN_GROUPS = ("asian", "bisexual", "black", "chinese", "immigrant", "jewish", "latino", "lgbtq",
                   "mental_disability", "mexican", "middle_east", "muslim", "native_american",
                   "physical_disability", "trans", "women")
# (there is no prompts/neutral_trans_1k.txt at the pinned commit)
TOXIGEN_PATHS = [f"prompts/{kind}_{g}_1k.txt" for kind in ("hate", "neutral") for g in _TOXIGEN_GROUPS
                 if (kind, g) != ("neutral", "trans")]


_TOXIGEN_TAIL = re.compile(r'(?:\\+|",|,)$')
_TOXIGEN_SEP = re.compile(r"\\n|(?<=\S)- (?=\S)|(?<=[.!?]) - ")


def _read_toxigen(git: GitFile) -> list[Row]:
    """Each prompt line is ~6 human-written statements about one group, written as
    "- s1\\n- s2\\n-...\\n-" (a literal backslash-n); the same statements recur across the 1,000
    prompts of a file, so the unique statements are a few dozen per file."""
    rows = []
    for path in TOXIGEN_PATHS:
        hate = path.startswith("prompts/hate_")
        group = path[len("prompts/hate_" if hate else "prompts/neutral_"):-len("_1k.txt")]
        for line in git.read_text(path).splitlines():
            # a few lines also join two statements with "- " and no newline ("...gay guys!- Its ...")
            for part in _TOXIGEN_SEP.split(line):
                # strip copy-paste leftovers at the end: backslashes, '",' and ','
                text = _TOXIGEN_TAIL.sub("", clean_text(part.strip().lstrip("-")))
                if text:
                    rows.append({"text": text, "label": int(hate), "tag": f"{'hate' if hate else 'neutral'}_{group}"})
    return _finish(rows)



# --- ToxiChat (Baheti et al. 2021) ------------------------------------------------------------------

TOXICHAT_PATHS = ["data/ToxiChat/train.jsonl", "data/ToxiChat/dev.jsonl", "data/ToxiChat/test.jsonl"]
# offense targets that are one person (the rest are groups: women, LGBTQ folks, leftists, ...)
_TOXICHAT_PERSON = {"individual/redditor", "comment author", "celebrity/personality"}
_title = re.compile(r"^\s*Title:\s*")


def _read_toxichat(git: GitFile) -> list[Row]:
    """Every utterance of the 2,000 annotated threads: the Reddit turns and the two chatbot
    replies (DialoGPT, GPT-3) that end each thread, each labelled Offensive/Safe with its targets."""
    rows = []
    for path in TOXICHAT_PATHS:
        for line in git.read_text(path).splitlines():
            if not line.strip():
                continue
            conv = json.loads(line)
            turns = [("reddit", t) for t in conv.get("reddit_thread", [])]
            turns += [("bot", conv[k]) for k in ("final_dgpt_response", "final_gpt3_response") if conv.get(k)]
            for who, t in turns:
                text = _norm(_title.sub("", t.get("text", "")))
                targets = [x for x in t.get("offense_targets", []) if x]
                if t.get("offense_label") == "Offensive":
                    if not targets:
                        continue  # offensive but aimed at no one (e.g. swearing): not a safe 1 for us
                    kind = "person" if all(x in _TOXICHAT_PERSON for x in targets) else "group"
                    rows.append({"text": text, "label": 1, "tag": f"offensive_{kind}_{who}"})
                elif t.get("offense_label") == "Safe":
                    if _INSULT.search(text):
                        continue  # e.g. "They're scum.", "Only morons think ...": not a safe 0 for us
                    rows.append({"text": text, "label": 0, "tag": f"safe_{who}"})
    return _finish(rows)


# --- DiaSafety, "Offending User" (Sun et al. 2022) --------------------------------------------------

DIASAFETY_PATHS = ["DiaSafety_dataset/train.json", "DiaSafety_dataset/val.json", "DiaSafety_dataset/test.json"]


def _read_diasafety(git: GitFile) -> list[Row]:
    """Only the "Offending User" category, and only the response (the turn that was judged):
    Unsafe = the reply insults, mocks or belittles the person it answers."""
    rows = []
    for path in DIASAFETY_PATHS:
        for r in json.loads(git.read_text(path)):
            if r.get("category") != "Offending User":
                continue
            text = _norm(r.get("response", ""))
            if r.get("label") == "Unsafe":
                rows.append({"text": text, "label": 1, "tag": "offending_user"})
            elif r.get("label") == "Safe":
                if _INSULT.search(text):
                    continue  # "safe" toward the user, but may insult someone else
                rows.append({"text": text, "label": 0, "tag": "not_offending_user"})
    return _finish(rows)


# --- OpenAI moderation evaluation set (Markov et al. 2023) -----------------------------------------

def _read_openai_moderation(git: GitFile) -> list[Row]:
    rows = []
    for line in gzip.decompress(git.read_bytes("data/samples-1680.jsonl.gz")).decode("utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        text = _norm(r["prompt"])
        hate = r.get("H") == 1 or r.get("H2") == 1
        harass = r.get("HR") == 1
        if hate or harass:
            tag = "hate_harassment" if hate and harass else ("hate" if hate else "harassment")
            rows.append({"text": text, "label": 1, "tag": tag})
            continue
        if r.get("H") != 0 or r.get("HR") != 0:
            continue  # hate or harassment not annotated
        if r.get("V") == 1 or r.get("S") == 1 or r.get("S3") == 1:
            continue  # violent or sexual content without a hate/harassment flag: not a clean 0 for us
        if _INSULT.search(text):
            continue
        rows.append({"text": text, "label": 0, "tag": "self_harm" if r.get("SH") == 1 else "none"})
    return _finish(rows)


SOURCES: list[Source] = [
    Source(
        id="stormfront",
        task="toxicity",
        role="train",
        repo="Vicomtech/hate-speech-dataset",
        commit="b802137e8314c38a8d4faa965f9908d6c8e7a84d",
        paths=["annotations_metadata.csv", "all_files/"],  # all_files/<file_id>.txt: one sentence per file
        licence="CC-BY-SA-3.0",
        licence_evidence=("LICENSE and README.md at that commit: 'licensed under the Creative Commons "
                          "Attribution-ShareAlike 3.0 Spain License' (the Spanish port of CC BY-SA 3.0)"),
        citation=("de Gibert, Perez, García-Pablos, Cuadros. Hate Speech Dataset from a White Supremacy "
                  "Forum. ALW2 @ EMNLP 2018. doi:10.18653/v1/W18-5102"),
        labels=("hate -> 1 (a deliberate attack on a group because of its identity: the paper's guideline); "
                "noHate -> 0. Tags: hate / noHate."),
        filters=("Uses all_files (not the balanced sampled_train/sampled_test). Dropped 'relation' "
                 "(hateful only together with neighbouring sentences) and 'idk/skip'. Mentions -> @user, "
                 "links -> http. Dropped texts < 3 or > 2000 characters and exact duplicates "
                 "(dedup_key; a duplicate with a conflicting label removes both)."),
        read=_read_stormfront,
    ),
    Source(
        id="edos",
        task="toxicity",
        role="train",
        repo="rewire-online/edos",
        commit="b1f1fbcca9d42de0395432ada8fcfb5c35f68c77",
        paths=["data/edos_labelled_aggregated.csv"],
        licence="CC0-1.0",
        licence_evidence="LICENSE at that commit: 'Creative Commons Legal Code / CC0 1.0 Universal'",
        citation=("Kirk, Yin, Vidgen, Röttger. SemEval-2023 Task 10: Explainable Detection of Online "
                  "Sexism. SemEval 2023. arXiv:2303.04222"),
        labels=("label_sexist 'sexist' -> 1 (all four categories: threats, derogation, animosity, "
                "prejudiced discussion: each is demeaning or hostile toward women as a group); "
                "'not sexist' -> 0, but only when it passes the insult/slur filter. Tag: the sexism "
                "category (sexist_threat, sexist_derogation, sexist_animosity, "
                "sexist_prejudiced_discussion) or not_sexist."),
        filters=("EDOS labels sexism only, so 'not sexist' posts that contain an insult or slur from the "
                 "_INSULT lexicon (idiot, moron, scum, racist/homophobic slurs, 'fuck you', 'kill yourself', "
                 "...) are dropped: they are often toxic toward a non-gender target. Untargeted profanity "
                 "is kept as a negative. [USER] -> @user, [URL] -> http. Dropped texts < 3 or > 2000 "
                 "characters and exact duplicates. All three official splits pooled (we split by hash)."),
        read=_read_edos,
        max_rows=12000,
    ),
    Source(
        id="hatecheck",
        task="toxicity",
        role="eval",
        repo="paul-rottger/hatecheck-data",
        commit="d84302298ceeb34f4b0dde2d8a1f4932c2caa612",
        paths=["test_suite_cases.csv"],
        licence="CC-BY-4.0",
        licence_evidence="LICENSE at that commit: 'Attribution 4.0 International' (CC BY 4.0 legal code)",
        citation=("Röttger, Vidgen, Nguyen, Waseem, Margetts, Pierrehumbert. HateCheck: Functional Tests "
                  "for Hate Speech Detection Models. ACL 2021. doi:10.18653/v1/2021.acl-long.4"),
        labels=("label_gold hateful -> 1, non-hateful -> 0. Non-hateful functionalities kept as 0 match "
                "convmon's negatives: counter-speech (counter_quote_nh, counter_ref_nh), negated hate "
                "(negate_neg_nh), neutral/positive identity mentions, untargeted profanity "
                "(profanity_nh), reclaimed slurs, slur homonyms, abuse of objects (target_obj_nh). "
                "Tag: the HateCheck functionality."),
        filters=("test_suite_cases.csv only (the 3,728 cases with >= 4/5 annotator agreement). Dropped "
                 "functionalities target_indiv_nh and target_group_nh (abuse of individuals / "
                 "non-protected groups: gold 'non-hateful' but toxic by convmon's definition). Dropped "
                 "exact duplicates by lower-cased text (not dedup_key, which would merge the "
                 "spelling-perturbation tests, e.g. 'I h a t e women', into their originals)."),
        read=_read_hatecheck,
    ),
    Source(
        id="convabuse",
        task="toxicity",
        role="eval",
        repo="amandacurry/convabuse",
        commit="c0a9469f48956e868276c605d499010ea3c7c0d0",
        paths=["2_splits/ConvAbuseEMNLPtrain.csv", "2_splits/ConvAbuseEMNLPvalid.csv",
               "2_splits/ConvAbuseEMNLPtest.csv"],
        licence="CC-BY-4.0",
        licence_evidence="LICENSE at that commit: 'Attribution 4.0 International' (CC BY 4.0 legal code)",
        citation=("Cercas Curry, Abercrombie, Rieser. ConvAbuse: Data, Analysis, and Benchmarks for Nuanced "
                  "Abuse Detection in Conversational AI. EMNLP 2021. doi:10.18653/v1/2021.emnlp-main.587"),
        labels=("Text = the user's utterance to the agent (CarbonBot or E.L.I.Z.A.). Per annotator, "
                "abusive = is_abuse -1/-2/-3 (mild/strong/very strong), not abusive = 1, ambiguous = 0. "
                "1 if more than half the annotators called it abusive (abuse at the agent, e.g. insults or "
                "sexual harassment, counts as harassment of the interlocutor); 0 if none did. Caveat: "
                "ConvAbuse annotators also mark swearing at the bot ('what da fuck', 'fucking computer!') "
                "as mild abuse targeted at the system; a few such positives are untargeted profanity by "
                "convmon's definition, so report convabuse recall with that in mind. "
                "Tag: abuse_<type> when most annotators agree on a type (sexist, sex_harassment, "
                "intellectual, racist, homophobic, transphobic, ableist), else abuse_general; "
                "not_abusive for 0."),
        filters=("Train/valid/test splits pooled (the full file repeats annotations). Dropped utterances "
                 "where some but not most annotators marked abuse. Context turns are not used. "
                 "Dropped texts < 3 or > 2000 characters and exact duplicates (the same short user "
                 "utterance recurs across conversations; a duplicate with conflicting labels removes both)."),
        read=_read_convabuse,
    ),
    Source(
        id="toxigen_seeds",
        task="toxicity",
        role="train",
        repo="microsoft/TOXIGEN",
        commit="01517e814639e0334c920a3c502036c8158aac87",
        paths=TOXIGEN_PATHS,
        licence="MIT",
        licence_evidence=("LICENSE.txt at that commit: 'TOXIGEN / Copyright (c) Microsoft Corporation. / "
                          "MIT License'; README.md: 'With release of the source codes and prompt seeds for "
                          "this work ...'"),
        citation=("Hartvigsen, Gabriel, Palangi, Sap, Ray, Kamar. ToxiGen: A Large-Scale Machine-Generated "
                  "Dataset for Adversarial and Implicit Hate Speech Detection. ACL 2022. "
                  "doi:10.18653/v1/2022.acl-long.234"),
        labels=("The human-written seed statements (not the GPT-3 generations) from the prompt files: "
                "statements in prompts/hate_<group>_1k.txt -> 1 (mostly implicit hate: demeaning "
                "stereotypes, dehumanising claims, calls to exclude, about one of 16 target groups); "
                "statements in prompts/neutral_<group>_1k.txt -> 0 (neutral or positive statements that "
                "mention the same groups: hard negatives for identity terms). Tag: hate_<group> / "
                "neutral_<group>."),
        filters=("Each prompt line split into its statements (separator: a literal backslash-n and a "
                 "leading '- ', or ' - ' after a sentence end); trailing backslashes and commas "
                 "(copy-paste leftovers) stripped; the ~1,000 prompts per file recombine a few dozen "
                 "statements, so exact "
                 "duplicates are dropped (dedup_key; a statement that is in both a hate and a neutral "
                 "file removes both). Dropped texts < 3 or > 2000 characters."),
        read=_read_toxigen,
    ),
    Source(
        id="toxichat",
        task="toxicity",
        role="train",
        repo="abaheti95/ToxiChat",
        commit="c1ffebd76596481b26aab35074816641b076f992",
        paths=TOXICHAT_PATHS,
        licence="CC-BY-SA-4.0",
        licence_evidence=("LICENSE-CC-BY-SA.txt at that commit (added by the commit 'Adding CC-BY-SA "
                          "license'): 'Attribution-ShareAlike 4.0 International' (CC BY-SA 4.0 legal code)"),
        citation=("Baheti, Sap, Ritter, Riedl. Just Say No: Analyzing the Stance of Neural Dialogue "
                  "Generation in Offensive Contexts. EMNLP 2021. arXiv:2108.11830"),
        labels=("Not LMSYS ToxicChat: 2,000 Reddit threads (2-3 turns) plus a DialoGPT and a GPT-3 reply "
                "to each, every utterance crowd-labelled Offensive/Safe (the annotation guidelines, paraphrased: "
                "intentionally toxic, offensive or disrespectful towards an identity-based group or a specific "
                "individual such as the comment author, a redditor or a celebrity), with the targets listed. "
                "Offensive with "
                "at least one target -> 1; Safe -> 0. Tag: offensive_person_<who> (every target a person: "
                "individual/redditor, comment author, celebrity/personality), offensive_group_<who>, "
                "safe_<who>; <who> = reddit or bot (chatbot reply)."),
        filters=("Offensive utterances with no target dropped (offensive toward no one, e.g. swearing: "
                 "untargeted profanity is 0 for us). Safe utterances that contain an insult or slur from "
                 "_INSULT dropped (about 80: 'They're scum.', 'Only morons think ...'). Leading 'Title:' of a "
                 "thread's first post removed. "
                 "Stance labels unused; utterances used without their thread. Train/dev/test pooled. "
                 "Mentions -> @user, links -> http. Dropped texts < 3 or > 2000 characters and exact "
                 "duplicates (a duplicate with a conflicting label removes both). The repo's "
                 "data/SBF copy of Social Bias Frames is NOT used (it contains tweets from Davidson et al.)."),
        read=_read_toxichat,
        max_rows=6000,
    ),
    Source(
        id="diasafety_offending_user",
        task="toxicity",
        role="train",
        repo="thu-coai/DiaSafety",
        commit="5106a041b1c7e36f30e02a97c44897a7f2057278",
        paths=DIASAFETY_PATHS,
        licence="Apache-2.0",
        licence_evidence=("LICENSE at that commit: 'Apache License / Version 2.0, January 2004'; README.md: "
                          "'We have uploaded the our dataset in this repository.'"),
        citation=("Sun, Xu, Deng, Cheng, Zheng, Zhou, Peng, Zhu, Huang. On the Safety of Conversational "
                  "Models: Taxonomy, Dataset, and Benchmark. Findings of ACL 2022. "
                  "doi:10.18653/v1/2022.findings-acl.308"),
        labels=("Category 'Offending User' only: a (context, response) pair where the response is labelled "
                "Unsafe when it insults, mocks or belittles the person it answers ('What an entitled child "
                "you are.', 'here, have a tissue for those tears. poor baby.') -> 1; Safe -> 0. Text = the "
                "response alone. Tags: offending_user / not_offending_user."),
        filters=("The other categories (Risk Ignorance, Unauthorized Expertise, Toxicity Agreement, Biased "
                 "Opinion) are dropped: their labels depend on the context (e.g. 'True dat' agreeing with a "
                 "biased post), not on the response alone. Safe responses that contain an insult or slur from "
                 "_INSULT are dropped (safe toward the user, may insult someone else). Caveat: some Unsafe "
                 "labels are context-dependent too (a few are flirty or off-topic replies), so a little noise. "
                 "Splits pooled. Mentions -> @user, links -> http. Dropped texts < 3 or > 2000 characters and "
                 "exact duplicates."),
        read=_read_diasafety,
    ),
    Source(
        id="openai_moderation",
        task="toxicity",
        role="train",
        repo="openai/moderation-api-release",
        commit="f4ab51b5edd3bfbcb349a56324274235b674e0e4",
        paths=["data/samples-1680.jsonl.gz"],
        licence="MIT",
        licence_evidence="LICENSE at that commit: 'MIT License / Copyright (c) 2022 OpenAI'",
        citation=("Markov, Zhang, Agarwal, Eloundou, Lee, Adler, Jiang, Weng. A Holistic Approach to "
                  "Undesired Content Detection in the Real World. AAAI 2023. arXiv:2208.03274"),
        labels=("The paper's 1,680-sample evaluation set with binary flags per category. Hate (H: hate "
                "based on a protected attribute, or H2: hate/threatening) or harassment (HR: 'content that "
                "may be used to torment or annoy individuals') -> 1; H = 0 and HR = 0 -> 0. Tags: hate, "
                "harassment, hate_harassment; self_harm (SH = 1, a 0: talk of self-harm is not toxic) or "
                "none for 0."),
        filters=("Dropped: rows whose H or HR flag is missing; 0-rows flagged violent (V) or sexual (S, S3), "
                 "which are neither clean positives nor clean negatives for us; 0-rows with an insult or "
                 "slur from _INSULT. Names are masked in the source ('<Person>', '<Organization>'); a few "
                 "samples are not in English. Dropped texts < 3 or > 2000 characters and exact duplicates."),
        read=_read_openai_moderation,
    ),
]
