#!/usr/bin/env python3
"""Validate a policy-as-data folder and report label/tag counts.

Usage:
    python models/policies/validate_policy.py models/policies/<policy_id> [--markdown]

Checks (stdlib only, cheap enough to run in CI):
  * policy.toml has the required keys and a non-empty claim_types list;
  * claims.jsonl rows have the required fields, unique claim_id, a known type,
    1-2 "mainstream" statements and 2-3 "counter_examples";
  * train.jsonl / dev.jsonl rows have text/label/role/tag with valid values;
  * no dev text is an exact or near duplicate of a train text or of any
    sentence in the claim bank (claim, mainstream, counter_examples).

Exit status is 1 if any error is found. With --markdown the per-split counts
are printed as Markdown tables (this is how the counts in README.md files are
produced).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from difflib import SequenceMatcher
from pathlib import Path

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore

REQUIRED_POLICY_KEYS = ("id", "name", "description", "threshold", "applies_to", "claim_types")
ROLES = {"user", "assistant"}

# ---------------------------------------------------------------- near-dups
_NON_ALNUM = re.compile(r"[^0-9a-zà-ÿ]+")


def normalize(text: str) -> str:
    return _NON_ALNUM.sub(" ", text.lower()).strip()


def shingles(words: list[str], n: int = 3) -> set[tuple[str, ...]]:
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class _Item:
    __slots__ = ("text", "norm", "words", "wset", "sh")

    def __init__(self, text: str):
        self.text = text
        self.norm = normalize(text)
        self.words = self.norm.split()
        self.wset = set(self.words)
        self.sh = shingles(self.words)


def _jac(a: set, b: set) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def near_duplicate(a: _Item, b: _Item) -> str | None:
    """Return a reason string if a and b are exact/near duplicates, else None."""
    if a.norm == b.norm:
        return "exact"
    j3 = _jac(a.sh, b.sh)
    if j3 >= 0.5:
        return f"shingle_jaccard={j3:.2f}"
    # containment: one text quotes (most of) the other verbatim
    small, big = (a, b) if len(a.sh) <= len(b.sh) else (b, a)
    if len(small.words) >= 8 and small.sh:
        cont = len(small.sh & big.sh) / len(small.sh)
        if cont >= 0.8:
            return f"containment={cont:.2f}"
    if _jac(a.wset, b.wset) >= 0.4:
        r = SequenceMatcher(None, a.norm, b.norm).ratio()
        if r >= 0.85:
            return f"char_ratio={r:.2f}"
    return None


def find_overlaps(queries: list[str], references: list[str]) -> list[tuple[int, str, str]]:
    """For each query text that near-duplicates some reference text, return
    (query_index, reference_text, reason). One hit per query."""
    refs = [_Item(t) for t in references]
    hits = []
    for qi, q in enumerate(queries):
        qi_item = _Item(q)
        for r in refs:
            why = near_duplicate(qi_item, r)
            if why:
                hits.append((qi, r.text, why))
                break
    return hits


# ---------------------------------------------------------------- loading
def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for ln, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{ln}: invalid JSON: {exc}")
    return rows


def bank_sentences(claims: list[dict]) -> list[str]:
    out = []
    for c in claims:
        out.append(c["claim"])
        out.extend(c.get("mainstream", []))
        out.extend(c.get("counter_examples", []))
    return out


def count_table(rows: list[dict], keys: tuple[str, ...]) -> Counter:
    return Counter(tuple(r.get(k) for k in keys) for r in rows)


def markdown_counts(name: str, rows: list[dict]) -> str:
    lines = [f"**{name}** ({len(rows)} rows)", ""]
    labels = Counter(r["label"] for r in rows)
    pos = labels.get(1, 0)
    summary = f"label 1: {pos} ({100 * pos / max(len(rows), 1):.1f}%), label 0: {labels.get(0, 0)}"
    if rows and "role" in rows[0]:
        roles = Counter(r["role"] for r in rows)
        summary += "; roles: " + ", ".join(f"{k} {v}" for k, v in sorted(roles.items()))
    lines.append(summary)
    lines += ["", "| tag | label 0 | label 1 |", "|---|---:|---:|"]
    per = Counter((r["tag"], r["label"]) for r in rows)
    for tag in sorted({t for t, _ in per}):
        lines.append(f"| {tag} | {per.get((tag, 0), 0)} | {per.get((tag, 1), 0)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- validate
def validate(folder: Path) -> tuple[list[str], dict]:
    errors: list[str] = []
    policy_path = folder / "policy.toml"
    if not policy_path.exists():
        return [f"missing {policy_path}"], {}
    policy = tomllib.loads(policy_path.read_text(encoding="utf-8"))
    for k in REQUIRED_POLICY_KEYS:
        if k not in policy:
            errors.append(f"policy.toml: missing key {k!r}")
    if policy.get("id") != folder.name:
        errors.append(f"policy.toml: id {policy.get('id')!r} != folder name {folder.name!r}")
    types = [t["id"] if isinstance(t, dict) else t for t in policy.get("claim_types", [])]
    if not types:
        errors.append("policy.toml: claim_types is empty")
    for r in policy.get("applies_to", []):
        if r not in ROLES:
            errors.append(f"policy.toml: applies_to has unknown role {r!r}")

    data: dict = {"policy": policy}
    claims = read_jsonl(folder / "claims.jsonl") if (folder / "claims.jsonl").exists() else []
    if not claims:
        errors.append("claims.jsonl missing or empty")
    seen = set()
    for c in claims:
        cid = c.get("claim_id")
        if cid in seen:
            errors.append(f"claims.jsonl: duplicate claim_id {cid}")
        seen.add(cid)
        if c.get("type") not in types:
            errors.append(f"claims.jsonl: {cid}: unknown type {c.get('type')!r}")
        if not isinstance(c.get("claim"), str) or not c["claim"].strip():
            errors.append(f"claims.jsonl: {cid}: empty claim")
        ms = c.get("mainstream")
        if not isinstance(ms, list) or not 1 <= len(ms) <= 2:
            errors.append(f"claims.jsonl: {cid}: mainstream must be a list of 1-2 strings")
        cx = c.get("counter_examples")
        if not isinstance(cx, list) or not 2 <= len(cx) <= 3:
            errors.append(f"claims.jsonl: {cid}: counter_examples must be a list of 2-3 strings")
    data["claims"] = claims

    for split in ("train", "dev"):
        p = folder / f"{split}.jsonl"
        rows = read_jsonl(p) if p.exists() else []
        if not rows:
            errors.append(f"{split}.jsonl missing or empty")
        for i, r in enumerate(rows):
            if not isinstance(r.get("text"), str) or not r["text"].strip():
                errors.append(f"{split}.jsonl row {i}: empty text")
            if r.get("label") not in (0, 1):
                errors.append(f"{split}.jsonl row {i}: label must be 0 or 1")
            if r.get("role") not in ROLES:
                errors.append(f"{split}.jsonl row {i}: role must be user|assistant")
            if not r.get("tag"):
                errors.append(f"{split}.jsonl row {i}: missing tag")
            ct = r.get("claim_type")
            if ct is not None and ct not in types:
                errors.append(f"{split}.jsonl row {i}: unknown claim_type {ct!r}")
        data[split] = rows

    dev_texts = [r["text"] for r in data.get("dev", [])]
    for qi, ref, why in find_overlaps(dev_texts, [r["text"] for r in data.get("train", [])]):
        errors.append(f"dev overlaps train ({why}): {dev_texts[qi]!r} ~ {ref!r}")
    for qi, ref, why in find_overlaps(dev_texts, bank_sentences(claims)):
        errors.append(f"dev overlaps claim bank ({why}): {dev_texts[qi]!r} ~ {ref!r}")
    return errors, data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--markdown", action="store_true", help="print count tables as Markdown")
    args = ap.parse_args(argv)
    errors, data = validate(args.folder)
    for e in errors:
        print("ERROR:", e, file=sys.stderr)
    if data.get("claims"):
        per_type = Counter(c["type"] for c in data["claims"])
        print(f"claims.jsonl: {len(data['claims'])} claims; " + ", ".join(f"{k} {v}" for k, v in sorted(per_type.items())))
    for split in ("train", "dev"):
        rows = data.get(split, [])
        if not rows:
            continue
        if args.markdown:
            print()
            print(markdown_counts(f"{split}.jsonl", rows))
        else:
            lab = Counter(r["label"] for r in rows)
            print(f"{split}.jsonl: {len(rows)} rows, label1={lab.get(1, 0)} ({100 * lab.get(1, 0) / len(rows):.1f}%)")
    print("OK" if not errors else f"{len(errors)} error(s)", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
