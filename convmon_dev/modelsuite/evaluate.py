"""`convmon models eval DIR`: metrics of the shipped suite on labelled JSONL sets.

A file's task comes from its path: a folder or file name starting with `toxicity`,
`sentiment`, `jailbreak`, or a policy id (e.g. `climate_science`), so both
`DIR/toxicity/dev.jsonl` and `DIR/toxicity.jsonl` work. Each line: {"text": ..., "label": ...}
with label 0/1 (sentiment: negative|neutral|positive); an optional `tag` gives per-tag rates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from convmon.scoring.suite import SENTIMENT_LABELS, SuiteModel
from convmon_dev.modelsuite.metrics import binary_report, multiclass_report

# Tags of policy examples that mention a banned claim without endorsing it: the false-positive
# rate on these is what separates a stance detector from a topic matcher.
NON_ENDORSING_TAGS = ("quote_rebut", "question_about_myth", "reported_speech")


def read_set(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                row = json.loads(line)
                if "text" not in row or "label" not in row:
                    raise ValueError(f"{path}:{n}: each line needs 'text' and 'label'")
                rows.append(row)
    return rows


def task_of(path: Path, root: Path, policies: list[str]) -> Optional[str]:
    tasks = ["toxicity", "sentiment", "jailbreak", *policies]
    for part in path.relative_to(root).parts:
        for t in tasks:
            if part.startswith(t):
                return t
    return None


def evaluate_rows(model: SuiteModel, task: str, rows: list[dict], by: Optional[str] = None) -> dict:
    """Metrics on labelled rows; `by` (e.g. "source") adds the same report per value of that field."""
    texts = [r["text"] for r in rows]
    out = model.run(texts)
    report = _report(model, task, rows, out)
    if by:
        groups = sorted({r.get(by) for r in rows})
        report[f"by_{by}"] = {}
        for g in groups:
            idx = [i for i, r in enumerate(rows) if r.get(by) == g]
            sub = type(out)(*(getattr(out, f)[idx] for f in out.__dataclass_fields__))
            report[f"by_{by}"][g] = _report(model, task, [rows[i] for i in idx], sub)
    return report


def _report(model: SuiteModel, task: str, rows: list[dict], out) -> dict:
    if task == "sentiment":
        pred = [SENTIMENT_LABELS[i] for i in np.argmax(out.sentiment_probs, axis=1)]
        return multiclass_report([r["label"] for r in rows], pred, SENTIMENT_LABELS)
    y = np.array([int(r["label"]) for r in rows])
    if task in ("toxicity", "jailbreak"):
        score = out.toxicity if task == "toxicity" else out.jailbreak
        threshold = model.thresholds[task]
    else:  # the score the decision compares: the policy's over the pieces its topic gate passes
        score = out.policy_gated[:, model.policy_ids.index(task)]
        threshold = model.policy_thresholds[task]
    report = binary_report(y, score, threshold)
    report["flag_rate"] = round(float(np.mean(score >= threshold)), 4)
    tags = sorted({r.get("tag") for r in rows if r.get("tag")})
    if tags:
        report["flag_rate_by_tag"] = {
            t: round(float(np.mean([s >= threshold for s, r in zip(score, rows) if r.get("tag") == t])), 4)
            for t in tags
        }
    non_endorsing = [s for s, r in zip(score, rows) if r.get("tag") in NON_ENDORSING_TAGS and int(r["label"]) == 0]
    if non_endorsing and task not in ("toxicity", "jailbreak"):
        report["fpr_quote_rebut"] = round(float(np.mean(np.array(non_endorsing) >= threshold)), 4)
        report["n_quote_rebut"] = len(non_endorsing)
    return report


def evaluate_dir(model: SuiteModel, root: Path) -> dict[str, dict]:
    results = {}
    for path in sorted(root.rglob("*.jsonl")):
        task = task_of(path, root, model.policy_ids)
        if task is None:
            continue
        try:
            rows = read_set(path)
        except ValueError:
            continue  # not a labelled set (e.g. a policy's claim bank)
        results[str(path.relative_to(root))] = {"task": task, **evaluate_rows(model, task, rows)}
    return results
