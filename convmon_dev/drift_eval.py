"""Evaluation of embedding drift: detection delay after a reply-style switch, false alarms when stable.

    .venv/bin/python -m convmon_dev.drift_eval [--seeds 10] [--out bench/drift-eval.json]

Data: models/data/drift/replies_style_{a,b}.jsonl — assistant replies to the same kinds of user
questions in two styles (A: concise, friendly, plain; B: formal, verbose, hedged with disclaimers and
lists). Both files are embedded once with the model suite (cached in memory), then per seed:

- silent switch: one key (same model version label); turns are drawn with replacement from style A,
  and from `--switch-at` on (after the 300-turn reference period) from style B. Delay = style-B turns
  seen when the first `embedding_drift` alert (a drifted look) fires. Alerts before the switch count
  as false alarms.
- stable: the same number of turns, drawn only from style A. Every alert is a false alarm. The p-values
  of all looks are also collected: under no drift the fraction below 0.05 / 0.01 should be close to
  those levels (a check of the reference-only calibration).
- labelled switch: the old version pins a style-A reference; a new version label then produces style
  B (should be reported as changed) or style A again (should not): one `version_change` report each.
- partial switch (sensitivity): after the switch only a fraction of the replies are style B.

Caveat: the stable stream resamples a finite pool of 316 replies, so "no drift" is exactly true for
that pool; real traffic also drifts in topic mix, which this monitor will (rightly) report as drift.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from convmon.scoring.suite import default_model_dir
from convmon.state.drift import DriftConfig, DriftMonitor

DECISION_RULE = [
    "reference = first 300 turns of a (app, model, version, role): <=300 embeddings (reservoir, float16), "
    "centroid, RBF bandwidth (median heuristic)",
    "looks: every 50 turns on the last 200 turns; plus a confirmation look on the last 50 turns when river "
    "ADWIN (per-turn cosine distance to the centroid) flags a change",
    "statistics: centroid cosine distance and MMD^2 (RBF) of the look's window vs the reference",
    "thresholds: two-sample bootstrap from the reference itself (2000x, same sizes), exponential tail above "
    "its 90th percentile; look k tested at alpha/(k(k+1)), alpha=0.01",
    "embedding_drift iff BOTH statistics exceed their thresholds (new_alert on the first drifted look of an episode)",
]
DATA_DIR = default_model_dir() / "data" / "drift"  # models/data/drift
FILES = {"a": "replies_style_a.jsonl", "b": "replies_style_b.jsonl"}


def load_texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Pools:
    """Embeddings and score dicts of both styles, computed once."""

    def __init__(self, data_dir: Path = DATA_DIR, model_dir: Optional[Path] = None):
        from convmon.scoring.suite import SuiteModel

        model = SuiteModel(model_dir)
        self.files: dict[str, dict[str, Any]] = {}
        self.emb: dict[str, np.ndarray] = {}
        self.scores: dict[str, list[dict]] = {}
        t0 = time.perf_counter()
        for style, name in FILES.items():
            path = Path(data_dir) / name
            texts = load_texts(path)
            rows, emb = model.fields(texts)
            self.emb[style] = np.asarray(emb, dtype=np.float32)
            self.scores[style] = [{k: r[k] for k in ("toxicity", "sentiment", "jailbreak")} for r in rows]
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            self.files[style] = {"path": f"models/data/drift/{name}", "n": len(texts), "sha256": digest}
        self.embed_s = time.perf_counter() - t0
        self.model_version = model.version


def _stream(mon: DriftMonitor, key, pools: Pools, styles: list[str], rng: np.random.Generator) -> list:
    reports = []
    for t, style in enumerate(styles):
        i = int(rng.integers(len(pools.emb[style])))
        r = mon.update(key, pools.emb[style][i], ts=float(t), scores=pools.scores[style][i])
        if r is not None:
            reports.append(r)
    return reports


def run_switch(pools: Pools, seed: int, cfg: DriftConfig, turns: int, switch_at: int,
               frac_b: float = 1.0) -> dict[str, Any]:  # fmt: skip
    rng = np.random.default_rng([seed, 1, int(frac_b * 1000)])
    styles = ["a" if t < switch_at or rng.random() >= frac_b else "b" for t in range(turns)]
    mon = DriftMonitor(DriftConfig(**{**cfg.__dict__, "seed": seed}))
    reps = _stream(mon, ("eval", "model", "v1", "assistant"), pools, styles, rng)
    pre = [r for r in reps if r.drifted and r.turn_end < switch_at]
    post = [r for r in reps if r.drifted and r.turn_end >= switch_at]
    first = post[0] if post else None
    return {
        "seed": seed,
        "false_alarms_before_switch": sum(r.new_alert for r in pre),
        "detected": first is not None,
        "delay_turns": (first.turn_end - switch_at + 1) if first else None,
        "detected_by": first.kind if first else None,
        "first_alert": (
            {"look": first.look, "statistics": first.statistics, "thresholds": first.thresholds} if first else None
        ),
        "looks": len(reps),
    }


def run_stable(pools: Pools, seed: int, cfg: DriftConfig, turns: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 2])
    mon = DriftMonitor(DriftConfig(**{**cfg.__dict__, "seed": seed}))
    reps = _stream(mon, ("eval", "model", "v1", "assistant"), pools, ["a"] * turns, rng)
    return {
        "seed": seed,
        "alerts": sum(r.new_alert for r in reps),
        "drifted_looks": sum(r.drifted for r in reps),
        "looks": len(reps),
        "confirm_looks": sum(r.kind == "confirm" for r in reps),
        "p_values": [r.p_values for r in reps if r.kind == "window"],
        "min_p": {s: min((r.p_values[s] for r in reps), default=None) for s in ("centroid", "mmd2")},
    }


def run_version_change(pools: Pools, seed: int, cfg: DriftConfig, new_style: str) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 3, ord(new_style)])
    mon = DriftMonitor(DriftConfig(**{**cfg.__dict__, "seed": seed}))
    _stream(mon, ("eval", "model", "v1", "assistant"), pools, ["a"] * cfg.ref_turns, rng)
    reps = _stream(mon, ("eval", "model", "v2", "assistant"), pools, [new_style] * cfg.window, rng)
    vc = [r for r in reps if r.kind == "version_change"]
    assert len(vc) == 1, "expected exactly one version_change report"
    r = vc[0]
    signals = {k: {"diff": v["diff"], "z": v["z"]} for k, v in r.signals.items()}
    return {"seed": seed, "new_style": new_style, "drifted": r.drifted, "statistics": r.statistics,
            "thresholds": r.thresholds, "signals": signals}  # fmt: skip


def _dist(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "median": statistics.median(xs), "mean": round(statistics.fmean(xs), 1),
            "min": min(xs), "max": max(xs)}  # fmt: skip


def evaluate(pools: Pools, seeds: int, turns: int, switch_at: int, cfg: DriftConfig, mixes: list[float],
             long_turns: int = 0) -> dict[str, Any]:  # fmt: skip
    t0 = time.perf_counter()
    sw = [run_switch(pools, s, cfg, turns, switch_at) for s in range(seeds)]
    st = [run_stable(pools, s, cfg, turns) for s in range(seeds)]
    vb = [run_version_change(pools, s, cfg, "b") for s in range(seeds)]
    va = [run_version_change(pools, s, cfg, "a") for s in range(seeds)]
    mix = {f: [run_switch(pools, s, cfg, turns, switch_at, f) for s in range(seeds)] for f in mixes}
    long = [run_stable(pools, 1000 + s, cfg, long_turns) for s in range(seeds)] if long_turns else []
    for r in long:
        del r["p_values"]
    elapsed = time.perf_counter() - t0

    delays = [r["delay_turns"] for r in sw if r["detected"]]
    pv = [p for r in st for p in r["p_values"]]
    calib = {
        s: {f"frac_p<{lvl}": round(sum(p[s] < lvl for p in pv) / len(pv), 4) for lvl in (0.1, 0.05, 0.01)}
        for s in ("centroid", "mmd2")
    } if pv else {}  # fmt: skip
    for r in st:
        del r["p_values"]
    summary = {
        "silent_switch": {
            "detection_rate": sum(r["detected"] for r in sw) / seeds,
            "delay_turns": _dist(delays),
            "detected_by": {k: sum(r["detected_by"] == k for r in sw) for k in ("confirm", "window")},
            "false_alarms_before_switch": sum(r["false_alarms_before_switch"] for r in sw),
        },
        "stable": {
            "false_alarm_rate": sum(r["alerts"] > 0 for r in st) / seeds,  # fraction of streams with ≥1 alert
            "alerts_total": sum(r["alerts"] for r in st),
            "drifted_looks_total": sum(r["drifted_looks"] for r in st),
            "looks_total": sum(r["looks"] for r in st),
            "alerts_per_1000_turns": round(1000 * sum(r["alerts"] for r in st) / (seeds * turns), 4),
            "per_look_calibration_scheduled_looks": calib,
        },
        "labelled_switch_version_change": {
            "a_to_b_flagged_rate": sum(r["drifted"] for r in vb) / seeds,
            "a_to_a_flagged_rate": sum(r["drifted"] for r in va) / seeds,
            "a_to_b_signal_diff_median": {
                k: statistics.median(r["signals"][k]["diff"] for r in vb)
                for k in ("toxicity", "sentiment", "jailbreak")
            },
        },
        "partial_switch": {
            str(f): {
                "detection_rate": sum(r["detected"] for r in rs) / seeds,
                "delay_turns": _dist([r["delay_turns"] for r in rs if r["detected"]]),
            }
            for f, rs in mix.items()
        },  # fmt: skip
    }
    if long:
        summary["long_stable"] = {
            "turns_per_stream": long_turns,
            "false_alarm_rate": sum(r["alerts"] > 0 for r in long) / seeds,
            "alerts_total": sum(r["alerts"] for r in long),
            "looks_total": sum(r["looks"] for r in long),
            "min_p_over_all_looks": {s: min(r["min_p"][s] for r in long) for s in ("centroid", "mmd2")},
        }
    return {
        "summary": summary,
        "per_seed": {"silent_switch": sw, "stable": st, "version_change_b": vb, "version_change_a": va,
                     "partial_switch": {str(f): rs for f, rs in mix.items()}, "long_stable": long},  # fmt: skip
        "elapsed_s": round(elapsed, 2),
    }


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convmon_dev.drift_eval", description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--turns", type=int, default=1500, help="turns per stream (reference period included)")
    ap.add_argument("--switch-at", type=int, default=700, help="first style-B turn (after the reference period)")
    ap.add_argument("--mix", type=float, nargs="*", default=[0.5, 0.25],
                    help="style-B fractions for the partial-switch runs")  # fmt: skip
    ap.add_argument("--long-stable-turns", type=int, default=0, help="also run stable streams of this length (0: skip)")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench/drift-eval.json"))
    args = ap.parse_args(argv)
    cfg = DriftConfig()
    if args.switch_at < cfg.ref_turns or args.switch_at >= args.turns:
        ap.error("--switch-at must be after the reference period and before the end of the stream")

    pools = Pools(args.data_dir, args.model_dir)
    res = evaluate(pools, args.seeds, args.turns, args.switch_at, cfg, args.mix, args.long_stable_turns)
    out = {
        "command": "python -m convmon_dev.drift_eval " + " ".join(argv if argv is not None else sys.argv[1:]),
        "what": "embedding drift per model version: detection delay after a reply-style switch (A→B) "
                "and false alarms on a stable stream",
        "data": pools.files,
        "suite_version": pools.model_version,
        "embed_s": round(pools.embed_s, 2),
        "config": cfg.__dict__,
        "streams": {"seeds": args.seeds, "turns": args.turns, "switch_at": args.switch_at,
                    "reference_turns": cfg.ref_turns, "long_stable_turns": args.long_stable_turns},
        "decision_rule": DECISION_RULE,
        **res,
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(out["summary"], indent=1))
    print(f"wrote {args.out} ({res['elapsed_s']} s of streams, {pools.embed_s:.1f} s embedding)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
