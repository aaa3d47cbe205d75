"""1-minute tumbling-window aggregates per (app, model name, model version, role), on event time.

A window closes when the key's watermark (latest event time seen minus `grace_s`) passes its
end; it is emitted once. Events later than that are counted in `late_dropped` (visible in
/metrics) instead of re-opening a closed window.

The watermark never runs more than `max_ahead_s` (default 0) past the wall clock: one turn dated
hours ahead (a client with a wrong clock) is counted in its own window but does not make every
on-time turn after it late. (Any bound above 0 shortens the grace of on-time turns by as much.) A key that gets no turns for `idle_flush_s` of wall-clock time has its open
windows emitted by `close()`, so the last minute of a model version that goes quiet is stored. ClickHouse's `window_stats` is a
ReplacingMergeTree on (key, window_start), so a window re-emitted after a restart replaces the
earlier row rather than adding to it.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional

import numpy as np

from ..store.tables import WindowRow
from . import codec as C

WINDOW_S = 60
RESERVOIR = 2048  # toxicity values kept per window for the p95


@dataclass
class _Bucket:
    turns: int = 0
    tox: list = field(default_factory=list)
    tox_sum: float = 0.0
    sent_sum: float = 0.0
    sent_n: int = 0
    jailbreak_hits: int = 0
    policy_hits: int = 0
    pii_turns: int = 0
    drift_score: Optional[float] = None
    unsupported_language_turns: int = 0  # turns in a language the suite does not judge (no decision made)

    def to_snapshot(self, start: int) -> dict[str, Any]:
        d = {k: (v if v is None or isinstance(v, list) else C.plain_number(v)) for k, v in asdict(self).items()}
        return {"start": start, **d, "tox": [C.plain_number(v) for v in self.tox]}

    @classmethod
    def from_snapshot(cls, x: Any, where: str) -> tuple[int, "_Bucket"]:
        d = C.obj(x, where, ("start", "turns", "tox", "tox_sum", "sent_sum", "sent_n", "jailbreak_hits",
                             "policy_hits", "pii_turns", "drift_score"))  # fmt: skip
        start = C.integer(d["start"], f"{where}.start", 0, 2**32 - 1)  # window_stats.window_start is a DateTime
        if start % WINDOW_S:
            raise C.invalid(f"{where}.start: not a window start")
        turns = C.integer(d["turns"], f"{where}.turns", 1)
        b = cls(turns=turns,
                tox=[C.number(v, f"{where}.tox") for v in C.lst(d["tox"], f"{where}.tox", min(turns, RESERVOIR))],
                tox_sum=C.number(d["tox_sum"], f"{where}.tox_sum"),
                sent_sum=C.number(d["sent_sum"], f"{where}.sent_sum"),
                sent_n=C.integer(d["sent_n"], f"{where}.sent_n", 0, turns),
                jailbreak_hits=C.integer(d["jailbreak_hits"], f"{where}.jailbreak_hits", 0, turns),
                policy_hits=C.integer(d["policy_hits"], f"{where}.policy_hits", 0, turns),
                pii_turns=C.integer(d["pii_turns"], f"{where}.pii_turns", 0, turns),
                drift_score=C.opt_number(d["drift_score"], f"{where}.drift_score"),
                # absent in the snapshots of earlier releases
                unsupported_language_turns=C.integer(d.get("unsupported_language_turns", 0),
                                                     f"{where}.unsupported_language_turns", 0, turns))  # fmt: skip
        return start, b


@dataclass
class WindowKeyState:
    """One key's open windows and watermark, parsed from a snapshot."""

    buckets: dict[int, _Bucket]
    watermark: float



class MinuteWindows:
    def __init__(self, grace_s: float = 30.0, max_ahead_s: float = 0.0, idle_flush_s: float = 120.0,
                 clock: Callable[[], float] = time.time):
        self.grace_s, self.max_ahead_s, self.idle_flush_s, self.clock = grace_s, max_ahead_s, idle_flush_s, clock
        self.buckets: dict[tuple, dict[int, _Bucket]] = {}
        self.watermark: dict[tuple, float] = {}
        # key → wall-clock time of its latest turn (not snapshotted), least recently seen first
        self.last_seen: OrderedDict[tuple, float] = OrderedDict()
        self.late_dropped = 0

    # -- snapshots: one key as plain data --------------------------------------------------------

    def to_snapshot(self, key: tuple) -> Optional[dict[str, Any]]:
        buckets = self.buckets.get(key)
        if buckets is None:
            return None
        return {"watermark": self.watermark.get(key, float("-inf")),
                "buckets": [b.to_snapshot(start) for start, b in buckets.items()]}

    @staticmethod
    def from_snapshot(x: Any, where: str = "windows") -> WindowKeyState:
        d = C.obj(x, where, ("watermark", "buckets"))
        buckets = {}
        for i, b in enumerate(C.lst(d["buckets"], f"{where}.buckets", 100_000)):
            start, bucket = _Bucket.from_snapshot(b, f"{where}.buckets[{i}]")
            if start in buckets:
                raise C.invalid(f"{where}.buckets: a window twice")
            buckets[start] = bucket
        wm = C.number(d["watermark"], f"{where}.watermark")
        if not (math.isfinite(wm) or wm == float("-inf")):  # NaN or +inf: no window would ever close/open again
            raise C.invalid(f"{where}.watermark: out of range")
        return WindowKeyState(buckets, wm)

    def forget(self, key: tuple) -> None:
        """Drop a key's open windows and watermark from memory (its snapshot is kept in ClickHouse)."""
        for d in (self.buckets, self.watermark, self.last_seen):
            d.pop(key, None)

    def restore(self, key: tuple, ks: WindowKeyState) -> None:
        self.buckets[key], self.watermark[key] = ks.buckets, ks.watermark
        self.last_seen[key] = self.clock()  # idle from now on if no turn comes
        self.last_seen.move_to_end(key)

    def add(self, key: tuple, ts: float, toxicity: Optional[float], sentiment: Optional[float],
            jailbreak_hit: bool, policy_hit: bool, pii: bool, unsupported_language: bool = False) -> None:
        start = int(math.floor(ts / WINDOW_S) * WINDOW_S)
        wm = self.watermark.get(key, float("-inf"))
        if start + WINDOW_S <= wm - self.grace_s and start not in self.buckets.get(key, {}):
            self.late_dropped += 1
            return
        b = self.buckets.setdefault(key, {}).setdefault(start, _Bucket())
        b.turns += 1
        if toxicity is not None:
            b.tox_sum += toxicity
            if len(b.tox) < RESERVOIR:
                b.tox.append(toxicity)
            else:  # deterministic thinning keeps memory bounded
                b.tox[b.turns % RESERVOIR] = toxicity
        if sentiment is not None:
            b.sent_sum += sentiment
            b.sent_n += 1
        b.jailbreak_hits += int(jailbreak_hit)
        b.policy_hits += int(policy_hit)
        b.pii_turns += int(pii)
        b.unsupported_language_turns += int(unsupported_language)
        now = self.clock()
        self.watermark[key] = max(wm, min(ts, now + self.max_ahead_s))
        self.last_seen[key] = now
        self.last_seen.move_to_end(key)

    def note_drift(self, key: tuple, ts: float, score: float) -> None:
        start = int(math.floor(ts / WINDOW_S) * WINDOW_S)
        b = self.buckets.get(key, {}).get(start)
        if b is not None:
            b.drift_score = score if b.drift_score is None else max(b.drift_score, score)

    def close(self, now: Optional[float] = None, keys=None) -> list[WindowRow]:
        """Emit every window whose end is older than the watermark minus grace (or `now` minus grace),
        and every open window of a key idle for `idle_flush_s`. `keys`: only those keys' watermarks
        are checked (a batch's keys), idle keys are always flushed."""
        out = []
        wall = self.clock()
        idle = set()
        for k, t in self.last_seen.items():  # oldest first: the scan stops at the first key still active
            if wall - t < self.idle_flush_s:
                break
            idle.add(k)
        for k in idle:
            self.last_seen.pop(k, None)
        check = self.buckets if keys is None else set(keys) | idle
        for key in [k for k in check if k in self.buckets]:
            buckets = self.buckets[key]
            wm = float("inf") if key in idle else self.watermark.get(key, float("-inf"))
            if now is not None:
                wm = max(wm, now)
            due = sorted(s for s in buckets if s + WINDOW_S <= wm - self.grace_s)
            if key in idle and due:  # later turns of the flushed windows are late, not a second partial row
                self.watermark[key] = max(self.watermark.get(key, float("-inf")), due[-1] + WINDOW_S + self.grace_s)
            for start in due:
                out.append(_row(key, start, buckets.pop(start)))
        return out

    def provisional(self) -> list[WindowRow]:
        """A row for every window still open, which stays open (a worker stopping writes these, so that what it
        counted shows at once). When the window closes later, from this worker's snapshot, its final row has the
        same key and a later written_at, and replaces this one (window_stats is a ReplacingMergeTree)."""
        return [_row(key, start, b) for key, buckets in self.buckets.items() for start, b in sorted(buckets.items())]


def _row(key: tuple, start: int, b: "_Bucket") -> WindowRow:
    tox = np.array(b.tox, dtype=np.float64)
    return WindowRow(
        datetime.fromtimestamp(start, tz=timezone.utc), *key, b.turns,
        round(b.tox_sum / b.turns, 6) if b.tox else 0.0,
        round(float(np.percentile(tox, 95)), 6) if len(tox) else 0.0,
        round(b.sent_sum / b.sent_n, 6) if b.sent_n else 0.0,
        b.jailbreak_hits, b.policy_hits, b.pii_turns, b.drift_score, b.unsupported_language_turns,
    )
