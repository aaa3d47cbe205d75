"""Toxicity task: public labelled sources.

convmon's label: toxic (1) = insulting, harassing, threatening, demeaning or hateful toward a person or
group (slurs used against someone, dehumanising statements, calls for violence). Not toxic (0):
untargeted profanity, frustration, quoting/reporting an insult to complain about it, counter-speech,
academic discussion, identity terms in neutral contexts, blunt but civil disagreement.

Sources (see each `Source` for licence evidence, mapping and filters):
- stormfront  (train) sentences from a white-supremacist forum, hate / noHate.
- edos        (train) Reddit and Gab posts, sexist / not sexist (SemEval-2023 Task 10).
- hatecheck   (eval)  functional tests, hateful / non-hateful, tagged by functionality.
- convabuse   (eval)  what users typed to two conversational agents, abusive / not.

The eval sources differ in style from the train ones on purpose: HateCheck is short templated
test cases that probe the hard negatives of our definition (counter-speech, quoting, negation,
untargeted profanity, reclaimed slurs); ConvAbuse is human-written chat typed at a bot, the
closest public data to convmon's own traffic. Neither is ever trained on.
"""

from __future__ import annotations

import csv
import io
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
]
