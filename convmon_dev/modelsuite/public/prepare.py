"""`convmon models data`: the public labelled sets, rebuilt from pinned git mirrors.

For every Source in the task modules: read its files at the pinned commit, map labels, filter,
drop duplicates within the source, cap, split, drop from training sources any text of an
evaluation source of the same task, and write
`<out>/<task>/<source id>.jsonl` with one row per line:
`{"text", "label", "tag", "source", "split"}` (split: train | dev for training sources, eval for
evaluation-only sources), plus `"role"` (user | assistant) after "tag" where a source's rows carry
one (the benign task's do). `--out models/data/public` refreshes the committed copy; DATA_CARD.md
is written next to it from the declarations and the counts.

Cross-task tasks (CROSS_TASK: "benign", real chat that is label 0 for every signal and so may feed
every head) get two more rules: a training-source row is dropped when its text is in an evaluation
source of ANY task, and an evaluation-source row is dropped when its text is in a training source
(train or dev split) of any OTHER task. The other tasks' files are never changed for it.

Only some tasks can be rebuilt (the others' mirrors need not be present):
`python -m convmon_dev.modelsuite.public.prepare --tasks benign --out models/data/public`
reads the other tasks' rows from their files under --out for the cross-task rules, and rewrites
counts.json (the other tasks' entries kept as they are) and DATA_CARD.md.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from convmon_dev.modelsuite.public.sources import DEFAULT_MIRRORS, GitFile, Source, clean_text, dedup_key, is_dev, mirror_dir, stable_hash

TASK_MODULES = ("toxicity", "sentiment", "jailbreak", "climate", "benign")
# where a task's prepared files go: the policy id for policy tasks
FOLDER = {"toxicity": "toxicity", "sentiment": "sentiment", "jailbreak": "jailbreak", "climate": "climate_science",
          "benign": "benign"}
# tasks whose rows are label 0 for every signal and may be used by every head (see the module docstring)
CROSS_TASK = ("benign",)


def all_sources() -> list[Source]:
    import importlib

    out = []
    for name in TASK_MODULES:
        mod = importlib.import_module(f"{__package__}.{name}")
        out += list(mod.SOURCES)
    ids = Counter(s.id for s in out)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        raise ValueError(f"source ids must be unique: {dup}")
    return out


RESERVED_HASHES = Path(__file__).resolve().parents[3] / "models" / "data" / "public" / "reserved_text_hashes.txt"


def reserved_keys(path: Path = RESERVED_HASHES) -> frozenset[str]:
    """sha256 of the dedup key of texts of reserved sources this project once held: never used, in any source."""
    if not path.is_file():
        return frozenset()
    return frozenset(l.strip() for l in path.read_text().splitlines() if l.strip() and not l.startswith("#"))


def is_reserved(text: str, keys: frozenset[str]) -> bool:
    return hashlib.sha256(dedup_key(text).encode()).hexdigest() in keys


def prepare_source(src: Source, mirrors: Path) -> list[dict]:
    rows = src.read(GitFile(mirror_dir(src.repo, mirrors), src.commit))
    seen, out = set(), []
    reserved = reserved_keys()
    for r in rows:
        text = clean_text(r["text"])
        key = text.lower()  # exact duplicates only: spelling variants ("h a t e") are test cases of their own
        if is_reserved(text, reserved):
            continue
        if len(text) < 3 or not dedup_key(text) or key in seen:
            continue
        seen.add(key)
        row = {"text": text, "label": r["label"], "tag": r.get("tag", "")}
        if "role" in r:
            row["role"] = r["role"]
        row["source"] = src.id
        out.append(row)
    if src.max_rows and len(out) > src.max_rows:
        # deterministic, label-stratified sample by text hash
        by_label: dict = {}
        for r in out:
            by_label.setdefault(r["label"], []).append(r)
        share = src.max_rows / len(out)
        keep = []
        for label, group in sorted(by_label.items(), key=lambda kv: str(kv[0])):
            group.sort(key=lambda r: stable_hash("sample:" + r["text"]))
            keep += group[: max(1, round(len(group) * share))]
        out = keep
    for r in out:
        r["split"] = "eval" if src.role == "eval" else ("dev" if is_dev(r["text"], src.dev_share) else "train")
    return out


def _read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def prepare(out_dir: Path, mirrors: Path = DEFAULT_MIRRORS, log: Callable[[str], None] = print,
            tasks: tuple[str, ...] | None = None) -> dict:
    """Prepare every source (tasks=None) or only the sources of `tasks`; see the module docstring."""
    t0 = time.monotonic()
    sources = all_sources()
    unknown = set(tasks or ()) - set(FOLDER)
    if unknown:
        raise SystemExit(f"unknown task(s): {sorted(unknown)} (known: {', '.join(FOLDER)})")
    todo = [s for s in sources if tasks is None or s.task in tasks]
    counts: dict[str, dict] = {}
    by_task: dict[str, list[tuple[Source, list[dict]]]] = {}
    for i, src in enumerate(todo, 1):
        rows = prepare_source(src, mirrors)
        by_task.setdefault(src.task, []).append((src, rows))
        log(f"[{i}/{len(todo)}] {src.task}/{src.id}: {len(rows)} rows")
    # Every task's eval and training texts, for the cross-task rules: from this run, or from the files of
    # the tasks not rebuilt now.
    eval_keys_by_task: dict[str, set[str]] = {}
    train_keys_by_task: dict[str, set[str]] = {}
    for src in sources:
        if src.task in by_task:
            continue
        path = out_dir / FOLDER[src.task] / f"{src.id}.jsonl"
        if not path.is_file():
            log(f"warning: {path} is missing: its texts are not checked for cross-task overlap")
            continue
        for r in _read_rows(path):
            side = eval_keys_by_task if r["split"] == "eval" else train_keys_by_task
            side.setdefault(src.task, set()).add(dedup_key(r["text"]))
    for task, items in by_task.items():
        own_eval = {dedup_key(r["text"]) for s, rows in items if s.role == "eval" for r in rows}
        eval_keys_by_task.setdefault(task, set()).update(own_eval)
        # training texts as they will be written (after the same-task drop below), as in the files
        train_keys_by_task.setdefault(task, set()).update(
            k for s, rows in items if s.role == "train" for k in (dedup_key(r["text"]) for r in rows) if k not in own_eval)
    for task, items in by_task.items():
        # A text in an eval source must not appear in any training source of the same task (and
        # the other way round): drop it from the training side.
        eval_keys = {dedup_key(r["text"]) for s, rows in items if s.role == "eval" for r in rows}
        cross = task in CROSS_TASK
        any_eval = set().union(*eval_keys_by_task.values()) if cross else set()
        other_train = set().union(*(k for t, k in train_keys_by_task.items() if t != task)) if cross else set()
        folder = out_dir / FOLDER[task]
        folder.mkdir(parents=True, exist_ok=True)
        for src, rows in items:
            before = len(rows)
            if src.role == "train":
                rows = [r for r in rows if dedup_key(r["text"]) not in eval_keys]
            n_own = len(rows)
            if cross:
                banned = any_eval if src.role == "train" else other_train
                rows = [r for r in rows if dedup_key(r["text"]) not in banned]
            path = folder / f"{src.id}.jsonl"
            with open(path, "w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
            counts[src.id] = {"task": task, "role": src.role, "rows": len(rows), "dropped_as_eval_overlap": before - n_own,
                              "by_split_label": {f"{sp}:{lab}": n for (sp, lab), n in
                                                 sorted(Counter((r["split"], str(r["label"])) for r in rows).items())}}
            if cross:
                counts[src.id]["dropped_as_cross_task_overlap"] = n_own - len(rows)
                counts[src.id]["by_split_role"] = {f"{sp}:{ro}": n for (sp, ro), n in
                                                   sorted(Counter((r["split"], r.get("role", "")) for r in rows).items())}
    if tasks is not None:
        # keep the entries of the tasks not rebuilt now; drop stale entries of the rebuilt ones
        counts_path = out_dir / "counts.json"
        old = json.loads(counts_path.read_text()) if counts_path.is_file() else {}
        declared = {s.id for s in sources}
        counts = {**{k: v for k, v in old.items() if v.get("task") not in by_task and k in declared}, **counts}
    (out_dir / "counts.json").write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
    write_data_card(out_dir, sources, counts)
    log(f"done in {time.monotonic() - t0:.0f} s: {sum(counts[s.id]['rows'] for s in todo)} rows from "
        f"{len(todo)} sources → {out_dir}")
    return counts


def write_data_card(out_dir: Path, sources: list[Source], counts: dict) -> None:
    lines = [
        "# convmon data card — public labelled sources",
        "",
        "Generated by `convmon models data` from the source declarations in "
        "`convmon_dev/modelsuite/public/*.py`; do not edit by hand.",
        "",
        "Each source is read from a git mirror of its public repository at the pinned commit. Rows are "
        "NFC-normalised, whitespace-collapsed, exact duplicates (ignoring case) dropped within a source "
        "(most readers also drop texts that differ only in punctuation; spelling variants of a test case stay); a training source loses any text that also appears in an evaluation source of "
        "the same task. `split` is `train`/`dev` (about 15% by text hash, used for early stopping and "
        "threshold choice) for training sources and `eval` for evaluation-only sources, which are never "
        "trained on and never used to choose anything.",
        "",
        "The `benign` task is real, ordinary chat (assistant replies of many LLMs and of people answering as "
        "helpers, user requests, people in distress, mainstream climate statements): label 0 for every "
        "signal, each row with a `role` (user/assistant) and its category as `tag`; its train sources' `dev` "
        "split is for threshold choice at a false-page budget, its eval sources for measuring false pages. "
        "Because it may feed every head, a benign training row is also dropped when its text is in an "
        "evaluation source of any task, and a benign evaluation row when its text is in a training source of "
        "another task. Rebuild it alone with "
        "`python -m convmon_dev.modelsuite.public.prepare --tasks benign --out models/data/public`.",
        "",
        "Reserved for independent evaluation of convmon and never used here, in any copy: the sources "
        "named in issue 9 (tweet-based shared-task sets, a hate/offensive tweet set, a sentiment treebank, "
        "two prompt-injection/toxic-chat sets, an in-the-wild jailbreak collection, two climate stance/"
        "fact-check sets). EDOS (a 2023 shared task on online sexism, Reddit and Gab posts) is not among the sets "
        "the reserved tweet benchmark was built from, so it is used; EmoBank's headline subset, which comes from "
        "an earlier shared task, is dropped anyway. Since issue 18 also the OpenAssistant conversations (both "
        "releases) and the prompt sets and sampling reports built from them: the evaluation source once built "
        "from them is gone, and a row of any source whose text equals one of its texts is dropped "
        "(`reserved_text_hashes.txt`: sha256 of each text's dedup key, not the texts; every prompt of the "
        "oasst-model-eval prompt files and sampling reports, written by "
        "`python -m convmon_dev.modelsuite.public.reserved`, which also lists near copies: rows of 12 words or "
        "more sharing half of their 5-word shingles with the reserved prompts and sampled replies; the ones "
        "found are stock phrases such as 'let me know if there is anything I can do', kept). The in-the-wild "
        "jailbreak collection bundles awesome-chatgpt-prompts as its \"regular\" prompts, so that list as it "
        "stood in 2023 is reserved too: it is no longer a source, and the prompts of later commits are used "
        "only when they share no dedup key and under 20% of their 5-word shingles with the 2023 list "
        "(`benign_awesome_prompts_2024_25`, and the same check on `benign_fabric_patterns`). "
        "`toxichat` is Baheti et al.'s Reddit set, not the reserved LMSYS ToxicChat.",
        "",
        "| source | task | role | rows | repository @ commit | licence |",
        "|---|---|---|---|---|---|",
    ]
    for s in sources:
        c = counts.get(s.id, {})
        lines.append(f"| `{s.id}` | {s.task} | {s.role} | {c.get('rows', 0)} | "
                     f"[{s.repo}](https://github.com/{s.repo}) @ `{s.commit[:12]}` | {s.licence} |")
    lines.append("")
    for s in sources:
        c = counts.get(s.id, {})
        extra = []
        if "by_split_role" in c:
            extra.append("- Rows by split:role: " + ", ".join(f"{k} {v}" for k, v in c["by_split_role"].items()))
        if "dropped_as_cross_task_overlap" in c:
            extra.append(f"- Dropped as overlap: {c.get('dropped_as_eval_overlap', 0)} with an evaluation source of "
                         f"the same task, {c.get('dropped_as_cross_task_overlap', 0)} with another task")
        lines += [
            f"## `{s.id}` ({s.task}, {s.role})",
            "",
            f"- Repository: https://github.com/{s.repo} at commit `{s.commit}`",
            f"- Files: {', '.join(f'`{p}`' for p in s.paths)}",
            f"- Licence: {s.licence} — {s.licence_evidence}",
            f"- Citation: {s.citation}",
            f"- Label mapping: {s.labels}",
            f"- Filters: {s.filters}" + (f" Capped at {s.max_rows} rows (label-stratified, by text hash)." if s.max_rows else ""),
            "- Rows by split:label: " + ", ".join(f"{k} {v}" for k, v in c.get("by_split_label", {}).items()),
            *extra,
            "",
        ]
    (out_dir / "DATA_CARD.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    """`python -m convmon_dev.modelsuite.public.prepare [--tasks benign] --out models/data/public`"""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="e.g. models/data/public")
    ap.add_argument("--mirrors", type=Path, default=DEFAULT_MIRRORS)
    ap.add_argument("--tasks", default=None, help=f"comma-separated subset of {','.join(FOLDER)} (default: all)")
    a = ap.parse_args(argv)
    tasks = tuple(t.strip() for t in a.tasks.split(",") if t.strip()) if a.tasks else None
    prepare(a.out, a.mirrors, tasks=tasks)
    if tasks is None or "benign" in tasks:
        from convmon_dev.modelsuite.public.benign import bucket_table, read_folder

        print(bucket_table(read_folder(a.out / FOLDER["benign"])))


if __name__ == "__main__":
    main()
