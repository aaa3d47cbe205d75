"""`convmon bench false-pages`: how often convmon would page on real, benign chat.

Every turn of the benign evaluation sources (models/data/public/benign/, split "eval": real assistant
replies by several models, real user requests, people in distress, mainstream climate statements; never
used for training, thresholds, gates or the length correction) goes through the worker's own scoring
pipeline (PII + suite, with its role) and the default alert rules (infra/alerting/rules.toml). A turn that
any single-turn rule would alert on is a false page: none of these turns is toxic, an attack or a
contrarian claim. Reported per 1,000 turns, overall, per signal, per role x length bucket (words:
<= 40, 41-150, > 150) and per source, with each false page's redacted evidence.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

from convmon.alerting.rules import RuleSet, turn_alerts
from convmon.scoring.offline import turn_of
from convmon.scoring.pii import PiiScorer
from convmon.scoring.pipeline import ScoringPipeline
from convmon.scoring.suite import SuiteScorer
from convmon_dev.modelsuite.calibrate import bucket
from convmon_dev.modelsuite.datasets import benign_rows

BUCKETS = ("short", "medium", "long")
BUCKET_WORDS = {"short": "<= 40 words", "medium": "41-150 words", "long": "> 150 words"}
TARGET_OVERALL, TARGET_CELL = 5.0, 10.0  # the trusted-pages goal: pages per 1,000 turns
BATCH = 64


def per_1000(k: int, n: int) -> float | None:
    return round(1000 * k / n, 2) if n else None


def run(models_dir: Path, log: Callable[[str], None] = print, threads: int = 2) -> dict:
    rows = benign_rows(models_dir, ("eval",))
    if not rows:
        raise SystemExit(f"no benign evaluation turns under {models_dir}/data/public/benign: run `convmon models data`")
    suite = SuiteScorer(models_dir, threads=threads)
    pipeline = ScoringPipeline([PiiScorer(), suite])
    rules = RuleSet.load()
    t0 = time.monotonic()
    pages, by_signal, unsupported = [], Counter(), 0
    gate = {pid: Counter() for pid in suite.model.policy_ids}  # (on-topic category?, passes the gate?) -> turns
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # (role, bucket) -> [turns, pages]
    sources: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        scored = pipeline.score([turn_of(r["text"], r["role"]) for r in chunk])
        for r, s in zip(chunk, scored):
            for pid in gate:
                gate[pid][(r.get("tag") == "climate_mainstream", bool(s.extras["decisions"][pid].on_topic))] += 1
        alerts = turn_alerts(rules, scored, suite.model.thresholds, suite.model.policy_thresholds)
        paged: dict[str, list] = defaultdict(list)
        for a in alerts:
            paged[a.details["event_id"]].append(a)
        for r, s in zip(chunk, scored):
            cell = cells[(r["role"], bucket(r["text"]))]
            cell[0] += 1
            sources[r["source"]][0] += 1
            unsupported += s.scores.get("language_supported") is False
            hits = paged.get(s.turn.event_id)
            if not hits:
                continue
            cell[1] += 1
            sources[r["source"]][1] += 1
            for a in hits:
                by_signal[a.details["signal"]] += 1
            pages.append({"source": r["source"], "tag": r.get("tag", ""), "role": r["role"],
                          "words": len(r["text"].split()),
                          "signals": {a.details["signal"]: a.details["score"] for a in hits},
                          "evidence": [a.details["evidence"]["excerpt"] for a in hits if a.details.get("evidence")]})
        log(f"  {min(start + BATCH, len(rows))}/{len(rows)} benign turns scored, {len(pages)} would page")
    n = len(rows)
    roles = sorted({r for r, _ in cells})
    table = {role: {b: {"turns": cells[(role, b)][0], "pages": cells[(role, b)][1],
                        "per_1000": per_1000(cells[(role, b)][1], cells[(role, b)][0])} for b in BUCKETS}
             for role in roles}
    by_bucket = {b: per_1000(sum(cells[(r, b)][1] for r in roles), sum(cells[(r, b)][0] for r in roles)) for b in BUCKETS}
    worst = max((c["per_1000"] for t in table.values() for c in t.values() if c["turns"]), default=0.0)
    report = {
        "what": "single-turn pages the default rules would send on benign real chat (held-out sources), per 1,000 turns",
        "suite": suite.model.version,
        "thresholds": {**suite.model.thresholds, **suite.model.policy_thresholds},
        "turns": n,
        "pages": len(pages),
        "per_1000": per_1000(len(pages), n),
        "per_1000_by_signal": {k: per_1000(v, n) for k, v in sorted(by_signal.items())},
        "per_1000_by_role_and_length": table,
        "per_1000_by_length": by_bucket,
        "long_to_short": round(by_bucket["long"] / by_bucket["short"], 2) if by_bucket["short"] else None,
        "buckets": BUCKET_WORDS,
        "per_1000_by_source": {k: {"turns": v[0], "per_1000": per_1000(v[1], v[0])} for k, v in sorted(sources.items())},
        "unsupported_language_turns": unsupported,
        "topic_gate": {pid: {
            "off_topic_turns": c[(False, False)] + c[(False, True)],
            "off_topic_passing": round(c[(False, True)] / max(1, c[(False, False)] + c[(False, True)]), 4),
            "mainstream_climate_turns": c[(True, False)] + c[(True, True)],
            "mainstream_climate_passing": round(c[(True, True)] / max(1, c[(True, False)] + c[(True, True)]), 4),
        } for pid, c in gate.items()},
        "targets": {"overall_per_1000": TARGET_OVERALL, "every_role_and_length_per_1000": TARGET_CELL},
        "meets_targets": per_1000(len(pages), n) <= TARGET_OVERALL and worst <= TARGET_CELL,
        "false_pages": pages,
        "seconds": round(time.monotonic() - t0, 1),
    }
    suite.close()
    return report


def summary(r: dict) -> str:
    lines = [f"{r['turns']} benign turns ({r['suite']}): {r['pages']} would page = {r['per_1000']} per 1,000 "
             f"(target ≤ {r['targets']['overall_per_1000']}); by signal {r['per_1000_by_signal'] or 'none'}"]
    for role, t in r["per_1000_by_role_and_length"].items():
        lines.append(f"  {role:<10} " + "  ".join(f"{BUCKET_WORDS[b]}: {c['per_1000']} ({c['turns']} turns)"
                                                for b, c in t.items() if c["turns"]))
    lines.append(f"  long/short ratio {r['long_to_short']}; meets targets: {r['meets_targets']}")
    return "\n".join(lines)
