"""Do committed suites score the same on this CPU as on the machine that built them?

    .venv/bin/python bench/cpu_consistency.py [--commits abefde7 3796713 77b766e HEAD] [--out bench/cpu-consistency.json]

Each build records the suite's outputs on a fixed probe set in its manifest (`probe`, computed on the build
machine). For each commit, this checks that commit out into a temporary worktree and scores the probe set
with that commit's own code and suite on this machine, then reports the largest difference per signal.
It also records whether this CPU has VNNI (AVX-512 VNNI / AVX-VNNI in /proc/cpuinfo): a suite with
full-range int8 weights built on a CPU without VNNI scores differently on one with it; 7-bit weights
(`reduce_range=True`) should not (convmon_dev/modelsuite/graph.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from convmon_dev.modelsuite.cpu import cpu_flags

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = ("toxicity", "jailbreak", "sentiment_probs", "policy", "embedding_head")

# Run inside the worktree, with that commit's own code on sys.path first.
_PROBE = """
import json, sys
from pathlib import Path
import numpy as np
root = Path(sys.argv[1])
sys.path.insert(0, str(root))
from convmon_dev.modelsuite.build import probe_outputs
from convmon.scoring.suite import SuiteModel
import convmon
assert Path(convmon.__file__).resolve().is_relative_to(root.resolve()), convmon.__file__
manifest = json.loads((root / "models" / "manifest.json").read_text())
here = probe_outputs(SuiteModel(root / "models", threads=1))
out = {"suite": manifest["suite"] if isinstance(manifest["suite"], str) else manifest["suite"].get("version"),
       "quantization": manifest.get("build", {}).get("quantization", "not recorded"),
       "build_cpu": manifest.get("build", {}).get("cpu", "not recorded"), "max_abs_diff": {}}
for k in %r:
    if k in manifest["probe"]:
        out["max_abs_diff"][k] = round(float(np.abs(np.array(here[k], float) - np.array(manifest["probe"][k], float)).max()), 4)
print(json.dumps(out))
""" % (SIGNALS,)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", nargs="+", default=["abefde7", "3796713", "77b766e", "HEAD"],
                    help="commits whose models/ to check (default: the last full-range suite, the 7-bit "
                         "suites since, and the shipped one)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "cpu-consistency.json")
    args = ap.parse_args()
    cpu = cpu_flags()
    print(f"this CPU: {cpu['model']}; VNNI: {cpu['avx512_vnni'] or cpu['avx_vnni']}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, commit in enumerate(args.commits, 1):
            sha = subprocess.run(["git", "rev-parse", "--short=12", commit], cwd=ROOT, check=True,
                                 capture_output=True, text=True).stdout.strip()
            wt = Path(tmp) / sha
            subprocess.run(["git", "worktree", "add", "--detach", "-f", str(wt), sha], cwd=ROOT, check=True,
                           capture_output=True)
            try:
                res = subprocess.run([sys.executable, "-c", _PROBE, str(wt)], check=True, capture_output=True,
                                     text=True)
                row = {"commit": sha, **json.loads(res.stdout.strip().splitlines()[-1])}
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT, capture_output=True)
            rows.append(row)
            print(f"[{i}/{len(args.commits)}] {sha} {row['suite']}: max |here - build machine| "
                  + ", ".join(f"{k} {v}" for k, v in row["max_abs_diff"].items()), flush=True)
    report = {"command": "python bench/cpu_consistency.py " + " ".join(["--commits", *args.commits]),
              "what": "probe outputs of each committed suite on this CPU against the ones its build machine "
                      "recorded in the manifest",
              "cpu": cpu, "suites": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
