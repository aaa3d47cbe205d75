"""Alert latency per hop: where a page's time goes between a turn reaching Kafka and its channel accepting it.

Each hop is timed from Kafka record timestamps (the producer's CreateTime), so no payload carries anything
new, and observed as `convmon_alert_hop_seconds{hop}` (metrics.py):

- `score`: the turn's record timestamp on chat.turns → its alert record acknowledged by Kafka on chat.alerts
  (scoring micro-batch, scoring, dynamics, the batch's ClickHouse insert and publish);
- `alerts_topic`: the alert record's timestamp → the alerts agent took it (chat.alerts, the agent's batch window);
- `decide`: the alerts agent took it → the channel's outbox record acknowledged by Kafka;
- `outbox_topic`: the outbox record's timestamp → the delivery consumer took it (agents/delivery.py);
- `deliver`: taken → the channel accepted it (queue, retries, the channel's request).

A record's timestamp is set when its producer creates it, before Kafka acknowledges it: `score` and
`alerts_topic` (and `decide` and `outbox_topic`) both contain that short produce → acknowledge interval, so the
hops add up to slightly more than the end-to-end latency. `score` counts every alert record the turns agent
publishes; the later hops count only firing notifications (pages), not resolutions or control records.
Plain code: the agents call these with their records and the wall clock.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

HOPS = ("score", "alerts_topic", "decide", "outbox_topic", "deliver")
# fine where the ≤ 1 s budget is decided, coarser towards the 10 s ceiling
BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0,
           1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0)

Observe = Callable[[str, float], None]  # (hop, seconds)


def record_time(ts: Any, *, ms: bool = False) -> Optional[float]:
    """A Kafka record timestamp as epoch seconds (Faust: seconds; aiokafka: `ms=True`), or None where the record
    has none (None, -1, 0, not a number)."""
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        return None
    t = ts / 1000.0 if ms else float(ts)
    return t if math.isfinite(t) and t > 0 else None


def event_time(event) -> Optional[float]:
    """A Faust event's record timestamp in seconds, or None."""
    return record_time(getattr(getattr(event, "message", None), "timestamp", None))


class AlertHops:
    """Observes the hops of alert records and pages as the agents meet them; `now` is the wall clock
    (Kafka timestamps are wall-clock times). A negative span (clocks apart) counts as 0."""

    def __init__(self, observe: Observe, now: Callable[[], float] = time.time):
        self.observe, self.now = observe, now

    def span(self, hop: str, start: Optional[float], end: float) -> Optional[float]:
        """Observe `hop` from `start` to `end`; nothing when `start` is unknown."""
        if start is None:
            return None
        seconds = max(0.0, end - start)
        self.observe(hop, seconds)
        return seconds

    # -- turns agent ----------------------------------------------------------------------
    def scored(self, origins: Iterable[Optional[float]], acked: float) -> None:
        """`score` for each alert record of a batch: its turn's record time (alert_origins) → `acked`."""
        for t in origins:
            self.span("score", t, acked)

    # -- alerts agent ---------------------------------------------------------------------
    def decided(self, paging: Iterable[Optional[float]], taken: float, acked: float) -> None:
        """`alerts_topic` and `decide` for each alert record that paged (its record time, stage.AlertBatch.pages):
        record time → `taken` (the agent got the batch) → `acked` (Kafka has the batch's outbox records)."""
        for t in paging:
            self.span("alerts_topic", t, taken)
            self.span("decide", taken, acked)

    # -- outbox delivery ------------------------------------------------------------------
    def taken_from_outbox(self, timestamp_ms: Any, taken: float) -> Optional[Callable[[str], None]]:
        """`outbox_topic` for a firing notification's outbox record (aiokafka timestamp, ms) taken at `taken`;
        returns what to call with the channel's outcome, which observes `deliver` when it was "delivered".
        None when the record has no timestamp (neither hop is observed)."""
        if self.span("outbox_topic", record_time(timestamp_ms, ms=True), taken) is None:
            return None

        def done(outcome: str) -> None:
            if outcome == "delivered":
                self.span("deliver", taken, self.now())

        return done


def alert_origins(alert_values: Sequence[bytes], scored: Sequence,
                  times: Mapping[tuple[int, int], Optional[float]]) -> list[Optional[float]]:
    """For each alert record a scored batch publishes (wire.encode_alert values): the record time of the turn that
    raised it, found by (conversation_id, turn_index) among the batch's scored turns (pipeline.ScoredTurn) and
    `times[(partition, offset)]` (record_times); None where that turn is not in the batch or has no timestamp."""
    where: dict[tuple[str, int], tuple[int, int]] = {}
    for s in scored:
        where.setdefault((s.turn.conversation_id, s.turn.turn_index), (s.partition, s.offset))
    out: list[Optional[float]] = []
    for raw in alert_values:
        try:
            d = json.loads(raw)
            at = where.get((d["conversation_id"], d["turn_index"]))
        except (ValueError, TypeError, KeyError):
            at = None
        out.append(times.get(at) if at is not None else None)
    return out


def record_times(events: Iterable) -> dict[tuple[int, int], Optional[float]]:
    """(partition, offset) → record time, for a batch's Faust events."""
    return {(ev.message.partition, ev.message.offset): event_time(ev) for ev in events}
