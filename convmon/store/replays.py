"""Which scored turns a store may already hold because Kafka delivered them again.

Kafka delivers at least once. A worker killed after it stored a batch but before its offsets were committed
reads those records again on restart, and a consumer that skipped offsets seeks back over turns it has already
stored (stream/rereads.py). ClickHouse's `insert_deduplication_token` drops only a retry of the *same* batch;
re-read records fall into different micro-batches, and ReplacingMergeTree collapses the copies only in a later
merge (or under FINAL), so raw counts and reads without FINAL saw them twice.

Checking every batch against the store would cost a lookup per batch, so `ReplayGuard` says which rows need
the check:
- a partition's rows the first time this process stores that partition: the records a killed worker stored
  but did not commit are a run of offsets that starts where reading resumes (a batch is stored in offset
  order), so the check stops at the first batch that holds a turn the store does not have;
- a partition's rows at or below the highest offset this process has stored for it (a seek back, a
  partition that came back after a rebalance): checked until the offsets pass that mark.
The check itself (`TurnStore.already_stored`) looks the turns up by the table's sorting key.

Rows read outside Kafka (offline scoring) all carry partition 0, offset 0: they are always checked.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

from ..scoring.pipeline import ScoredTurn


def _by_partition(rows: Iterable[ScoredTurn]) -> dict[int, list[ScoredTurn]]:
    out: dict[int, list[ScoredTurn]] = defaultdict(list)
    for s in rows:
        out[s.partition].append(s)
    return out


class ReplayGuard:
    """Per-partition memory of what this process stored; one per worker process (it outlives reconnects)."""

    def __init__(self) -> None:
        self._high: dict[int, int] = {}  # partition -> highest offset stored by this process
        self._resuming: set[int] = set()  # partitions whose resumed run of stored turns is not yet passed

    def to_check(self, rows: Sequence[ScoredTurn]) -> list[ScoredTurn]:
        """The rows that may be copies of stored ones."""
        out = []
        for p, rs in _by_partition(rows).items():
            high = self._high.get(p)
            if high is None:  # first sight of the partition in this process
                self._resuming.add(p)
            if p in self._resuming or min(s.offset for s in rs) <= high:
                out.extend(rs)
        return out

    def stored(self, rows: Sequence[ScoredTurn], copies: set[str]) -> None:
        """Record a written batch: `rows` as given to the store, `copies` the event ids it already held."""
        for p, rs in _by_partition(rows).items():
            if p in self._resuming and any(s.turn.event_id not in copies for s in rs):
                self._resuming.discard(p)
            self._high[p] = max(self._high.get(p, -1), max(s.offset for s in rs))
