"""Evaluate the abrupt-shift detector on labelled conversations.

    .venv/bin/python -m convmon_dev.dynamics_eval                       # sample (tuning) + shift_eval (held out)
    .venv/bin/python -m convmon_dev.dynamics_eval --data models/data/conversations/shift_eval.jsonl

Scores every turn with the model suite (SuiteModel.fields), feeds each conversation through
`ShiftDetector` turn by turn, and compares the events with the labels
(`<name>_labels.jsonl`, or `sample_shifts.jsonl` for `sample.jsonl`, or --labels):

* a conversation with a labelled `shift_turn` s is *detected* when an event fires at turn
  s or s+1 (the reply right after the shift); that event is a true positive;
* every other event is a false positive: firing before s or after s+1 on a shift
  conversation, or firing at all on a conversation without a shift (`shift_turn: null`);
* conversations in the data but absent from the labels file count as no-shift, kind
  "unlabelled" (sample.jsonl labels only its 15 annotated conversations).

precision = TP events / all events; recall = detected shift conversations / shift conversations.
Writes a table to stdout and JSON (with the command that produced it) to bench/shift-eval.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Optional

from convmon.state.dynamics import ShiftConfig, ShiftDetector, run_conversation

CONV_DIR = Path("models/data/conversations")
DEFAULT_DATA = (CONV_DIR / "sample.jsonl", CONV_DIR / "shift_eval.jsonl")
SPLIT = {"sample.jsonl": "tuning", "shift_eval.jsonl": "held_out"}
SHIFT_KINDS = ("user_angry", "user_distressed", "assistant_hostile")
TOLERANCE = (0, 1)  # a detection counts at shift_turn + 0 .. + 1


def labels_path_for(data: Path) -> Path:
    if data.name == "sample.jsonl":
        return data.with_name("sample_shifts.jsonl")
    return data.with_name(data.stem + "_labels.jsonl")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def score_turns(turns: list[dict[str, Any]], model_dir: Optional[Path]) -> list[dict[str, Any]]:
    from convmon.scoring.suite import SuiteModel

    model = SuiteModel(model_dir)
    rows, _ = model.fields([t["text"] for t in turns])
    out = []
    for t, r in zip(turns, rows):
        out.append(
            {
                "conversation_id": t["conversation_id"],
                "turn_index": int(t["turn_index"]),
                "role": t["role"],
                "sentiment": r["sentiment"],
                "sentiment_label": r["sentiment_label"],
                "toxicity": r["toxicity"],
                "ts": t.get("ts"),
            }
        )
    return out


def visible(turn: dict[str, Any], detector: ShiftDetector) -> bool:
    """Did the scorer make this turn clearly negative by the detector's own absolute gates?

    (level at or below the role's `max_after_level`, or the toxicity-path gates.) Used only to
    attribute misses: a shift whose turns are not visible cannot be found by any baseline logic.
    """
    c = detector.config
    level = detector.level(turn["sentiment"], turn["toxicity"])
    max_after = c.assistant_max_after_level if turn["role"] == "assistant" else c.max_after_level
    tox_path = turn["toxicity"] >= c.tox_abs and turn["sentiment"] <= c.tox_max_sentiment
    return level <= max_after or tox_path


def evaluate(
    scored: list[dict[str, Any]], labels: dict[str, dict[str, Any]], detector: ShiftDetector
) -> dict[str, Any]:
    by_conv: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in scored:
        by_conv[t["conversation_id"]].append(t)

    per_conv = []
    tp = fp = 0
    detected = n_shift = 0
    fp_by_kind: Counter = Counter()
    convs_by_kind: Counter = Counter()
    alarmed_convs_by_kind: Counter = Counter()
    offsets: list[int] = []
    recall_by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    miss_causes: Counter = Counter()
    for cid in by_conv:
        lab = labels.get(cid, {"shift_turn": None, "kind": "unlabelled"})
        s, kind = lab["shift_turn"], lab["kind"]
        convs_by_kind[kind] += 1
        _, events = run_conversation(detector, by_conv[cid])
        hit = False
        ev_rows = []
        for ev in events:
            off = None if s is None else ev.turn_index - s
            ok = off is not None and TOLERANCE[0] <= off <= TOLERANCE[1] and not hit
            hit = hit or ok
            tp += ok
            if not ok:
                fp += 1
                fp_by_kind[kind] += 1
            if off is not None:
                offsets.append(off)
            ev_rows.append({**ev.to_dict(), "offset": off, "true_positive": ok})
        if events and not hit:
            alarmed_convs_by_kind[kind] += 1
        miss_cause = None
        shift_scores = []
        if s is not None:
            n_shift += 1
            detected += hit
            recall_by_kind[kind][0] += hit
            recall_by_kind[kind][1] += 1
            window = [t for t in by_conv[cid] if s + TOLERANCE[0] <= t["turn_index"] <= s + TOLERANCE[1]]
            shift_scores = [
                {"turn_index": t["turn_index"], "role": t["role"], "sentiment": t["sentiment"],
                 "toxicity": t["toxicity"], "level": round(detector.level(t["sentiment"], t["toxicity"]), 4),
                 "visible": visible(t, detector)}
                for t in window
            ]
            if not hit:
                if not any(x["visible"] for x in shift_scores):
                    miss_cause = "scorer"  # the model did not score the shift turns as clearly negative
                elif any(e.turn_index < s for e in events):
                    miss_cause = "early_fire"  # an earlier (false) event's cooldown covered the shift
                else:
                    miss_cause = "baseline"  # negative enough, but not enough below the baseline
                miss_causes[miss_cause] += 1
        per_conv.append(
            {
                "conversation_id": cid,
                "kind": kind,
                "shift_turn": s,
                "n_turns": len(by_conv[cid]),
                "detected": hit if s is not None else None,
                "fired_turns": [e.turn_index for e in events],
                "offsets": [r["offset"] for r in ev_rows] if s is not None else [],
                "miss_cause": miss_cause,
                "shift_turn_scores": shift_scores,
                "events": ev_rows,
            }
        )
    n_events = tp + fp
    no_shift = [c for c in per_conv if c["shift_turn"] is None]
    return {
        "conversations": len(per_conv),
        "turns": len(scored),
        "shift_conversations": n_shift,
        "no_shift_conversations": len(no_shift),
        "events": n_events,
        "true_positives": tp,
        "false_positives": fp,
        "precision": round(tp / n_events, 4) if n_events else None,
        "recall": round(detected / n_shift, 4) if n_shift else None,
        "detected": detected,
        "recall_by_kind": {k: {"detected": v[0], "of": v[1]} for k, v in sorted(recall_by_kind.items())},
        "misses_by_cause": dict(sorted(miss_causes.items())),
        "false_positives_by_kind": dict(sorted(fp_by_kind.items())),
        "conversations_with_false_alarm_by_kind": {
            k: {"alarmed": alarmed_convs_by_kind.get(k, 0), "of": n} for k, n in sorted(convs_by_kind.items())
        },
        "no_shift_conversations_alarmed": sum(1 for c in no_shift if c["fired_turns"]),
        "offset_histogram": {str(k): v for k, v in sorted(Counter(offsets).items())},
        "per_conversation": per_conv,
    }


def fmt(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def print_report(name: str, split: str, r: dict[str, Any], verbose: bool) -> None:
    print(f"\n== {name} ({split}): {r['conversations']} conversations, {r['turns']} turns, "
          f"{r['shift_conversations']} with a shift")
    print(f"precision {fmt(r['precision'])}  ({r['true_positives']} TP / {r['events']} events)   "
          f"recall {fmt(r['recall'])}  ({r['detected']} / {r['shift_conversations']})   "
          f"no-shift conversations alarmed {r['no_shift_conversations_alarmed']} / {r['no_shift_conversations']}")
    print("recall by kind: " + ", ".join(f"{k} {v['detected']}/{v['of']}" for k, v in r["recall_by_kind"].items()))
    print("misses by cause (scorer: shift turns not scored clearly negative; baseline: rejected by the "
          "relative gates; early_fire: an earlier false event's cooldown): "
          + (", ".join(f"{k} {v}" for k, v in r["misses_by_cause"].items()) or "none"))
    print("false positives by kind: " + (", ".join(f"{k} {v}" for k, v in r["false_positives_by_kind"].items()) or "none"))
    print("offset histogram (fired turn - shift turn): " + (json.dumps(r["offset_histogram"]) or "{}"))
    print(f"{'conversation':<14} {'kind':<18} {'shift':>5} {'fired':<12} {'offsets':<10} {'shift-turn s/tox':<16} result")
    for c in r["per_conversation"]:
        if c["shift_turn"] is None and not c["fired_turns"] and not verbose:
            continue
        if c["shift_turn"] is None:
            res = "FALSE ALARM" if c["fired_turns"] else "ok"
        else:
            res = "hit" if c["detected"] else f"MISS ({c['miss_cause']})"
            if any(not e["true_positive"] for e in c["events"]):
                res += " +FP"
        fired = ",".join(map(str, c["fired_turns"])) or "-"
        offs = ",".join(f"{o:+d}" for o in c["offsets"]) or "-"
        shift = "-" if c["shift_turn"] is None else str(c["shift_turn"])
        st = c["shift_turn_scores"][0] if c["shift_turn_scores"] else None
        sc = f"{st['sentiment']:+.2f}/{st['toxicity']:.2f}" if st else "-"
        print(f"{c['conversation_id']:<14} {c['kind']:<18} {shift:>5} {fired:<12} {offs:<10} {sc:<16} {res}")
    if not verbose:
        quiet = sum(1 for c in r["per_conversation"] if c["shift_turn"] is None and not c["fired_turns"])
        print(f"({quiet} no-shift conversations with no event not listed; --verbose lists them)")


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m convmon_dev.dynamics_eval", description=__doc__.split("\n")[0])
    p.add_argument("--data", action="append", type=Path,
                   help="conversation JSONL (repeatable); default: sample.jsonl and shift_eval.jsonl")
    p.add_argument("--labels", action="append", type=Path,
                   help="labels JSONL per --data, in the same order (default: derived from the data file name)")
    p.add_argument("--model-dir", type=Path, default=None, help="model suite directory (default: the packaged models/)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override a ShiftConfig parameter (for tuning on sample.jsonl only)")
    p.add_argument("--out", type=Path, default=Path("bench/shift-eval.json"))
    p.add_argument("--verbose", action="store_true", help="also list no-shift conversations without events")
    args = p.parse_args(argv)

    overrides: dict[str, Any] = {}
    for kv in args.param:
        k, _, v = kv.partition("=")
        overrides[k] = json.loads(v)
    config = ShiftConfig.from_dict({**ShiftConfig().to_dict(), **overrides})
    detector = ShiftDetector(config)

    datas = args.data or [d for d in DEFAULT_DATA if d.exists()]
    if args.labels and len(args.labels) != len(datas):
        p.error("give one --labels per --data")
    results = {}
    t0 = time.time()
    for i, data in enumerate(datas):
        lab_path = args.labels[i] if args.labels else labels_path_for(data)
        turns = read_jsonl(data)
        labels = {d["conversation_id"]: d for d in read_jsonl(lab_path)} if lab_path.exists() else {}
        if not labels:
            print(f"warning: no labels at {lab_path}; every conversation counts as no-shift", file=sys.stderr)
        unknown = set(labels) - {t["conversation_id"] for t in turns}
        if unknown:
            raise SystemExit(f"{lab_path}: labels for conversations not in {data}: {sorted(unknown)}")
        scored = score_turns(turns, args.model_dir)
        r = evaluate(scored, labels, detector)
        split = SPLIT.get(data.name, "other")
        print_report(str(data), split, r, args.verbose)
        results[data.name] = {"data": str(data), "labels": str(lab_path), "split": split, **r}

    report = {
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", "-m", "convmon_dev.dynamics_eval",
                                                        *(sys.argv[1:] if argv is None else argv)]),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.time() - t0, 2),
        "tolerance_turns": list(TOLERANCE),
        "config": config.to_dict(),
        "note": "thresholds were tuned on sample.jsonl only; shift_eval.jsonl is held out",
        "datasets": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
