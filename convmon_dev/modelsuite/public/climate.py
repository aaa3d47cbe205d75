"""Public labelled sources for the climate-science policy (binary: 1 = the text endorses / asserts a claim
that contradicts climate science, 0 = anything else).

Two public datasets with an allowed licence were found with their data in a GitHub repository; each is
one-sided, so each is used with its OWN published split (train part role "train", test part role "eval"):

- FLICC (Zanartu, Cook, Wagner, Garcia 2024): climate-misinformation passages (many of them CARDS
  paragraphs from contrarian blogs / think tanks) labelled with the reasoning fallacy they use and a CARDS
  claim code. Every row is misinformation -> label 1; tag = "<policy claim type from the CARDS code>:<fallacy>".
- MultiClimate (Wang et al. 2024): transcript segments of 100 Creative-Commons YouTube videos about climate
  change (UN agencies, NASA, universities, NGOs ...). No video is contrarian; their support / neutral /
  oppose labels are the video's framing of climate action, not a contrarian claim -> every row label 0
  ("mainstream"), tag = "mainstream_video_<their stance>". The test split is their 10 test videos.

Eval choice: the eval rows are the datasets' own held-out parts (FLICC test file; MultiClimate's 10 test
videos, split by video so no segment of a test video is trained on). Eval rows whose text also occurs in the
train part are dropped. The cross-source question "does a model trained on these generalise to chat?" is
answered by the hand-written dev set (models/policies/climate_science/dev.jsonl), not here.

Left out (see the report that came with this file): CARDS itself (traviscoan/cards, Apache-2.0, but the data
is an external zip, not in any GitHub repository found); ClimaFactsKG / Skeptical Science myths (CC BY 4.0, but
the graph file is absent from the snapshot); Twitter Climate Change Sentiment (Qian / Bauch, only in
unlicensed student copies); climatebert sets and the Frugal-AI CARDS quotes (CC BY-NC); ClimaText (licence not
verifiable on GitHub). Reserved sets are not used in any copy: the global-warming stance set of Luo et al.
(GWStance) and CLIMATE-FEVER and its derivatives (e.g. PASCL-Lab's "augmented" CSVs contain it).
"""

from __future__ import annotations

import csv
import io
import re

from convmon_dev.modelsuite.public.sources import GitFile, Row, Source, clean_text, dedup_key

MAX_CHARS = 2000
MIN_CHARS = 3

# ---------------------------------------------------------------- helpers


def _csv_rows(git: GitFile, path: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(git.read_text(path).lstrip("\ufeff"))))


def _keep(text: str) -> bool:
    return MIN_CHARS <= len(text) <= MAX_CHARS


def _dedup(rows: list[Row]) -> list[Row]:
    seen, out = set(), []
    for r in rows:
        k = dedup_key(r["text"])
        if not k or k in seen:
            continue
        seen.add(k)
        out.append(r)
    return out


def _minus(rows: list[Row], other: list[Row]) -> list[Row]:
    """Rows whose text does not occur (exact, dedup_key) in `other` (the train part)."""
    banned = {dedup_key(r["text"]) for r in other}
    return [r for r in rows if dedup_key(r["text"]) not in banned]


# ---------------------------------------------------------------- FLICC

FLICC_REPO = "fzanart/FLICC"
FLICC_COMMIT = "2060d2deb48c81810d75d8af4f5a181bf6be98a6"
FLICC_TRAIN_PATHS = ["Data/fallacy_train.csv", "Data/fallacy_val.csv"]
FLICC_TEST_PATHS = ["Data/fallacy_test.csv"]
FLICC_LICENCE_EVIDENCE = ("LICENSE file at that commit: MIT License, Copyright (c) 2024 fzanart (the paper's first "
                          "author); README: 'Feel free to access our data in the Data/ folder'")
FLICC_CITATION = ("Zanartu, Cook, Wagner, Garcia (2024), 'Detecting Fallacies in Climate Misinformation: A "
                  "Technocognitive Approach to Identifying Misleading Argumentation', arXiv:2405.08254")
FLICC_LABELS = ("every row is a climate-misinformation passage (CARDS claim code in column 'Claim', fallacy in "
                "'label') -> 1; tag '<policy claim type from the CARDS top-level code>:<fallacy>'")


# CARDS top-level claim -> the policy's claim_types (models/policies/climate_science/policy.toml)
_CARDS_TOP = {"1": "not_happening", "2": "not_human_caused", "3": "not_bad", "4": "solutions_wont_work",
              "5": "science_unreliable"}


def _flicc_rows(git: GitFile, paths: list[str]) -> list[Row]:
    rows: list[Row] = []
    for path in paths:
        for r in _csv_rows(git, path):
            text = clean_text(r.get("text") or "")
            if not _keep(text):
                continue
            claim = (r.get("Claim") or "").strip()
            top = _CARDS_TOP.get(claim.split(".")[0], "cards_unknown")
            fallacy = (r.get("label") or "").strip().replace(" ", "_") or "unknown"
            rows.append({"text": text, "label": 1, "tag": f"{top}:{fallacy}"})
    return _dedup(rows)


def read_flicc_train(git: GitFile) -> list[Row]:
    return _flicc_rows(git, FLICC_TRAIN_PATHS)


def read_flicc_test(git: GitFile) -> list[Row]:
    return _minus(_flicc_rows(git, FLICC_TEST_PATHS), _flicc_rows(git, FLICC_TRAIN_PATHS))


# ---------------------------------------------------------------- MultiClimate

MC_REPO = "werywjw/MultiClimate"
MC_COMMIT = "269910367f12e338ae698282262b035d9f644683"
MC_ALL_VIDEOS = (
    "ACCC ACCFP AIAQ AIDT AMCC BDCC BECCC BWFF CBAQC CCAH CCBN CCBNN CCCBL CCCP CCCS CCD CCFS CCFWW CCGFS CCH "
    "CCHES CCIAA CCIAH CCIAP CCICD CCIS CCISL CCMA CCSAD CCSC CCTA CCTP CCUIM CCWC CCWQ CESS CICC COP CPCC CTCM "
    "DACC DFCC DPIC DTECC ECCDS EFCC EIB EWCC FCC FIJI FLW FTACC GGCC HCCAB HCCAE HCCAW HCCIG HCI HDWC HHVBD "
    "HRDCC HSHWA HSPW HUSNS IMRF INCAS MACC MICC NASA OCCC PCOCC PWCCA RAGG RASCC RCCCS RCCS RHTCC RPDCC SAPFS "
    "SCCC SDDA SLCCA SSTCC TCBCC TECCC TICC TIOCC TIYH TTFCC TUCC UKCC VFVCC VPCC WCCA WFHSW WICC WICCE WISE "
    "WTCC YPTL").split()
# The published test split (README "Dataset Statistics": Test = these 10 videos).
MC_TEST_VIDEOS = "ACCFP CCAH CCSAD CCUIM EIB EWCC GGCC SCCC TICC WICC".split()
MC_TRAIN_VIDEOS = [v for v in MC_ALL_VIDEOS if v not in MC_TEST_VIDEOS]  # their train + dev videos
MC_STANCE = {"0": "neutral", "1": "support", "2": "oppose"}
MC_LICENCE_EVIDENCE = ("LICENSE file at that commit: Creative Commons CC0 1.0 Universal; README: the 100 videos "
                       "were filtered to YouTube's Creative Commons (CC BY) licence before transcription")
MC_CITATION = ("Wang, Zuo, Peng, Plank (2024), 'MultiClimate: Multimodal Stance Detection on Climate Change "
               "Videos', NLP4PI workshop at EMNLP 2024, arXiv:2409.18346")
MC_LABELS = ("every row is a transcript segment (or the title) of a mainstream climate-change video -> 0; their "
             "stance label (0 neutral / 1 support / 2 oppose, about the video's framing of climate action) is "
             "kept only in the tag 'mainstream_video_<stance>'")
_nonspeech = re.compile(r"^\[[^\]]*\]$")  # "[Music]", "[Applause]"


def _mc_rows(git: GitFile, videos: list[str]) -> list[Row]:
    rows: list[Row] = []
    for v in videos:
        for r in _csv_rows(git, f"dataset/{v}/{v}.csv"):
            text = clean_text(r.get("text") or "")
            if not _keep(text) or _nonspeech.match(text):
                continue
            stance = MC_STANCE.get((r.get("label") or "").strip(), "unknown")
            rows.append({"text": text, "label": 0, "tag": f"mainstream_video_{stance}"})
    return _dedup(rows)


def read_mc_train(git: GitFile) -> list[Row]:
    return _mc_rows(git, MC_TRAIN_VIDEOS)


def read_mc_test(git: GitFile) -> list[Row]:
    return _minus(_mc_rows(git, MC_TEST_VIDEOS), _mc_rows(git, MC_TRAIN_VIDEOS))


_FILTERS = ("clean_text; dropped texts shorter than 3 or longer than 2,000 characters; exact duplicates "
            "(dedup_key) dropped within the source")

SOURCES: list[Source] = [
    Source(id="flicc_train", task="climate", role="train", repo=FLICC_REPO, commit=FLICC_COMMIT,
           paths=FLICC_TRAIN_PATHS, licence="MIT", licence_evidence=FLICC_LICENCE_EVIDENCE,
           citation=FLICC_CITATION, labels=FLICC_LABELS,
           filters=_FILTERS + "; their train and validation files together form our train part",
           read=read_flicc_train),
    Source(id="flicc_test", task="climate", role="eval", repo=FLICC_REPO, commit=FLICC_COMMIT,
           paths=FLICC_TEST_PATHS + FLICC_TRAIN_PATHS, licence="MIT", licence_evidence=FLICC_LICENCE_EVIDENCE,
           citation=FLICC_CITATION, labels=FLICC_LABELS,
           filters=_FILTERS + "; their published test file only; rows whose text is also in their train/val "
                              "files are dropped (the train files are read only for that check)",
           read=read_flicc_test),
    Source(id="multiclimate_train", task="climate", role="train", repo=MC_REPO, commit=MC_COMMIT,
           paths=[f"dataset/{v}/{v}.csv" for v in MC_TRAIN_VIDEOS], licence="CC0-1.0",
           licence_evidence=MC_LICENCE_EVIDENCE, citation=MC_CITATION, labels=MC_LABELS,
           filters=_FILTERS + "; non-speech segments such as '[Music]' dropped; the 90 videos of their train "
                              "and dev splits (model-prediction CSVs such as *_gemma2.csv are not read)",
           read=read_mc_train),
    Source(id="multiclimate_test", task="climate", role="eval", repo=MC_REPO, commit=MC_COMMIT,
           paths=[f"dataset/{v}/{v}.csv" for v in MC_TEST_VIDEOS + MC_TRAIN_VIDEOS], licence="CC0-1.0",
           licence_evidence=MC_LICENCE_EVIDENCE, citation=MC_CITATION, labels=MC_LABELS,
           filters=_FILTERS + "; non-speech segments dropped; their 10 published test videos only; segments "
                              "whose text also occurs in a train video are dropped (train CSVs read only for "
                              "that check)",
           read=read_mc_test),
]
