#!/usr/bin/env python3
"""Build the hand-written convmon datasets from the raw text files.

Usage (from the repository root):

    python models/data/tools/build_datasets.py

Inputs (all hand-written, see models/data/README.md):
  tools/raw/tox_*.txt     toxicity items   "<0|1> <u|a> <tag> | <text>"
  tools/raw/train_tox_*.txt  toxicity items that only ever train (same format): written
                          after the dev split was fixed, so they never enter dev; any that comes
                          close to a dev item (TRAIN_ONLY_MAX_JACCARD) is dropped (logged)
  tools/raw/sent_*.txt    sentiment items  "<pos|neu|neg> <u|a> <tag> | <text>"
  tools/conversations_src.py   demo conversations + shift annotations

Outputs:
  toxicity/{train,dev}.jsonl, sentiment/{train,dev}.jsonl,
  conversations/sample.jsonl, conversations/sample_shifts.jsonl,
  and the statistics block of README.md (between the STATS markers).

The split is deterministic (fixed seed). Exact duplicates (after
normalisation) are dropped; near-duplicates are clustered and every cluster
is kept inside a single split, so train and dev never share a sentence or a
close paraphrase of one.
"""
from __future__ import annotations

import collections
import importlib.util
import json
import random
import re
import sys
import unicodedata
from pathlib import Path

DATA = Path(__file__).resolve().parents[1]
RAW = DATA / "tools" / "raw"
SEED = 20240718
DEV_FRAC = 0.30
ROLE = {"u": "user", "a": "assistant"}
SENT_LABEL = {"pos": "positive", "neu": "neutral", "neg": "negative"}

# near-duplicate thresholds (Jaccard)
WORD_JACCARD = 0.60
CHAR_JACCARD = 0.45


def norm(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"[^\w\s]", " ", t)
    return re.sub(r"\s+", " ", t).strip()


def char_grams(t: str, n: int = 4) -> frozenset:
    t = f" {t} "
    return frozenset(t[i : i + n] for i in range(max(1, len(t) - n + 1)))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def parse_raw(pattern: str, label_map=None) -> list[dict]:
    items = []
    for path in sorted(RAW.glob(pattern)):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            head, sep, text = line.partition(" | ")
            if not sep:
                sys.exit(f"{path.name}:{lineno}: missing ' | ' separator")
            parts = head.split()
            if len(parts) != 3:
                sys.exit(f"{path.name}:{lineno}: bad header {head!r}")
            label, role, tag = parts
            if label_map is not None:
                if label not in label_map:
                    sys.exit(f"{path.name}:{lineno}: bad label {label!r}")
                label = label_map[label]
            else:
                if label not in ("0", "1"):
                    sys.exit(f"{path.name}:{lineno}: bad label {label!r}")
                label = int(label)
            if role not in ROLE:
                sys.exit(f"{path.name}:{lineno}: bad role {role!r}")
            items.append(
                {"text": text.strip(), "label": label, "role": ROLE[role], "tag": tag,
                 "_src": f"{path.name}:{lineno}"}
            )
    return items


def dedup_and_cluster(items: list[dict]) -> tuple[list[dict], list[list[int]], list[str]]:
    """Drop exact (normalised) duplicates; cluster near-duplicates (union-find)."""
    log = []
    seen: dict[str, dict] = {}
    kept = []
    for it in items:
        key = norm(it["text"])
        if key in seen:
            other = seen[key]
            note = "" if other["label"] == it["label"] else "  [LABEL CONFLICT]"
            log.append(f"exact duplicate dropped: {it['_src']} == {other['_src']}{note}")
            continue
        seen[key] = it
        kept.append(it)

    n = len(kept)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    words = [frozenset(norm(it["text"]).split()) for it in kept]
    grams = [char_grams(norm(it["text"])) for it in kept]
    for i in range(n):
        for j in range(i + 1, n):
            wj = jaccard(words[i], words[j])
            if wj >= WORD_JACCARD or (wj >= 0.4 and jaccard(grams[i], grams[j]) >= CHAR_JACCARD):
                parent[find(i)] = find(j)
                log.append(
                    f"near-duplicate pair kept in same split (w={wj:.2f}): "
                    f"{kept[i]['text']!r} ~ {kept[j]['text']!r}"
                )
    clusters = collections.defaultdict(list)
    for i in range(n):
        clusters[find(i)].append(i)
    return kept, list(clusters.values()), log


def split(items: list[dict], clusters: list[list[int]], seed: int) -> tuple[list[dict], list[dict]]:
    """Stratified (label, tag) split that never separates a near-duplicate cluster."""
    rng = random.Random(seed)
    by_stratum = collections.defaultdict(list)
    for cl in clusters:
        first = items[cl[0]]
        by_stratum[(str(first["label"]), first["tag"])].append(cl)
    dev_idx = set()
    for key in sorted(by_stratum):
        cls = by_stratum[key]
        rng.shuffle(cls)
        total = sum(len(c) for c in cls)
        target = round(total * DEV_FRAC)
        got = 0
        for cl in cls:
            if got >= target:
                break
            dev_idx.update(cl)
            got += len(cl)
    train = [it for i, it in enumerate(items) if i not in dev_idx]
    dev = [it for i, it in enumerate(items) if i in dev_idx]
    rng.shuffle(train)
    rng.shuffle(dev)
    return train, dev


def check_no_overlap(train: list[dict], dev: list[dict]) -> int:
    tw = [(frozenset(norm(t["text"]).split()), char_grams(norm(t["text"]))) for t in train]
    bad = 0
    for d in dev:
        dw, dg = frozenset(norm(d["text"]).split()), char_grams(norm(d["text"]))
        for w, g in tw:
            wj = jaccard(dw, w)
            if wj >= WORD_JACCARD or (wj >= 0.4 and jaccard(dg, g) >= CHAR_JACCARD):
                bad += 1
                break
    return bad


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({k: v for k, v in r.items() if not k.startswith("_")},
                               ensure_ascii=False) + "\n")


def table(counter: collections.Counter, header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---:|"]
    for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        lines.append(f"| {k} | {v} |")
    return "\n".join(lines)


def classification_stats(name: str, train: list[dict], dev: list[dict]) -> str:
    out = [f"#### {name}", ""]
    out.append("| split | lines | " + " | ".join(f"label={l}" for l in sorted({str(r['label']) for r in train + dev})) + " | user | assistant |")
    labels = sorted({str(r["label"]) for r in train + dev})
    out.append("|---|---:|" + "---:|" * len(labels) + "---:|---:|")
    for sname, rows in (("train", train), ("dev", dev)):
        lc = collections.Counter(str(r["label"]) for r in rows)
        rc = collections.Counter(r["role"] for r in rows)
        out.append(f"| {sname} | {len(rows)} | " + " | ".join(str(lc[l]) for l in labels)
                   + f" | {rc['user']} | {rc['assistant']} |")
    out.append("")
    out.append("Per tag (label, tag): train / dev")
    out.append("")
    out.append("| label | tag | train | dev |")
    out.append("|---|---|---:|---:|")
    tc = collections.Counter((str(r["label"]), r["tag"]) for r in train)
    dc = collections.Counter((str(r["label"]), r["tag"]) for r in dev)
    for key in sorted(set(tc) | set(dc)):
        out.append(f"| {key[0]} | {key[1]} | {tc[key]} | {dc[key]} |")
    out.append("")
    return "\n".join(out)


# Train-only items were written after the dev split existed, so they are kept further from dev than
# the split keeps its own sides: any word or character-4-gram overlap of this much with a dev item drops them.
TRAIN_ONLY_MAX_JACCARD = 0.35


def too_close_to_dev(item: dict, dev: list[dict]) -> bool:
    w, g = frozenset(norm(item["text"]).split()), char_grams(norm(item["text"]))
    return any(jaccard(w, frozenset(norm(d["text"]).split())) >= TRAIN_ONLY_MAX_JACCARD
               or jaccard(g, char_grams(norm(d["text"]))) >= TRAIN_ONLY_MAX_JACCARD for d in dev)


def train_only_items(extra: list[dict], kept: list[dict], dev: list[dict], log: list[str]) -> list[dict]:
    """Train-only items minus exact duplicates of any item and anything close to a dev item."""
    seen = {norm(it["text"]) for it in kept}
    out = []
    for it in extra:
        key = norm(it["text"])
        if key in seen:
            log.append(f"train-only exact duplicate dropped: {it['_src']}")
            continue
        if too_close_to_dev(it, dev):
            log.append(f"train-only item dropped as too close to a dev item: {it['_src']}")
            continue
        seen.add(key)
        out.append(it)
    return out


def build_classification(name: str, items: list[dict], extra: list[dict] = ()) -> tuple[list[dict], list[dict], list[str]]:
    kept, clusters, log = dedup_and_cluster(items)
    train, dev = split(kept, clusters, SEED)
    train += train_only_items(list(extra), kept, dev, log)
    overlap = check_no_overlap(train, dev)
    if overlap:
        sys.exit(f"{name}: {overlap} dev items overlap train (bug in clustering)")
    write_jsonl(DATA / name / "train.jsonl", train)
    write_jsonl(DATA / name / "dev.jsonl", dev)
    return train, dev, log


def load_conversations():
    spec = importlib.util.spec_from_file_location("conversations_src", DATA / "tools" / "conversations_src.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_conversations() -> str:
    mod = load_conversations()
    turns, shifts = [], []
    ids = set()
    for conv in mod.CONVERSATIONS:
        cid = conv["id"]
        if cid in ids:
            sys.exit(f"duplicate conversation id {cid}")
        ids.add(cid)
        model = mod.MODELS[conv["model"]]
        if not 4 <= len(conv["turns"]) <= 12:
            sys.exit(f"{cid}: {len(conv['turns'])} turns, expected 4-12")
        for i, (role, text) in enumerate(conv["turns"]):
            expected = "user" if i % 2 == 0 else "assistant"
            if role != expected:
                sys.exit(f"{cid}: turn {i} role {role}, expected {expected}")
            row = {"conversation_id": cid, "turn_index": i, "role": role, "text": text,
                   "app": conv["app"], "model": model}
            if conv.get("user_ref"):
                row["user_ref"] = conv["user_ref"]
            turns.append(row)
        if "shift" in conv:
            turn, kind = conv["shift"]
            if turn is not None:
                if not 0 <= turn < len(conv["turns"]):
                    sys.exit(f"{cid}: shift turn out of range")
                want = "assistant" if kind == "assistant_hostile" else "user"
                if conv["turns"][turn][0] != want:
                    sys.exit(f"{cid}: shift turn {turn} is not a {want} turn")
            shifts.append({"conversation_id": cid, "shift_turn": turn, "kind": kind})
    write_jsonl(DATA / "conversations" / "sample.jsonl", turns)
    write_jsonl(DATA / "conversations" / "sample_shifts.jsonl", shifts)

    convs = mod.CONVERSATIONS
    out = ["#### conversations", ""]
    out.append(f"- {len(convs)} conversations, {len(turns)} turns "
               f"({min(len(c['turns']) for c in convs)}-{max(len(c['turns']) for c in convs)} turns each)")
    out.append(f"- sample_shifts.jsonl: {len(shifts)} annotated conversations")
    out.append("")
    out.append(table(collections.Counter(f"{c['app']} / {mod.MODELS[c['model']]['name']} {mod.MODELS[c['model']]['version']}" for c in convs),
                     ("app / model", "conversations")))
    out.append("")
    out.append(table(collections.Counter(s["kind"] + ("" if s["shift_turn"] is not None else " (no shift turn)") for s in shifts),
                     ("annotation kind", "conversations")))
    out.append("")
    out.append(table(collections.Counter(t for c in convs for t in c.get("themes", ["ordinary"])),
                     ("theme (from conversations_src.py)", "conversations")))
    out.append("")
    return "\n".join(out)


def main() -> None:
    tox_train, tox_dev, tox_log = build_classification("toxicity", parse_raw("tox_*.txt"), parse_raw("train_tox_*.txt"))
    sen_train, sen_dev, sen_log = build_classification("sentiment", parse_raw("sent_*.txt", SENT_LABEL))
    conv_stats = build_conversations()

    stats = "\n".join([
        "<!-- BEGIN STATS (generated by tools/build_datasets.py; do not edit by hand) -->",
        "",
        classification_stats("toxicity", tox_train, tox_dev),
        classification_stats("sentiment", sen_train, sen_dev),
        conv_stats,
        "<!-- END STATS -->",
    ])
    readme = DATA / "README.md"
    if readme.exists():
        text = readme.read_text(encoding="utf-8")
        new = re.sub(r"<!-- BEGIN STATS.*?<!-- END STATS -->", lambda _: stats, text, flags=re.S)
        if new == text and "<!-- BEGIN STATS" not in text:
            new = text.rstrip() + "\n\n" + stats + "\n"
        readme.write_text(new, encoding="utf-8")
    else:
        print(stats)

    for name, log in (("toxicity", tox_log), ("sentiment", sen_log)):
        print(f"== {name}: {len(log)} dedup/cluster notes")
        for line in log:
            print("  " + line)
    print(f"toxicity  train={len(tox_train)} dev={len(tox_dev)}")
    print(f"sentiment train={len(sen_train)} dev={len(sen_dev)}")


if __name__ == "__main__":
    main()
