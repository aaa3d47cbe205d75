"""Which scored turns a store may already hold because Kafka delivered them again.

Kafka delivers at least once. A worker killed after it stored a batch but before its offsets were committed
reads those records again on restart, and a consumer that skipped offsets seeks back over turns it has already
stored (stream/rereads.py). ClickHouse's `insert_deduplication_token` drops only a retry of the *same* batch;
re-read records fall into different micro-batches, and ReplacingMergeTree collapses the copies only in a later
merge (or under FINAL), so raw counts and reads without FINAL saw them twice.

Checking every batch against the store would cost a lookup per batch, so `ReplayGuard` says which rows need
the check:
- a partition's rows where reading resumes: the first time this process stores that partition, or when its
  offsets jump past the next one expected (the partition was with another worker meanwhile, which may have
  stored turns into the same ClickHouse server without committing them). The records a killed or departed
  worker stored but did not commit are a run of offsets that starts where reading resumes (a batch is stored
  in offset order), so the check stops at the first batch that holds a turn the store does not have. A jump
  can also be records that were not turns (dead letters): one lookup more;
- a partition's rows at or below the highest offset this process has stored for it (a seek back over a
  hole, where stored turns follow unstored ones): checked until the offsets pass that mark.
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
            high, low = self._high.get(p), min(s.offset for s in rs)
            if high is None or low > high + 1:  # first sight in this process, or back from elsewhere
                self._resuming.add(p)
            if p in self._resuming or low <= high:
                out.extend(rs)
        return out

    def stored(self, rows: Sequence[ScoredTurn], copies: set[str]) -> None:
        """Record a written batch: `rows` as given to the store, `copies` the event ids it already held."""
        for p, rs in _by_partition(rows).items():
            if p in self._resuming and any(s.turn.event_id not in copies for s in rs):
                self._resuming.discard(p)
            self._high[p] = max(self._high.get(p, -1), max(s.offset for s in rs))
