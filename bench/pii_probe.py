"""Recall, false hits and cost of the PII/secret detector on a fixed probe list.

    .venv/bin/python bench/pii_probe.py [--probes bench/pii_probe.jsonl] [--out bench/pii-probe.json]

bench/pii_probe.jsonl: one JSON object a line, {"text": ..., "expect": [types]} (a benign probe
has "expect": [] and a "cat" naming what kind of benign number it is). A positive probe counts
as a hit for each expected type that `find` reports; a benign probe is a false hit when `find`
reports anything. Types reported on a positive probe beyond those expected are listed as extras.
Probes marked "set": "holdout" were written after the detector had been reworked against the
others ("dev") and measured once before any further change; both sets are also reported apart.
Timing: mean microseconds of CPU time per `scan` call (normalisation included), one thread, best of
5 rounds (CPU time, so that other jobs on the machine disturb it less).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convmon.scoring.pii import find, scan  # noqa: E402
from convmon.scoring.normalize import normalize  # noqa: E402

# Typical chat turns of about 300 characters: plain prose, prose with everyday numbers, and one
# with an email address in it.
TYPICAL = [
    "Thanks, that helps a lot. Could you explain once more why the second approach is slower "
    "than the first one? I tried both on my laptop and the difference was bigger than I expected, "
    "so I wonder whether I configured something wrong or whether that is just how it behaves when "
    "the input gets large. A short example would be great.",
    "We upgraded to version 3.12 last week and since then the nightly job that starts at 02:30 "
    "takes about 45 minutes instead of 12. The invoice for March was $1,249.50 and we processed "
    "roughly 2,300,000 records, up 18% from February. Is there a setting I should change before "
    "the 15th, or is this expected for that volume?",
    "Hi! I'm writing a cover letter for a marketing role and need help with the opening. My old "
    "manager said I can list her as a reference, she is at anna.keller@example.com if they ask. "
    "Can you make the first paragraph sound confident but not arrogant, and keep it under 120 "
    "words? Also suggest a subject line please.",
]


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def mean_us(texts: list[str], fn, min_calls: int = 3000, rounds: int = 5) -> float:
    reps = max(1, min_calls // len(texts))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(reps):
            for t in texts:
                fn(t)
        best = min(best, (time.process_time() - t0) / (reps * len(texts)))
    return round(best * 1e6, 1)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", default=str(ROOT / "bench" / "pii_probe.jsonl"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "pii-probe.json"))
    ap.add_argument("--no-timing", action="store_true")
    args = ap.parse_args(argv)

    probes = load(Path(args.probes))
    by_set: dict[str, Counter] = defaultdict(Counter)
    expected, hits = Counter(), Counter()
    misses, extras, false_hits = [], [], []
    benign_by_cat, false_by_cat = Counter(), Counter()
    for p in probes:
        found = sorted({f.type for f in find(normalize(p["text"]))})
        st = by_set[p.get("set", "dev")]
        if p["expect"]:
            for t in p["expect"]:
                expected[t] += 1
                st["expected"] += 1
                if t in found:
                    hits[t] += 1
                    st["hit"] += 1
                else:
                    misses.append({"type": t, "text": p["text"], "found": found})
            extra = sorted(set(found) - set(p["expect"]))
            if extra:
                extras.append({"text": p["text"], "expect": p["expect"], "extra": extra})
        else:
            cat = p.get("cat", "benign")
            benign_by_cat[cat] += 1
            st["benign"] += 1
            st["false"] += bool(found)
            if found:
                false_by_cat[cat] += 1
                false_hits.append({"cat": cat, "text": p["text"], "found": found})

    n_pos = sum(1 for p in probes if p["expect"])
    n_ben = sum(benign_by_cat.values())
    report = {
        "command": "python bench/pii_probe.py" + (" " + " ".join(argv) if argv else ""),
        "probes": {"positive": n_pos, "benign": n_ben, "file": _shown(Path(args.probes))},
        "recall": round(sum(hits.values()) / max(1, sum(expected.values())), 4),
        "recall_by_type": {t: {"hit": hits[t], "of": expected[t], "recall": round(hits[t] / expected[t], 4)}
                           for t in sorted(expected)},
        "false_hit_rate": round(len(false_hits) / max(1, n_ben), 4),
        "by_set": {k: {"positive_types": v["expected"], "recall": round(v["hit"] / max(1, v["expected"]), 4),
                       "benign": v["benign"], "false_hit_rate": round(v["false"] / max(1, v["benign"]), 4)}
                   for k, v in sorted(by_set.items())},
        "false_hits_by_category": {c: {"hit": false_by_cat[c], "of": benign_by_cat[c]} for c in sorted(benign_by_cat)},
        "misses": misses,
        "false_hits": false_hits,
        "extra_types_on_positive_probes": extras,
    }
    if not args.no_timing:
        texts = [p["text"] for p in probes]
        report["timing_us_per_scan"] = {
            "typical_300_chars": mean_us(TYPICAL[:1], scan),
            "typical_300_chars_with_numbers": mean_us(TYPICAL[1:2], scan),
            "typical_300_chars_with_email": mean_us(TYPICAL[2:3], scan),
            "typical_mean_of_3": mean_us(TYPICAL, scan),
            "probe_texts_mean": mean_us(texts, scan),
            "note": f"CPU time (process_time), best of 5 rounds, one thread, Python {platform.python_version()}, {platform.machine()}",
        }
    Path(args.out).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = {k: report[k] for k in ("recall", "false_hit_rate")}
    summary["by_set"] = report["by_set"]
    summary["recall_by_type"] = {t: v["recall"] for t, v in report["recall_by_type"].items()}
    if "timing_us_per_scan" in report:
        summary["timing_us_per_scan"] = {k: v for k, v in report["timing_us_per_scan"].items() if k != "note"}
    print(json.dumps(summary, indent=1))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
