"""Reserved texts: keep the OpenAssistant evaluation prompts out of every source, and look for near copies.

Issue 18 reserves the Open-Assistant `oasst-model-eval` repository (its prompt sets and its sampling
reports) for independent evaluation. This project keeps no reserved text; it keeps the sha256 of each
reserved prompt's dedup key in `models/data/public/reserved_text_hashes.txt`, and prepare.py drops any row
of any source whose text has one of those keys.

`python -m convmon_dev.modelsuite.public.reserved --mirror DIR` (dev-time; DIR is a `fetch`ed mirror of
Open-Assistant/oasst-model-eval):

1. adds the hash of every prompt of every prompt file and sampling report at the pinned commit to the
   hashes file (existing lines are kept; nothing else is written), and
2. reports near copies in the prepared data (models/data/public): rows whose text equals a reserved prompt,
   and rows of at least MIN_WORDS words that share at least NEAR of their 5-word shingles with the reserved
   prompts and the sampled model outputs. A near copy is a place to look, not a verdict: short stock
   phrases ("let me know if there is anything I can do") recur in any large set of chat replies.

The reserved texts are read into memory for this check only and are never written anywhere.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

from convmon_dev.modelsuite.public.prepare import RESERVED_HASHES
from convmon_dev.modelsuite.public.sources import GitFile, dedup_key

REPO, COMMIT = "Open-Assistant/oasst-model-eval", "ce935dee6922ec75d5a4006dd1c3595b39a01fdf"
MIN_WORDS, NEAR, N = 12, 0.5, 5
_word = re.compile(r"[a-z0-9']+")


def shingles(text: str, n: int = N) -> set[int]:
    w = _word.findall(text.lower())
    return {hash(" ".join(w[i:i + n])) for i in range(max(0, len(w) - n + 1))}


def _prompt_of(obj) -> str | None:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        t = obj.get("prompt") or obj.get("text")
        return t if isinstance(t, str) else None
    return None


def reserved_texts(git: GitFile, paths: list[str]) -> tuple[set[str], list[str]]:
    """(prompts, sampled outputs) of every .json/.jsonl file of the repository; files absent from the mirror or
    not JSON are skipped."""
    prompts, outputs = set(), []
    for path in paths:
        if not path.endswith((".json", ".jsonl")) or path.startswith("model_comparer/"):
            continue
        try:
            text = git.read_text(path)
        except SystemExit:  # a blob absent from the mirror (too large to mirror)
            continue
        try:
            docs = [json.loads(x) for x in text.split("\n") if x.strip()] if path.endswith(".jsonl") else [json.loads(text)]
        except json.JSONDecodeError:
            continue
        for doc in docs:
            if isinstance(doc, dict) and isinstance(doc.get("prompts"), list):  # a sampling report
                for p in doc["prompts"]:
                    if (t := _prompt_of(p)):
                        prompts.add(t)
                    for r in p.get("results", []) if isinstance(p, dict) else []:
                        outputs += [o for o in r.get("outputs", []) if isinstance(o, str)]
            elif (t := _prompt_of(doc)):
                prompts.add(t)
    return prompts, outputs


def key_hash(text: str) -> str:
    return hashlib.sha256(dedup_key(text).encode()).hexdigest()


def main(argv: list[str] | None = None) -> None:
    import subprocess

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, required=True, help="git dir of a mirror of " + REPO)
    ap.add_argument("--data", type=Path, default=RESERVED_HASHES.parent)
    a = ap.parse_args(argv)
    git = GitFile(a.mirror, COMMIT)
    paths = subprocess.run(["git", "--git-dir", str(a.mirror), "ls-tree", "-r", "--name-only", COMMIT],
                           check=True, capture_output=True, text=True).stdout.split()
    prompts, outputs = reserved_texts(git, paths)
    print(f"{REPO}@{COMMIT}: {len(prompts)} prompts, {len(outputs)} sampled outputs")
    lines = RESERVED_HASHES.read_text().splitlines()
    have = {l.strip() for l in lines if l.strip() and not l.startswith("#")}
    new = sorted({key_hash(p) for p in prompts if dedup_key(p)} - have)
    RESERVED_HASHES.write_text("\n".join(lines + new) + "\n")
    print(f"{len(new)} prompt hashes added to {RESERVED_HASHES} ({len(have) + len(new)} in all)")
    ref: set[int] = set()
    for t in [*prompts, *outputs]:
        ref |= shingles(t)
    keys = {dedup_key(p) for p in prompts}
    equal, near = [], []
    for f in sorted(a.data.glob("*/*.jsonl")):
        for line in f.open(encoding="utf-8"):
            r = json.loads(line)
            if dedup_key(r["text"]) in keys:
                equal.append((f.stem, r["split"]))
            elif len(r["text"].split()) >= MIN_WORDS and (s := shingles(r["text"])):
                c = len(s & ref) / len(s)
                if c >= NEAR:
                    near.append((round(c, 2), f.stem, r["split"]))
    print(f"rows equal to a reserved prompt (prepare.py drops them once the hashes are in): {len(equal)}")
    for src, split in sorted(set(equal)):
        print(f"  {src} ({split}): {equal.count((src, split))}")
    print(f"rows of >= {MIN_WORDS} words sharing >= {NEAR:.0%} of their {N}-word shingles with reserved text: "
          f"{len(near)} (max share {max((c for c, *_ in near), default=0)})")
    for c, src, split in sorted(near, reverse=True)[:20]:
        print(f"  {c:.2f} {src} ({split})")


if __name__ == "__main__":
    main()
