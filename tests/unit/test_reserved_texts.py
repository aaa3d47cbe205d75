"""Reserved evaluation texts never reach the prepared data (issue 18, item 11), and the tool that lists them
reads both shapes of the reserved repository's files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from convmon_dev.modelsuite.public.prepare import RESERVED_HASHES, is_reserved, reserved_keys
from convmon_dev.modelsuite.public.reserved import reserved_texts, shingles
from convmon_dev.modelsuite.public.sources import dedup_key

DATA = Path(__file__).resolve().parents[2] / "models" / "data" / "public"


def test_no_prepared_row_is_a_reserved_text():
    keys = reserved_keys()
    assert len(keys) > 1000, "the reserved prompt hashes are missing"
    hits = [(f.name, r["text"][:40]) for f in sorted(DATA.glob("*/*.jsonl"))
            for r in map(json.loads, f.open(encoding="utf-8")) if is_reserved(r["text"], keys)]
    assert hits == []


def test_a_reserved_prompt_is_recognised_whatever_its_case_and_punctuation():
    text = "Can you tell me about GLaDOS?"
    keys = frozenset({hashlib.sha256(dedup_key(text).encode()).hexdigest()})
    assert is_reserved("can you tell me about glados", keys)
    assert not is_reserved("can you tell me about portal", keys)
    assert RESERVED_HASHES.read_text().startswith("#")  # the file says what it is


class _Git:
    def __init__(self, files: dict[str, str]):
        self.files = files

    def read_text(self, path: str) -> str:
        if path not in self.files:
            raise SystemExit(f"cannot read {path}")  # as GitFile does for a blob absent from a mirror
        return self.files[path]


def test_reserved_texts_reads_prompt_files_and_sampling_reports_and_skips_absent_blobs():
    report = {"model_name": "m", "prompts": [{"prompt": "Write a haiku about rain.",
                                             "results": [{"outputs": ["Rain taps the window", "Grey clouds"]}]}]}
    git = _Git({"data/p.jsonl": '"Tell me a joke about cats."\n{"prompt": "What is a black hole?"}\n',
                "reports/r.json": json.dumps(report), "README.md": "# not data"})
    prompts, outputs = reserved_texts(git, ["data/p.jsonl", "reports/r.json", "reports/absent.json", "README.md"])
    assert prompts == {"Tell me a joke about cats.", "What is a black hole?", "Write a haiku about rain."}
    assert outputs == ["Rain taps the window", "Grey clouds"]


def test_a_near_copy_shares_most_shingles_and_an_unrelated_text_none():
    ref = shingles("please explain the theory of relativity to a ten year old child in simple words")
    near = shingles("Please explain the theory of relativity to a ten year old child, in plain words")
    other = shingles("the weather in lisbon is warm and sunny for most of the year")
    assert len(near & ref) / len(near) >= 0.5
    assert not other & ref
