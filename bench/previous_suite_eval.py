"""The previous model suite (trained on hand-written text only) on today's evaluation sets.

    .venv/bin/python bench/previous_suite_eval.py [--commit 7bfb2af] [--out bench/models-eval-previous.json]

Takes models/suite.onnx, tokenizer.json and manifest.json of the previous suite from git history
into a temporary folder and scores every evaluation set of `convmon models build` with it, through
today's scorer (so messages longer than 256 word pieces are windowed for it too). The baseline
for bench/models-eval.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from convmon_dev.modelsuite.datasets import evaluation_sets
from convmon_dev.modelsuite.evaluate import evaluate_rows
from convmon.scoring.suite import SuiteModel

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commit", default="7bfb2af", help="a commit whose models/ holds the previous suite")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "models-eval-previous.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        for name in ("suite.onnx", "tokenizer.json", "manifest.json"):
            blob = subprocess.run(["git", "-C", str(ROOT), "show", f"{args.commit}:models/{name}"],
                                  check=True, capture_output=True).stdout
            (tmp / name).write_bytes(blob)
        old = SuiteModel(tmp, threads=2)
        out = {"command": f"python bench/previous_suite_eval.py --commit {args.commit}",
               "suite_version": old.version, "eval": {}}
        for name, task, rows, dropped in evaluation_sets(ROOT / "models"):
            r = evaluate_rows(old, task, rows, by="source" if name.startswith("public:") else None)
            out["eval"][name] = {"task": task, "dropped_as_seen_in_training": dropped, **r}
            print(f"{name:<28} {task:<16} n={r['n']:<5} " +
                  (f"macro-F1 {r['macro_f1']}" if task == "sentiment" else f"AUC {r['auc']}"), flush=True)
        old.close()
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
