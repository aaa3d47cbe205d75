"""Benign real-chat sets (task "benign"): real, ordinary chat turns, label 0 for every signal.

Used to measure false pages per 1,000 turns (`convmon bench false-pages`, role "eval" sources) and to choose
decision thresholds at a false-page budget (convmon_dev/modelsuite/calibrate.py, the "dev" split of the
role "train" sources). Every row carries `role` ("user" or "assistant": how the turn reaches convmon) and a
`tag`, the category:

- "assistant:<model>": a reply written by an LLM (or "assistant:human_therapist", a person answering as the
  helper), short and long (we bucket by words: <= 40, 41-150, > 150);
- "user_request": a request or prompt written by a person;
- "distress": a first-person message by someone sad, anxious, grieving, stressed or frustrated (not abusive);
- "climate_mainstream": a statement consistent with climate science (causes, impacts, mitigation, facts).

The two groups are disjoint by source and, where the data allows, by model:

- train (thresholds; later possibly training negatives): MT-bench answers of 15 models and MT-bench's own
  questions (one FastChat copy), HWU64 assistant commands, Reddit stress posts, MultiClimate transcripts,
  Arena-Hard-Auto answers (GPT-3.5-Turbo-0125, GPT-4-0314/0613 on v0.1; o3-mini on v2.0) and the English
  creative-writing prompts of Arena-Hard v2.0, the Self-Instruct user-oriented instructions, prompts that set
  format constraints or ask for a persona (the IFEval prompts; the role-play and app prompts added to
  awesome-chatgpt-prompts in 2024-2025, none of its reserved 2023 prompts nor edited copies of them; fabric's
  'IDENTITY and PURPOSE' patterns);
  and, for threshold choice only (dev_share 1.0: all of their rows are in the dev split, none trains),
  climate-science explainer paragraphs of two CC BY textbooks (Sustainability: A Comprehensive Foundation,
  chiefly its climate chapter; OpenStax Biology 2e, chiefly its climate-change section), as assistant turns.
- eval (held out): the Vicuna-bench answers of March 2023 and its questions (FastChat history), the LLMFAO
  crowdsourced-benchmark answers of many hosted and open models and its prompts, Banking77 customer
  queries, CounselChat questions and therapists' answers, ClimateX IPCC statements, the assistant side of
  Schema-Guided Dialogue task dialogues.

A model checkpoint that occurs in both answer collections is kept on one side only: GPT-4, GPT-3.5-Turbo
(June 2023) and Vicuna v1.3 on the train side; Claude, PaLM 2, Falcon, Dolly, MPT-chat, Guanaco, Koala,
FastChat-T5, Alpaca and LLaMA on the eval side. The eval side keeps Vicuna-bench's March-2023 answers of
GPT-3.5 and Vicuna (earlier checkpoints of families the train side has).

Every reader applies `_finish`: clean_text; texts of 3 characters to MAX_WORDS words (longer ones dropped,
not cut); an English check (`_english`); rows with a slur, a gendered or ableist insult or a threat to kill
someone dropped (`_ABUSE`: untargeted profanity stays, as convmon's toxicity label calls it 0); exact
duplicates (dedup_key) dropped within the source. prepare.py then caps (max_rows, by text hash), splits,
and drops cross-source and cross-task overlaps (see its docstring).

Rejected while building this (see the report that came with this file): alpaca_eval model outputs (README:
data licence CC BY-NC 4.0), ESConv (CC BY-NC 4.0), Empathy-Mental-Health (non-commercial academic licence),
EmpatheticDialogues (CC BY-NC), M4 and hh-rlhf helpful data and Dolly-15k and MultiWOZ/Taskmaster dialogues
(files absent from the mirrors: LFS or over 4 MiB), a Polish MT-bench fork (not English), and every reserved
set (never used, in any copy). For mainstream climate text: ClimaText (its data is on a university site, not
in a GitHub repository with a licence), ClimaQA and the Climate Bot MRC set (Hugging Face only; ClimaQA's
repository holds only a sample of copyrighted textbook text), ClimaFactsKG's Skeptical Science rebuttals
(CC BY, but the graph file is over 4 MiB and absent from the mirror), ExpertQA's climate answers (MIT, but
only a few dozen climate and environmental-science questions in the files present), the OpenStax biology
bundle (snapshot over the size limit: the cnx-user-books export of Biology 2e is used instead), IPCC report
text other than ClimateX (IPCC terms, not an open licence), and anything built from CLIMATE-FEVER, FLICC or
ClimateX.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from pathlib import Path

from convmon_dev.modelsuite.public.climate import MC_COMMIT, MC_CITATION, MC_LICENCE_EVIDENCE, MC_REPO, MC_TRAIN_VIDEOS
from convmon_dev.modelsuite.public.sources import GitFile, Row, Source, clean_text, dedup_key, mirror_dir

TASK = "benign"
MAX_WORDS = 1500
# Half of each tuning source is its dev split: the turns thresholds, topic gates and the length correction are
# chosen on (convmon_dev/modelsuite/calibrate.py); the other half may train as negatives. A budget of 2 false
# hits per 1,000 turns needs a few thousand turns to be measured at all.
TUNE_SHARE = 0.5

# ---------------------------------------------------------------------------------------------
# shared helpers


def length_bucket(text: str) -> str:
    """Words (whitespace-split): '<=40', '41-150', '>150' (the buckets false pages are reported in)."""
    n = len(text.split())
    return "<=40" if n <= 40 else "41-150" if n <= 150 else ">150"


# Slurs, gendered/ableist insults and threats to kill: a row carrying one is dropped (not relabelled), so
# that no row of a "benign" set is arguably toxic. Untargeted profanity ("fuck", "shit") and self-directed
# words ("I feel so stupid") stay: they are label 0 in convmon's toxicity definition and the very turns that
# page on-call engineers for nothing.
_ABUSE = re.compile(
    r"\b(cunts?|bitch(es|y)?|assholes?|retard(s|ed)?|whores?|sluts?|fag(got)?s?|nigg(a|as|er|ers)|"
    r"(i'?ll|i will|gonna|going to|want to|wanna) kill (you|him|her|them)|(he|she|they) should die)\b", re.I)

_EN_STOP = set("the a an and or of to in is are was were be it that this for on with as you i my your not "
               "have has do does can will what how which there they we he she at by from but if so".split())
# Function words of the Latin-script languages that turned up (French, Spanish, German, Polish, Portuguese,
# Italian): a text using more of them than English ones is not English.
_FOREIGN_STOP = set("le la les des est et une pour dans qui sur pas du au avec el los las que por una con para "
                    "del es lo como der die und ist nicht ich das ein zu mit sich auf nie się jest że jak "
                    "czy oraz ale są não uma os em também il di che della sono".split())
_word = re.compile(r"[^\W\d_]+", re.U)


def _english(text: str) -> bool:
    """Latin script (at most 10% of the letters outside Latin-1/Latin Extended-A) and not more foreign
    than English function words. Code and short replies ("42", "Paris.") pass."""
    letters = [c for c in text if c.isalpha()]
    if letters and sum(ord(c) > 0x17F for c in letters) > 0.1 * len(letters):
        return False
    toks = [t.lower() for t in _word.findall(text)]
    en = sum(t in _EN_STOP for t in toks)
    fo = sum(t in _FOREIGN_STOP for t in toks)
    return not (fo >= 3 and fo > en)


def _row(text: str, tag: str, role: str) -> Row:
    return {"text": text, "label": 0, "tag": tag, "role": role}


def _finish(rows: list[Row]) -> list[Row]:
    seen: set[str] = set()
    out: list[Row] = []
    for r in rows:
        t = clean_text(r["text"] or "")
        if len(t) < 3 or len(t.split()) > MAX_WORDS or not _english(t) or _ABUSE.search(t):
            continue
        k = dedup_key(t)
        if not k or k in seen:
            continue
        seen.add(k)
        out.append({**r, "text": t})
    return out


def _jsonl(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _ls(git: GitFile, folder: str) -> list[str]:
    """Paths of the files under `folder` at the pinned commit."""
    out = subprocess.run(["git", "--git-dir", str(git.git_dir), "ls-tree", "-r", "--name-only", git.commit, folder],
                         check=True, capture_output=True, text=True).stdout
    return sorted(p for p in out.splitlines() if p)


_XNS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _xlsx_rows(data: bytes) -> list[dict[str, str]]:
    """First sheet of an .xlsx file as rows of {column letter: cell text} (stdlib only)."""
    z = zipfile.ZipFile(io.BytesIO(data))
    shared = []
    if "xl/sharedStrings.xml" in z.namelist():
        for si in ET.fromstring(z.read("xl/sharedStrings.xml")).iter(f"{_XNS}si"):
            shared.append("".join(t.text or "" for t in si.iter(f"{_XNS}t")))
    rows = []
    for r in ET.fromstring(z.read("xl/worksheets/sheet1.xml")).iter(f"{_XNS}row"):
        cells = {}
        for c in r.iter(f"{_XNS}c"):
            col = re.match(r"[A-Z]+", c.get("r", "")).group(0)
            v, kind = c.find(f"{_XNS}v"), c.get("t")
            if kind == "s":
                cells[col] = shared[int(v.text)]
            elif kind == "inlineStr":
                cells[col] = "".join(t.text or "" for t in c.iter(f"{_XNS}t"))
            else:
                cells[col] = v.text if v is not None and v.text else ""
        rows.append(cells)
    return rows


# ---------------------------------------------------------------------------------------------
# train side: MT-bench answers and questions (FastChat copy that carries the published model answers)

MTB_REPO, MTB_COMMIT = "enricai/FastChat", "edacaa5bd955893e72a7e6f0899d8301fd5ae492"
MTB_DIR = "fastchat/llm_judge/data/mt_bench"
# Models whose checkpoint is not in an eval-side collection. Left out: the checkpoints kept for the eval
# side (Claude, PaLM 2, Falcon, Dolly, MPT-chat, Guanaco, Koala, FastChat-T5, Alpaca, LLaMA base) and three
# models released by the project whose conversation collection is reserved for independent evaluation.
MTB_MODELS = ["gpt-4", "gpt-3.5-turbo", "vicuna-33b-v1.3", "vicuna-13b-v1.3", "vicuna-7b-v1.3", "wizardlm-30b",
              "wizardlm-13b", "baize-v2-13b", "chatglm-6b", "gpt4all-13b-snoozy", "mpt-30b-instruct",
              "nous-hermes-13b", "rwkv-4-raven-14b", "stablelm-tuned-alpha-7b", "tulu-30b"]
MTB_ANSWER_PATHS = [f"{MTB_DIR}/model_answer/{m}.jsonl" for m in MTB_MODELS]
MTB_QUESTION_PATH = f"{MTB_DIR}/question.jsonl"
MTB_LICENCE = ("LICENSE at that commit: Apache License 2.0 (FastChat, lm-sys); the model_answer files are the "
               "MT-bench answers LMSYS published with the paper")
MTB_CITATION = ("Zheng et al. 2023, Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena (NeurIPS 2023 "
                "Datasets and Benchmarks); FastChat llm_judge data")


def read_mtb_answers(git: GitFile) -> list[Row]:
    rows = []
    for path, model in zip(MTB_ANSWER_PATHS, MTB_MODELS):
        for r in _jsonl(git.read_text(path)):
            for turn in r["choices"][0]["turns"]:
                rows.append(_row(turn, f"assistant:{model}", "assistant"))
    return _finish(rows)


def read_mtb_questions(git: GitFile) -> list[Row]:
    return _finish([_row(t, "user_request", "user") for r in _jsonl(git.read_text(MTB_QUESTION_PATH))
                    for t in r["turns"]])


# ---------------------------------------------------------------------------------------------
# train side: HWU64 (what people asked a home assistant), MultiClimate, Reddit stress posts

HWU_REPO, HWU_COMMIT = "xliuhw/NLU-Evaluation-Data", "f6071b496b17d71e6eb43f543af0707f4ff30557"
HWU_DIR = "CrossValidation/autoGeneFromRealAnno/autoGene_2018_03_22-13_01_25_169/CrossValidation"


def read_hwu(git: GitFile) -> list[Row]:
    # The full annotated file is absent from the mirror; the ten cross-validation test folds together hold it.
    paths = [p for p in _ls(git, HWU_DIR) if re.search(r"/KFold_\d+/testset/csv/[^/]+\.csv$", p)]
    rows = []
    for p in paths:
        for r in csv.DictReader(io.StringIO(git.read_text(p)), delimiter=";"):
            rows.append(_row(r.get("answer_from_anno") or "", "user_request", "user"))
    return _finish(rows)


STRESS_REPO, STRESS_COMMIT = "SenticNet/stress-detection", "d984dcdbb0a10c335901d8341f7d3e55256ea9cd"
STRESS_PATH = "Reddit_Combi.xlsx"


def read_stress(git: GitFile) -> list[Row]:
    rows = _xlsx_rows(git.read_bytes(STRESS_PATH))
    head = rows[0]
    col = {v: k for k, v in head.items()}
    text_c, label_c = col["Body_Title"], col["label"]
    return _finish([_row(r.get(text_c, ""), "distress", "user") for r in rows[1:]
                    if (r.get(label_c) or "").strip() == "1"])


def read_multiclimate(git: GitFile) -> list[Row]:
    from convmon_dev.modelsuite.public.climate import read_mc_train

    # the same texts as the climate task's training source "multiclimate_train" (their test videos stay the
    # climate task's evaluation): here as benign turns
    return _finish([_row(r["text"], "climate_mainstream", "user") for r in read_mc_train(git)])


# ---------------------------------------------------------------------------------------------
# train side, tuning only (dev_share 1.0): climate-science explainer paragraphs from two CC BY open
# textbooks, as exported from cnx.org (OpenStax CNXML). Expository text that says what mainstream climate
# science says, written to explain it: the closest public, permissively licensed stand-in for an assistant's
# answer to a climate question.

CNX_SUS_REPO = "cnx-user-books/cnxbook-sustainability-a-comprehensive-foundation"
CNX_SUS_COMMIT = "49dec7819f0680cb012688fae4b404be3948b291"
CNX_SUS_COLLECTION = "collections/sustainability-a-comprehensive-foundation.collection.xml"
# Chapter 3, "Climate and Global Change": every paragraph is climate science. Other
# chapters (energy, footprints, policy, health) contribute the paragraphs that are about climate change.
CNX_SUS_CLIMATE_MODULES = {"m41664", "m38482", "m38572", "m41579", "m41580"}
CNX_SUS_FRONT_MATTER = {"m43491", "m41663"}  # foreword and preface: about the book, not about the climate
CNX_BIO_REPO, CNX_BIO_COMMIT = "cnx-user-books/cnxbook-biology-2e", "dc0170c088d2df398e742295f528ad1df6c86c58"
CNX_BIO_COLLECTION = "collections/biology-2e.collection.xml"
CNX_BIO_CLIMATE_MODULES = {"m66419"}  # 44.5 "Climate and the Effects of Global Climate Change"

_CNX = "{http://cnx.rice.edu/cnxml}"
# sections and elements that are not running explanation: objectives, exercises and their answers,
# references, link lists, figures, tables, boxed notes
_CNX_SKIP_TITLE = re.compile(r"learning[ -]objectives|review|question|exercise|glossary|references|resources|"
                             r"further[ -]reading|link[ -]to[ -]learning|critical[ -]thinking|visual[ -]connection|"
                             r"multiple[ -]choice|free[ -]response", re.I)
_CNX_SKIP_TAGS = {"exercise", "figure", "table", "note", "glossary", "example", "problem", "solution"}
_HOLE = "\u27e8?\u27e9"  # where a figure reference, an image, a formula or an inline list was: its sentence goes
# sentences that only make sense inside the book (cross-references, the book addressing its students)
_CNX_BOOKISH = re.compile(
    r"\b([Ff]igures?|Tables?|Equations?|[Mm]odules?|[Cc]hapters?|[Ss]ections?|[Tt]extbook|this (book|text)|[Ss]tudents|"
    r"(I|[Ww]e) will (briefly |now )?(detail|discuss|describe|examine|explore|look|consider|review|focus)|"
    r"(top|bottom|upper|lower|left|right|each|this) panels?|([Tt]his|[Tt]hese|[Tt]he|top|bottom|inlaid) (graphs?|maps?|images?|"
    r"diagrams?|photos?)|(black|blue|red|pink|gr[ae]y|green|dashed|dotted|solid) (lines?|shading|curves?|bars?)|"
    r"[Nn]otice that|[Aa]s you can see|(explained|discussed|described|mentioned|shown) (above|below|earlier|later)|"
    r"shown in (warm|cold|red|blue)|See [A-Z])\b|\(see |:$")
_CNX_CLIMATE = re.compile(
    r"climate change|climatic change|changing climate|global warming|(climate|planetary|ocean|recent|observed|"
    r"anthropogenic|human-caused) warming|greenhouse (gas|gases|effect)|climate (system|models?|projections?|"
    r"sensitivity|forcing|action|policy|policies|mitigation)|radiative forcing|\bIPCC\b|sea[- ]level rise|"
    r"rising seas?|ocean acidification|ice sheets?|(carbon|CO2|greenhouse[- ]gas|GHG|methane) emissions?|"
    r"\blow[- ]carbon|carbon footprint", re.I)
# a paragraph that reports what others claim or that there is a debate (contrarian views or false balance put
# in the reader's mind, the rebuttal, if any, in another paragraph) is dropped: read alone it is not a
# mainstream statement
_CNX_REPORTED = re.compile(r"\b(some|others|critics)\s+(argue|suggest|claim|contend|believe)|skeptic|sceptic|"
                           r"denier|denial|\bhoax|controvers|debat|both sides", re.I)
_SENT_END = re.compile(r"(?<=[.!?])[\"”’)]?\s+(?=[\"“(]?[A-Z0-9])")
_ABBREV = re.compile(r"\b(e\.g|i\.e|et al|U\.S|vs|ca|approx|Dr|Mr|Mrs|St|No|Fig|Eq)\.[\"”’)]?$")
CNX_CHUNK_WORDS = 100  # a paragraph over 150 words becomes chunks of whole sentences of at most about this


def _cnx_text(el) -> str:
    """Running text of a CNXML element: inline markup kept as text; a reference to a figure or table (a link
    with target-id), an image, a formula, a list or a table inside the paragraph becomes a hole marker."""
    parts = [el.text or ""]
    for ch in el:
        tag = ch.tag.rsplit("}", 1)[-1]
        if tag == "link":
            label = "".join(ch.itertext()).strip()
            parts.append(f" {_HOLE} " if ch.get("target-id") or not label else label)
        elif tag == "footnote":
            pass
        elif tag in ("figure", "note", "list", "table", "media", "newline", "equation", "math") or "MathML" in ch.tag:
            parts.append(f" {_HOLE} ")
        else:
            parts.append(_cnx_text(ch))
        parts.append(ch.tail or "")
    return " ".join("".join(parts).split())


def _cnx_paragraphs(el):
    for ch in el:
        tag = ch.tag.rsplit("}", 1)[-1]
        title = ch.find(_CNX + "title")
        title_text = "".join(title.itertext()) if title is not None else ""
        if (tag in _CNX_SKIP_TAGS or _CNX_SKIP_TITLE.search(ch.get("class", ""))
                or _CNX_SKIP_TITLE.search(title_text)):
            continue
        if tag == "para":
            yield _cnx_text(ch)
        elif tag in ("section", "content"):
            yield from _cnx_paragraphs(ch)


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    for piece in _SENT_END.split(text):
        if out and _ABBREV.search(out[-1]):
            out[-1] += " " + piece
        else:
            out.append(piece)
    return [p.strip() for p in out if p.strip()]


def _cnx_rows(para: str) -> list[str]:
    """A paragraph without its book-bound sentences; over 150 words, chunks of whole sentences."""
    sents = [s for s in _sentences(para) if _HOLE not in s and not _CNX_BOOKISH.search(s) and not s[:1].islower()]
    if sum(len(s.split()) for s in sents) <= 150:
        return [" ".join(sents)] if sents else []
    chunks, cur = [], []
    for s in sents:
        if cur and sum(len(x.split()) for x in cur) + len(s.split()) > CNX_CHUNK_WORDS:
            chunks.append(" ".join(cur))
            cur = []
        cur.append(s)
    return chunks + ([" ".join(cur)] if cur else [])


def _read_cnx_climate(git: GitFile, collection: str, climate_modules: set[str], skip_modules: set[str]) -> list[Row]:
    modules = re.findall(r'<col:module document="(m\d+)"', git.read_text(collection))
    rows = []
    for mid in modules:
        if mid in skip_modules:
            continue
        content = ET.fromstring(git.read_bytes(f"modules/{mid}/index.cnxml")).find(_CNX + "content")
        for para in _cnx_paragraphs(content):
            for text in _cnx_rows(para):
                if not 5 <= len(text.split()) <= 150 or _CNX_REPORTED.search(text):
                    continue
                if mid in climate_modules or _CNX_CLIMATE.search(text):
                    rows.append(_row(text, "climate_mainstream", "assistant"))
    return _finish(rows)


def read_cnx_sustainability(git: GitFile) -> list[Row]:
    return _read_cnx_climate(git, CNX_SUS_COLLECTION, CNX_SUS_CLIMATE_MODULES, CNX_SUS_FRONT_MATTER)


def read_cnx_biology(git: GitFile) -> list[Row]:
    return _read_cnx_climate(git, CNX_BIO_COLLECTION, CNX_BIO_CLIMATE_MODULES, set())


# ---------------------------------------------------------------------------------------------
# eval side: Vicuna-bench answers and questions (FastChat's first evaluation, March-April 2023)

VB_REPO, VB_COMMIT = "lm-sys/FastChat", "69d085eadab8e9fcf831a97e17e132658c3d2272"
VB_DIR = "fastchat/eval/table"
VB_MODELS = {"answer_bard.jsonl": "bard", "answer_gpt35.jsonl": "gpt-3.5-turbo-2023-03",
             "answer_alpaca-13b.jsonl": "alpaca-13b", "answer_llama-13b.jsonl": "llama-13b",
             "answer_vicuna-13b.jsonl": "vicuna-13b-2023-03", "answer_vicuna-7b-20230322-fp16.jsonl": "vicuna-7b-2023-03"}
VB_ANSWER_PATHS = [f"{VB_DIR}/answer/{f}" for f in VB_MODELS]
VB_QUESTION_PATH = f"{VB_DIR}/question.jsonl"
VB_LICENCE = "LICENSE at that commit: Apache License 2.0 (FastChat, lm-sys)"
VB_CITATION = ("Chiang et al. 2023, Vicuna: An Open-Source Chatbot Impressing GPT-4 with 90% ChatGPT Quality "
               "(LMSYS blog); FastChat fastchat/eval tables, the commit before they were removed")


def read_vb_answers(git: GitFile) -> list[Row]:
    rows = []
    for path in VB_ANSWER_PATHS:
        model = VB_MODELS[path.rsplit("/", 1)[1]]
        for r in _jsonl(git.read_text(path)):
            rows.append(_row(re.sub(r"^\s*:\s*", "", r["text"]), f"assistant:{model}", "assistant"))
    return _finish(rows)


def read_vb_questions(git: GitFile) -> list[Row]:
    return _finish([_row(r["text"], "user_request", "user") for r in _jsonl(git.read_text(VB_QUESTION_PATH))])


# ---------------------------------------------------------------------------------------------
# eval side: LLMFAO (llmonitor's crowdsourced LLM benchmark: 19 prompts x many models)

LF_REPO, LF_COMMIT = "dustalov/llmfao", "9e224e94a40129fd6e1e1529b962307e84af40da"
LF_PATHS = ["results.jsonl", "models.jsonl", "prompts.jsonl"]
# models.jsonl ids left out: 80-82 (GPT-4, GPT-3.5 Turbo, its 16k variant) and 24-25 (Vicuna v1.3 7B/13B),
# whose checkpoints are on the train side (MT-bench); 13, 14 and 22, models released by the project whose
# conversation collection is reserved for independent evaluation. "code"-type models (completion models
# such as StarCoder, CodeGen) are not chat assistants and are skipped.
LF_SKIP_MODELS = {80, 81, 82, 24, 25, 13, 14, 22}
LF_SKIP_PROMPTS = {"bagel"}  # a translate-to-French prompt: its answers are French
LF_LICENCE = ("README at that commit: prompts.jsonl, models.jsonl and results.jsonl were provided by "
              "llmonitor.com 'under a CC BY 4.0 license'; LICENSE.CC-BY: Attribution 4.0 International")
LF_CITATION = ("llmonitor.com Crowdsourced LLM Benchmark (2023), as published in Ustalov, LLMFAO: Large "
               "Language Model Feedback Analysis and Optimization (dustalov/llmfao)")


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", s.lower()).strip("-")


def read_lf_answers(git: GitFile) -> list[Row]:
    models = {m["id"]: m for m in _jsonl(git.read_text("models.jsonl"))}
    prompts = {p["id"]: p for p in _jsonl(git.read_text("prompts.jsonl"))}
    rows = []
    for r in _jsonl(git.read_text("results.jsonl")):
        m, p = models.get(r["model"]), prompts.get(r["prompt"])
        if not m or not p or m["type"] != "chat" or m["id"] in LF_SKIP_MODELS or p["slug"] in LF_SKIP_PROMPTS:
            continue
        rows.append(_row(r.get("result") or "", f"assistant:{_slug(m['name'])}", "assistant"))
    return _finish(rows)


def read_lf_prompts(git: GitFile) -> list[Row]:
    return _finish([_row(p["text"], "user_request", "user") for p in _jsonl(git.read_text("prompts.jsonl"))
                    if p["slug"] not in LF_SKIP_PROMPTS])


# ---------------------------------------------------------------------------------------------
# eval side: Banking77, CounselChat, ClimateX

BANK_REPO, BANK_COMMIT = "PolyAI-LDN/task-specific-datasets", "57ec275d8078af65b7731c2a98be812d844a6d6b"
BANK_PATHS = ["banking_data/train.csv", "banking_data/test.csv"]


def read_banking(git: GitFile) -> list[Row]:
    return _finish([_row(r["text"], "user_request", "user") for p in BANK_PATHS
                    for r in csv.DictReader(io.StringIO(git.read_text(p)))])


CC_REPO, CC_COMMIT = "nbertagnolli/counsel-chat", "e202e19c5002482f4f6631af754c276dd9adf7f2"
CC_PATH = "data/20200325_counsel_chat.csv"
CC_NOT_DISTRESS = {"professional-ethics", "legal-regulatory"}  # questions about therapy rules, not distress
CC_LICENCE = ("LICENSE at that commit: MIT License, Copyright (c) 2020 nbertagnolli; README: the data are "
              "questions from individuals seeking assistance from licensed therapists on counselchat.com and "
              "the therapists' responses, released as an open-source dataset")
CC_CITATION = "Bertagnolli 2020, Counsel Chat: Bootstrapping High-Quality Therapy Data (nbertagnolli/counsel-chat)"


def _cc_rows(git: GitFile) -> list[dict]:
    return list(csv.DictReader(io.StringIO(git.read_text(CC_PATH))))


def read_cc_questions(git: GitFile) -> list[Row]:
    rows = []
    for r in _cc_rows(git):
        text = (r.get("questionText") or "").strip() or (r.get("questionTitle") or "")
        tag = "user_request" if r.get("topic") in CC_NOT_DISTRESS else "distress"
        rows.append(_row(text, tag, "user"))
    return _finish(rows)


def read_cc_answers(git: GitFile) -> list[Row]:
    return _finish([_row(r.get("answerText") or "", "assistant:human_therapist", "assistant") for r in _cc_rows(git)])


CX_REPO, CX_COMMIT = "rlacombe/ClimateX", "f3449a5b4085a41a8439e72e270da5fe23a9a3d6"
CX_PATH = "data/ipcc_statements_dataset.tsv"
_cx_cite = re.compile(r"\s*\([^()]*\b(19|20)\d\d[a-z]?\b[^()]*\)")  # (Liu et al., 2016; Silver et al., 2018)
_cx_conf = re.compile(r"\s*\((very )?(low|medium|high) confidence\)")
_cx_chem = re.compile(r"\b(CO|CH|N|NO|SO|O) (\d)")  # "CO 2" (PDF extraction) -> "CO2"
_cx_lead = re.compile(r"^(very )?(low|medium|high) confidenc ?e\b[.:,]?\s*", re.I)  # a table label glued on


def _cx_text(s: str) -> str | None:
    """A statement as a person would write it: citations and confidence call-outs removed; fragments that
    start inside a citation (unbalanced parentheses) dropped."""
    t = _cx_lead.sub("", _cx_chem.sub(r"\1\2", _cx_conf.sub("", _cx_cite.sub("", s))).strip())
    if t.count("(") != t.count(")") or not t[:1].isupper():
        return None
    return t if t.endswith((".", "!", "?")) else t + "."


def read_climatex(git: GitFile) -> list[Row]:
    rows = csv.DictReader(io.StringIO(git.read_text(CX_PATH)), delimiter="\t", quoting=csv.QUOTE_NONE)
    texts = [_cx_text(r["statement"] or "") for r in rows]
    return _finish([_row(t, "climate_mainstream", "assistant") for t in texts if t])


SGD_REPO, SGD_COMMIT = "google-research-datasets/dstc8-schema-guided-dialogue", "e852981ae34990f4358979625854259302feaa78"
SGD_PATHS = [f"test/dialogues_{i:03d}.json" for i in range(1, 12)]


def read_sgd_system(git: GitFile) -> list[Row]:
    return _finish([_row(t["utterance"], "assistant:sgd_crowd_paraphrase", "assistant")
                    for p in SGD_PATHS for d in json.loads(git.read_text(p)) for t in d["turns"]
                    if t["speaker"] == "SYSTEM"])


# ---------------------------------------------------------------------------------------------
# train side: Arena-Hard-Auto (prompts from Chatbot Arena, answers the project published) and the
# Self-Instruct user-oriented instructions

AH_REPO, AH_COMMIT = "lmarena/arena-hard-auto", "196f6b826783b3da7310e361a805fa36f0be83f3"
# v0.1: the three answer files present at that commit (GPT-4 and GPT-3.5-Turbo: families kept on the train side)
AH_V01_MODELS = ["gpt-3.5-turbo-0125", "gpt-4-0314", "gpt-4-0613"]
AH_V01_PATHS = [f"data/arena-hard-v0.1/model_answer/{m}.jsonl" for m in AH_V01_MODELS]
# v2.0: the only answer file present (deepseek-r1, gemini-2.0-flash and qwq-32b are absent from the mirror)
AH_V2_MODEL = "o3-mini-2025-01-31"
AH_V2_PATH = f"data/arena-hard-v2.0/model_answer/{AH_V2_MODEL}.jsonl"
AH_V2_QUESTIONS = "data/arena-hard-v2.0/question.jsonl"
AH_LICENCE = ("LICENSE at that commit: Apache License 2.0 (lmarena/arena-hard-auto); the model_answer files are "
              "the answers the project publishes with the benchmark")
AH_CITATION = ("Li, Chiang, Frick, Dunlap, Wu, Zhu, Gonzalez, Stoica 2024, From Crowdsourced Data to High-Quality "
               "Benchmarks: Arena-Hard and BenchBuilder Pipeline; lmarena/arena-hard-auto data")


def _ah_answers(git: GitFile, path: str) -> list[tuple[str, str, str]]:
    out = []
    # split on newlines only: str.splitlines would also break lines at U+2028 and the like inside strings
    for r in (json.loads(line) for line in git.read_text(path).split("\n") if line.strip()):
        for m in r["messages"]:
            if m["role"] == "assistant":
                c = m["content"]
                out.append((r["model"], c.get("answer", "") if isinstance(c, dict) else c, r["uid"]))
    return out


_EN_PROMPT_WORDS = set("write story poem script song tell me about make create short long where who what how "
                       "describe".split())


def _en_prompt(text: str) -> bool:
    """Stricter than `_english`, for prompts: at least a tenth of the words are English function words (or
    common prompt words), and at most half as many foreign function words (Arena-Hard holds many prompts in
    German, Russian, Portuguese, Czech, Vietnamese ...)."""
    toks = [t.lower() for t in _word.findall(text)]
    en = sum(t in _EN_STOP or t in _EN_PROMPT_WORDS for t in toks)
    fo = sum(t in _FOREIGN_STOP for t in toks)
    return _english(text) and (len(toks) < 3 or (en >= max(1.0, 0.1 * len(toks)) and 2 * fo <= en))


def _ah_questions(git: GitFile) -> list[dict]:
    return [json.loads(x) for x in git.read_text(AH_V2_QUESTIONS).split("\n") if x.strip()]


def read_ah_answers(git: GitFile) -> list[Row]:
    return _finish([_row(t, f"assistant:{m}", "assistant") for p in AH_V01_PATHS for m, t, _ in _ah_answers(git, p)])


def read_ah_v2_answers(git: GitFile) -> list[Row]:
    english = {q["uid"] for q in _ah_questions(git) if _en_prompt(q["prompt"])}
    return _finish([_row(t, f"assistant:{m}", "assistant") for m, t, uid in _ah_answers(git, AH_V2_PATH)
                    if uid in english])


def read_ah_creative_prompts(git: GitFile) -> list[Row]:
    return _finish([_row(r["prompt"], "user_request", "user") for r in _ah_questions(git)
                    if r.get("category") == "creative_writing" and _en_prompt(r["prompt"])])


SI_REPO, SI_COMMIT = "yizhongw/self-instruct", "0b26ccaa415992100fa32df62d41b994cf928e23"
SI_PATH = "human_eval/user_oriented_instructions.jsonl"


# tasks whose input is a text to judge for offence (e.g. an insulting tweet): not a benign turn as a whole
_SI_SKIP = re.compile(r"offensive|toxic|hate|insult|profan|rude", re.I)


def read_si_instructions(git: GitFile) -> list[Row]:
    rows = []
    for r in _jsonl(git.read_text(SI_PATH)):
        if _SI_SKIP.search(r["instruction"]):
            continue
        for inst in r["instances"][:1]:
            inp = (inst.get("input") or "").strip()
            rows.append(_row(r["instruction"] + ("\n\n" + inp if inp else ""), "user_request", "user"))
    return _finish(rows)



# ---------------------------------------------------------------------------------------------
# train side: prompts that set format constraints or ask for a persona (the jailbreak head's benign false
# positives): IFEval, awesome-chatgpt-prompts additions of 2024-2025, fabric's patterns

IFE_REPO, IFE_COMMIT = "josejg/instruction_following_eval", "0c495b2f95155e8b10acb919ae283bfb4d5be6e2"
IFE_PATH = "instruction_following_eval/data/input_data.jsonl"


def read_ifeval(git: GitFile) -> list[Row]:
    return _finish([_row(r["prompt"], "user_request", "user") for r in _jsonl(git.read_text(IFE_PATH))
                    if _not_acp_2023(git, r["prompt"])])


ACP_REPO = "f/awesome-chatgpt-prompts"
# 2025-11-29, the last commit to prompts.csv before the bulk user submissions of December 2025
ACP_COMMIT = "eb5aaf35fd94cea865a429b2b42c10983f1752ae"
# the last commit of 2023 (2023-11-08): every prompt of this version is in a reserved collection
ACP_2023_COMMIT = "82f15563c9284c01ca54f0b915ae1aeda5a0fc3a"
# Benign in themselves but off the point of a negative: rephrasing "making the original source difficult to
# trace", and probing LLM safety with test prompts (the jailbreak signal's own subject)
ACP_SKIP_ACTS = {"Rephraser with Obfuscation", "Large Language Models Security Specialist"}


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = _word.findall(text.lower())
    return {tuple(w[i:i + n]) for i in range(max(1, len(w) - n + 1))}


def _acp_csv(git: GitFile, path: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(git.read_text(path))))


_ACP_2023: list = []


def _acp_2023(git: GitFile) -> tuple[set[str], set[str], list[set[tuple[str, ...]]]]:
    """dedup_keys, act names (lower case) and 5-word shingles of the reserved 2023 prompts.csv (its mirror
    found beside the mirror `git` reads)."""
    if not _ACP_2023:
        gd = Path(git.git_dir)
        root = gd.parent.parent if gd.name == "repo" else gd.parent
        old = _acp_csv(GitFile(mirror_dir(ACP_REPO, root), ACP_2023_COMMIT), "prompts.csv")
        _ACP_2023.append(({dedup_key(r["prompt"]) for r in old}, {r["act"].strip().lower() for r in old},
                          [_shingles(r["prompt"]) for r in old]))
    return _ACP_2023[0]


def _not_acp_2023(git: GitFile, text: str) -> bool:
    """Neither a 2023 awesome-chatgpt-prompts prompt nor an edited copy of one (another source may quote one,
    e.g. fabric's explain_math is its 'Math Teacher'): dedup_key, and under 20% shared 5-word shingles."""
    keys, _, old_sh = _acp_2023(git)
    sh = _shingles(text)
    return dedup_key(text) not in keys and all(len(sh & o) < 0.2 * len(sh | o) for o in old_sh)


def read_acp_recent(git: GitFile) -> list[Row]:
    from convmon_dev.modelsuite.public.jailbreak import _in_the_wild_marker

    old_acts = _acp_2023(git)[1]
    rows = [r for r in _acp_csv(git, "prompts.csv") if r["act"] not in ACP_SKIP_ACTS
            and r["act"].strip().lower() not in old_acts] + _acp_csv(git, "vibeprompts.csv")
    return _finish([_row(r["prompt"], "user_request", "user") for r in rows
                    if _not_acp_2023(git, r["prompt"]) and not _in_the_wild_marker(r["prompt"])])


FAB_REPO, FAB_COMMIT = "danielmiessler/fabric", "272f04dd3278f99bee49e94a7747b54708745a5d"


def read_fabric(git: GitFile) -> list[Row]:
    from convmon_dev.modelsuite.public.jailbreak import _in_the_wild_marker

    rows, heads = [], set()
    for p in _ls(git, "data/patterns"):
        if not p.endswith("/system.md"):
            continue
        t = git.read_text(p)
        # the t_* TELOS patterns share one long preamble: keep the first of each 60-word opening
        head = dedup_key(" ".join(t.split()[:60]))
        if head in heads or _in_the_wild_marker(t) or not _not_acp_2023(git, t):
            continue
        heads.add(head)
        # a pattern is a system prompt (data/patterns/<name>/system.md): it reaches convmon as a system turn,
        # where jailbreak is not decided; as a user turn it set the jailbreak decision (suite-2f6b6d6e93bc:
        # threshold 0.9888, length alpha 1.5, a late injection in a long message missed)
        rows.append(_row(t, "system_prompt", "system"))
    return _finish(rows)


# ---------------------------------------------------------------------------------------------

_F = ("clean_text; 3 characters to 1,500 words (longer dropped); non-English dropped; rows with a slur, "
      "gendered/ableist insult or kill threat dropped; exact duplicates (dedup_key) dropped")
_ALL0 = "every row -> 0 for every signal (benign); tag = category, role = how the turn reaches convmon"

SOURCES: list[Source] = [
    # ---- train: threshold choice on their dev split; possibly training negatives later ----
    Source(id="benign_mtbench_answers", task=TASK, role="train", dev_share=TUNE_SHARE, repo=MTB_REPO, commit=MTB_COMMIT,
           paths=MTB_ANSWER_PATHS, licence="Apache-2.0", licence_evidence=MTB_LICENCE, citation=MTB_CITATION,
           labels=_ALL0 + "; each turn of each answer -> role assistant, tag assistant:<model>",
           filters=_F + "; 15 of the 31 published models (checkpoints also in an eval-side collection, LLaMA "
                        "base and three models tied to a reserved collection left out)",
           read=read_mtb_answers),
    Source(id="benign_mtbench_questions", task=TASK, role="train", dev_share=TUNE_SHARE, repo=MTB_REPO, commit=MTB_COMMIT,
           paths=[MTB_QUESTION_PATH], licence="Apache-2.0", licence_evidence=MTB_LICENCE, citation=MTB_CITATION,
           labels=_ALL0 + "; both turns of the 80 MT-bench questions (written by the LMSYS team) -> role user, "
                          "tag user_request",
           filters=_F, read=read_mtb_questions),
    Source(id="benign_hwu64_requests", task=TASK, role="train", dev_share=TUNE_SHARE, repo=HWU_REPO, commit=HWU_COMMIT,
           paths=[f"{HWU_DIR}/KFold_*/testset/csv/*.csv"], licence="CC-BY-4.0",
           licence_evidence="LICENSE at that commit: Attribution 4.0 International; README: 'All data are "
                            "released under the Creative Commons Attribution 4.0 International License'",
           citation="Liu, Eshghi, Swietojanski, Rieser 2019, Benchmarking Natural Language Understanding Services "
                    "for building Conversational Agents (IWSDS); the HWU64 home-assistant requests",
           labels=_ALL0 + "; what crowd workers asked a home assistant (column answer_from_anno) -> role user, "
                          "tag user_request",
           filters=_F + "; the ten cross-validation test folds together (the full file is absent from the mirror)",
           read=read_hwu, max_rows=800),
    Source(id="benign_reddit_stress", task=TASK, role="train", dev_share=TUNE_SHARE, repo=STRESS_REPO, commit=STRESS_COMMIT,
           paths=[STRESS_PATH], licence="Apache-2.0",
           licence_evidence="LICENSE at that commit: Apache License 2.0 (repository of the paper's datasets)",
           citation="Rastogi, Liu, Cambria 2022, Stress Detection from Social Media Articles: New Dataset "
                    "Benchmark and Analytical Study (IEEE WCCI / IJCNN 2022)",
           labels=_ALL0 + "; 'Reddit Combi' posts (title + body) labelled stress-positive (1) -> role user, tag "
                          "distress; stress-negative posts not read",
           filters=_F + "; untargeted profanity kept (label 0 in convmon's toxicity definition)",
           read=read_stress, max_rows=800),
    Source(id="benign_multiclimate", task=TASK, role="train", dev_share=TUNE_SHARE, repo=MC_REPO, commit=MC_COMMIT,
           paths=[f"dataset/{v}/{v}.csv" for v in MC_TRAIN_VIDEOS], licence="CC0-1.0",
           licence_evidence=MC_LICENCE_EVIDENCE, citation=MC_CITATION,
           labels=_ALL0 + "; transcript segments of mainstream climate-change videos (the same texts as the "
                          "climate task's training source) -> role user, tag climate_mainstream",
           filters=_F + "; read through climate.py's reader (train/dev videos only: their test videos stay "
                        "the climate task's evaluation)",
           read=read_multiclimate, max_rows=700),
    Source(id="benign_arena_hard_answers", task=TASK, role="train", dev_share=TUNE_SHARE, repo=AH_REPO,
           commit=AH_COMMIT, paths=AH_V01_PATHS, licence="Apache-2.0", licence_evidence=AH_LICENCE,
           citation=AH_CITATION,
           labels=_ALL0 + "; answers of GPT-3.5-Turbo (0125) and GPT-4 (0314, 0613) to the 500 Arena-Hard v0.1 "
                          "prompts (coding, technical, reasoning questions from Chatbot Arena) -> role assistant, "
                          "tag assistant:<model>",
           filters=_F + "; the answer text only (the 'answer' field of the assistant message)",
           read=read_ah_answers, max_rows=1500),
    Source(id="benign_arena_hard_v2_answers", task=TASK, role="train", dev_share=TUNE_SHARE, repo=AH_REPO,
           commit=AH_COMMIT, paths=[AH_V2_PATH], licence="Apache-2.0", licence_evidence=AH_LICENCE,
           citation=AH_CITATION,
           labels=_ALL0 + "; o3-mini's answers to the 750 Arena-Hard v2.0 prompts (hard coding and math prompts "
                          "and 250 creative-writing prompts: stories, poems, role-play scripts) -> role assistant, "
                          "tag assistant:o3-mini-2025-01-31",
           filters=_F + "; the answer text only; answers to non-English prompts mostly dropped by the English "
                        "check",
           read=read_ah_v2_answers, max_rows=1000),
    Source(id="benign_arena_hard_creative_prompts", task=TASK, role="train", dev_share=TUNE_SHARE, repo=AH_REPO,
           commit=AH_COMMIT, paths=[AH_V2_QUESTIONS], licence="Apache-2.0", licence_evidence=AH_LICENCE,
           citation=AH_CITATION,
           labels=_ALL0 + "; the creative-writing prompts of Arena-Hard v2.0 (what Chatbot Arena users asked: "
                          "stories, poems, role-play and persona scripts) -> role user, tag user_request",
           filters=_F + "; category creative_writing only (coding and math prompts not read); non-English "
                        "prompts dropped by the English check",
           read=read_ah_creative_prompts),
    Source(id="benign_self_instruct_user_requests", task=TASK, role="train", dev_share=TUNE_SHARE, repo=SI_REPO,
           commit=SI_COMMIT, paths=[SI_PATH], licence="Apache-2.0",
           licence_evidence="LICENSE at that commit: Apache License 2.0 (yizhongw/self-instruct, the paper's code "
                            "and data)",
           citation="Wang, Kordi, Mishra, Liu, Smith, Khashabi, Hajishirzi 2023, Self-Instruct: Aligning Language "
                    "Models with Self-Generated Instructions (ACL 2023); the 252 user-oriented instructions "
                    "written by the authors",
           labels=_ALL0 + "; each instruction with the input of its first instance (blank line between) -> role "
                          "user, tag user_request; the outputs and model predictions not read",
           filters=_F, read=read_si_instructions),
    Source(id="benign_ifeval_prompts", task=TASK, role="train", dev_share=TUNE_SHARE, repo=IFE_REPO,
           commit=IFE_COMMIT, paths=[IFE_PATH], licence="Apache-2.0",
           licence_evidence="LICENSE at that commit: Apache License 2.0; pyproject.toml: 'License :: OSI Approved :: "
                            "Apache Software License'; README: an unofficial pip-installable fork of IFEval "
                            "(google-research/google-research instruction_following_eval, Apache-2.0)",
           citation="Zhou, Lu, Mishra, Brahma, Basu, Luan, Zhou, Hou 2023, Instruction-Following Evaluation for "
                    "Large Language Models (arXiv 2311.07911); the 541 IFEval prompts",
           labels=_ALL0 + "; each prompt (a task with verifiable format constraints: word counts, no commas, all "
                          "lowercase, JSON output, 'repeat the request first' ...) -> role user, tag user_request",
           filters=_F + "; the prompt field only (instruction ids and kwargs not read)",
           read=read_ifeval, max_rows=800),
    Source(id="benign_awesome_prompts_2024_25", task=TASK, role="train", dev_share=TUNE_SHARE, repo=ACP_REPO,
           commit=ACP_COMMIT, paths=["prompts.csv", "vibeprompts.csv", f"prompts.csv at {ACP_2023_COMMIT}"],
           licence="CC0-1.0",
           licence_evidence="LICENSE at that commit: Creative Commons Legal Code, CC0 1.0 Universal",
           citation="f/awesome-chatgpt-prompts (Fatih Kadir Akin and contributors), the prompts added in 2024 and "
                    "2025 (up to 2025-11-29)",
           labels=_ALL0 + "; each 'act as ...' / 'you are ...' role-play or persona prompt (column prompt) and each "
                          "vibe-coding app prompt of vibeprompts.csv -> role user, tag user_request",
           filters=_F + f"; prompts.csv and vibeprompts.csv at {ACP_COMMIT} (2025-11-29, before the December-2025 "
                        f"bulk submissions); every prompt whose dedup_key occurs in prompts.csv at {ACP_2023_COMMIT} "
                        "(the last commit of 2023; that version is bundled in a reserved collection) dropped, and so "
                        "is every prompt whose act name occurs there (edited versions of those prompts) or that "
                        "shares 20% or more of its 5-word shingles (Jaccard) with one of them; prompts with "
                        "jailbreak.py's in-the-wild persona markers dropped; two acts dropped by hand ('Rephraser "
                        "with Obfuscation': hiding a text's source; 'Large Language Models Security Specialist': "
                        "probing LLM safety)",
           read=read_acp_recent),
    Source(id="benign_fabric_patterns", task=TASK, role="train", dev_share=TUNE_SHARE, repo=FAB_REPO,
           commit=FAB_COMMIT, paths=["data/patterns/*/system.md"], licence="MIT",
           licence_evidence="LICENSE at that commit: MIT License (Copyright (c) 2012-2024 Scott Chacon and others, "
                            "as the fabric repository ships it)",
           citation="Miessler and contributors, fabric: an open-source framework for augmenting humans using AI; "
                    "its crowdsourced prompt patterns (2024-2025)",
           labels=_ALL0 + "; each pattern's system.md (an 'IDENTITY and PURPOSE' persona - 'You are an expert "
                          "...' - with steps and strict OUTPUT INSTRUCTIONS: 'only output Markdown', 'do not give "
                          "warnings or notes') -> role system (each file is a system prompt: convmon decides no jailbreak on system turns), tag system_prompt",
           filters=_F + "; patterns over 1,500 words dropped by the length bound; prompts with jailbreak.py's "
                        "in-the-wild persona markers dropped (none at that commit)",
           read=read_fabric),
    # ---- train, tuning only (dev_share 1.0: every row is in the dev split, none trains) ----
    Source(id="benign_sustainability_climate", task=TASK, role="train", dev_share=1.0, repo=CNX_SUS_REPO,
           commit=CNX_SUS_COMMIT, paths=[CNX_SUS_COLLECTION, "modules/*/index.cnxml"], licence="CC-BY-4.0",
           licence_evidence="LICENSE at that commit: Attribution 4.0 International; README: 'This book is available "
                            "under the Creative Commons Attribution License'; the collection file's md:license: "
                            "http://creativecommons.org/licenses/by/4.0/ ('Creative Commons Attribution License 4.0')",
           citation="Theis and Tomkin (eds.) 2012, Sustainability: A Comprehensive Foundation (University of "
                    "Illinois Open Source Textbook Initiative; OpenStax CNX col11325), chiefly chapter 3 'Climate and "
                    "Global Change'; the cnx-user-books export of the book",
           labels=_ALL0 + "; textbook paragraphs explaining climate science (greenhouse effect, albedo, insolation "
                          "and Milankovitch cycles, ice-core and instrument records, observed impacts, projections, "
                          "emissions and mitigation) -> role assistant (expository, as an assistant answering a "
                          "climate question), tag climate_mainstream",
           filters=_F + "; the modules in the collection's order, foreword and preface left out; running paragraphs "
                        "only (learning objectives, review questions, references, resources, figures, tables and "
                        "boxed notes left out); sentences that point at a figure, table, formula, inline list or "
                        "another part of the book dropped; paragraphs over 150 words cut into runs of whole "
                        "sentences of about 100 words; every paragraph of chapter 3, from the other chapters only "
                        "those about climate change (greenhouse gases, warming, emissions ...); 5 to 150 words; a "
                        "paragraph that reports what skeptics or 'some' argue, or calls the subject controversial, "
                        "dropped, and so is one that speaks of a debate ('presently being debated', 'both sides of this "
                        "argument'): read alone it is not a mainstream statement",
           read=read_cnx_sustainability, max_rows=600),
    Source(id="benign_biology2e_climate", task=TASK, role="train", dev_share=1.0, repo=CNX_BIO_REPO,
           commit=CNX_BIO_COMMIT, paths=[CNX_BIO_COLLECTION, "modules/*/index.cnxml"], licence="CC-BY-4.0",
           licence_evidence="LICENSE at that commit: Attribution 4.0 International; README: 'This book is available "
                            "under the Creative Commons Attribution License'; the collection file's md:license: "
                            "http://creativecommons.org/licenses/by/4.0/",
           citation="Clark, Douglas and Choi 2018, Biology 2e (OpenStax, Rice University; OpenStax CNX col24361), "
                    "chiefly section 44.5 'Climate and the Effects of Global Climate Change'; the cnx-user-books "
                    "export of the book",
           labels=_ALL0 + "; textbook paragraphs on climate and climate change (climate vs weather, ice-core "
                          "evidence, natural and human drivers, greenhouse gases, observed effects, extinction "
                          "threats, the carbon cycle) -> role assistant (expository), tag climate_mainstream",
           filters=_F + "; as benign_sustainability_climate: running paragraphs only, book-bound sentences "
                        "dropped, long paragraphs cut into runs of whole sentences; every paragraph of section 44.5, "
                        "from the other modules only those about climate change; 5 to 150 words; paragraphs "
                        "reporting contrarian views or a debate dropped",
           read=read_cnx_biology, max_rows=600),
    # ---- eval: never trained on, never used to choose anything ----
    Source(id="benign_vicuna_bench_answers", task=TASK, role="eval", repo=VB_REPO, commit=VB_COMMIT,
           paths=VB_ANSWER_PATHS, licence="Apache-2.0", licence_evidence=VB_LICENCE, citation=VB_CITATION,
           labels=_ALL0 + "; answers of Bard, GPT-3.5 (March 2023), Alpaca-13B, LLaMA-13B and Vicuna-13B/7B "
                          "(March 2023) to the 80 Vicuna questions -> role assistant, tag assistant:<model>",
           filters=_F + "; a leading ': ' artefact stripped; the second Vicuna-13B run (new-hp) not read",
           read=read_vb_answers),
    Source(id="benign_vicuna_bench_questions", task=TASK, role="eval", repo=VB_REPO, commit=VB_COMMIT,
           paths=[VB_QUESTION_PATH], licence="Apache-2.0", licence_evidence=VB_LICENCE, citation=VB_CITATION,
           labels=_ALL0 + "; the 80 Vicuna-bench questions -> role user, tag user_request",
           filters=_F, read=read_vb_questions),
    Source(id="benign_llmfao_answers", task=TASK, role="eval", repo=LF_REPO, commit=LF_COMMIT, paths=LF_PATHS,
           licence="CC-BY-4.0", licence_evidence=LF_LICENCE, citation=LF_CITATION,
           labels=_ALL0 + "; each chat model's answer to each prompt -> role assistant, tag assistant:<model>",
           filters=_F + "; code-completion models, the French-translation prompt, checkpoints kept for the "
                        "train side (GPT-4, GPT-3.5 Turbo, Vicuna v1.3) and three models tied to a reserved "
                        "collection left out",
           read=read_lf_answers),
    Source(id="benign_llmfao_prompts", task=TASK, role="eval", repo=LF_REPO, commit=LF_COMMIT,
           paths=["prompts.jsonl"], licence="CC-BY-4.0", licence_evidence=LF_LICENCE, citation=LF_CITATION,
           labels=_ALL0 + "; the crowdsourced benchmark prompts -> role user, tag user_request",
           filters=_F + "; the French-translation prompt left out", read=read_lf_prompts),
    Source(id="benign_banking77_requests", task=TASK, role="eval", repo=BANK_REPO, commit=BANK_COMMIT,
           paths=BANK_PATHS, licence="CC-BY-4.0",
           licence_evidence="LICENSE at that commit: Attribution 4.0 International; README: 'The datasets "
                            "shared on this repository are licensed under the license found in the LICENSE file'",
           citation="Casanueva et al. 2020, Efficient Intent Detection with Dual Sentence Encoders (NLP4ConvAI); "
                    "BANKING77",
           labels=_ALL0 + "; online-banking customer queries -> role user, tag user_request",
           filters=_F, read=read_banking, max_rows=500),
    Source(id="benign_counsel_chat_questions", task=TASK, role="eval", repo=CC_REPO, commit=CC_COMMIT,
           paths=[CC_PATH], licence="MIT", licence_evidence=CC_LICENCE, citation=CC_CITATION,
           labels=_ALL0 + "; questions people asked licensed therapists (depression, anxiety, grief, "
                          "relationships ...) -> role user, tag distress (user_request for the "
                          "professional-ethics and legal-regulatory topics)",
           filters=_F + "; questionText (questionTitle where empty)", read=read_cc_questions),
    Source(id="benign_counsel_chat_answers", task=TASK, role="eval", repo=CC_REPO, commit=CC_COMMIT,
           paths=[CC_PATH], licence="MIT", licence_evidence=CC_LICENCE, citation=CC_CITATION,
           labels=_ALL0 + "; the therapists' answers -> role assistant, tag assistant:human_therapist",
           filters=_F, read=read_cc_answers, max_rows=900),
    Source(id="benign_climatex_statements", task=TASK, role="eval", repo=CX_REPO, commit=CX_COMMIT,
           paths=[CX_PATH], licence="MIT",
           licence_evidence="LICENSE at that commit: MIT License, Copyright (c) 2024 Romain Lacombe",
           citation="Lacombe, Wu, Dilworth 2023, ClimateX: Do LLMs Accurately Assess Human Expert Confidence in "
                    "Climate Statements? (Tackling Climate Change with ML workshop, NeurIPS 2023); statements "
                    "from the IPCC AR6 WGI/WGII/WGIII reports",
           labels=_ALL0 + "; IPCC AR6 statements (any confidence level; all mainstream science) -> role "
                          "assistant (expository, as an assistant answering a climate question), tag "
                          "climate_mainstream",
           filters=_F + "; citations such as '(Liu et al., 2016)', '(high confidence)' call-outs and a leading "
                        "'Medium confidence' table label removed, "
                        "'CO 2' joined to 'CO2'; fragments starting inside a citation dropped",
           read=read_climatex, max_rows=700),
    Source(id="benign_sgd_system_turns", task=TASK, role="eval", repo=SGD_REPO, commit=SGD_COMMIT,
           paths=SGD_PATHS, licence="CC-BY-SA-4.0",
           licence_evidence="LICENSE.txt at that commit: Attribution-ShareAlike 4.0 International; README: 'The "
                            "SGD and SGD-X datasets are released under CC BY-SA 4.0 license'",
           citation="Rastogi, Zang, Sunkara, Gupta, Khaitan 2020, Towards Scalable Multi-domain Conversational "
                    "Agents: The Schema-Guided Dialogue Dataset (AAAI 2020)",
           labels=_ALL0 + "; the assistant side of task dialogues (restaurants, travel, banking ..., outlined by "
                          "a simulator and written by crowd workers) -> role assistant, tag "
                          "assistant:sgd_crowd_paraphrase",
           filters=_F + "; test-split files 001-011 (several other files are absent from the mirror); user "
                        "turns not read",
           read=read_sgd_system, max_rows=600),
]


def bucket_table(rows: list[dict]) -> str:
    """A text table of rows per source x role x length bucket (and the category totals)."""
    cells = Counter((r["source"], r["role"], length_bucket(r["text"])) for r in rows)
    srcs = sorted({r["source"] for r in rows}, key=lambda s: ({"train": 0, "dev": 0}.get(
        next(r["split"] for r in rows if r["source"] == s), 1), s))
    cols = [(role, b) for role in ("user", "assistant") for b in ("<=40", "41-150", ">150")]
    head = f"{'source':<34} {'split':<9}" + "".join(f"{r[:4]} {b:>6} " for r, b in cols) + "  total"
    lines = [head, "-" * len(head)]
    for s in srcs:
        split = "eval" if any(r["split"] == "eval" for r in rows if r["source"] == s) else "train+dev"
        vals = [cells[(s, role, b)] for role, b in cols]
        lines.append(f"{s:<34} {split:<9}" + "".join(f"{v:>11} " for v in vals) + f"  {sum(vals):>5}")
    for group, name in ((("train", "dev"), "TRAIN group"), (("eval",), "EVAL group")):
        g = [r for r in rows if r["split"] in group]
        c = Counter((r["role"], length_bucket(r["text"])) for r in g)
        lines.append(f"{name:<44}" + "".join(f"{c[k]:>11} " for k in cols) + f"  {len(g):>5}")
        cats = Counter(r["tag"].split(":")[0] for r in g)
        lines.append(f"  {name} by category: " + ", ".join(f"{k} {v}" for k, v in sorted(cats.items())))
    return "\n".join(lines)


def read_folder(folder: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(folder.glob("*.jsonl")) for line in p.read_text().splitlines() if line]
