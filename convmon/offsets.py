"""Offset continuity: notice when the consumer skipped records of a partition, and say where to re-read.

Why: Faust's fetch loop can drop records it has already fetched (the consumer's position
moves past them) when flow control is suspended around a rebalance or table recovery —
faust-streaming issue #596. We saw it after a SIGKILL + restart: 301 records of one
partition silently skipped, the partition's commit stuck behind them, lag never draining.
A chat-turn topic is neither compacted nor written transactionally, so its offsets are
contiguous: a jump means records were skipped, and the cure is to seek back and read them
again (downstream writes are idempotent on event_id, so records read twice do no harm).

Plain code, no Kafka: the agent feeds it each record's (partition key, offset) and seeks
where it says. A jump that is still there after one re-read (transaction markers, deleted
records) is accepted, so it never loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Optional


@dataclass(frozen=True)
class Gap:
    tp: Hashable
    start: int  # first offset not seen
    end: int  # the offset that arrived instead (exclusive end of the gap)

    @property
    def size(self) -> int:
        return self.end - self.start


MAX_REREADS = 3  # per gap start: a hole still there after this many re-reads is accepted


@dataclass
class _Partition:
    next_offset: Optional[int] = None  # the offset expected next; None until known
    resync_to: Optional[int] = None  # after a seek back: the first offset of the gap being re-read
    last: int = -1  # while resyncing: the highest offset seen since the seek was asked for
    rereads: dict[int, int] = field(default_factory=dict)  # gap start -> re-reads asked for


class OffsetContinuity:
    """Tracks the next expected offset per topic partition within one consumer generation."""

    def __init__(self) -> None:
        self._parts: dict[Hashable, _Partition] = {}
        self._generation: object = None

    def new_generation(self, generation: object) -> None:
        """After a rebalance the assignment and the positions change: forget everything."""
        if generation != self._generation:
            self._generation = generation
            self._parts.clear()

    def expect(self, tp: Hashable, offset: Optional[int]) -> None:
        """Where reading starts for `tp` (the committed offset), if known before its first record."""
        p = self._parts.setdefault(tp, _Partition())
        if p.next_offset is None and offset is not None and offset >= 0:
            p.next_offset = offset

    def known(self, tp: Hashable) -> bool:
        return tp in self._parts

    def observe(self, tp: Hashable, offset: int) -> Optional[Gap]:
        """Record one record's offset; returns the gap to re-read, if records before it were skipped."""
        p = self._parts.setdefault(tp, _Partition())
        if p.resync_to is not None:
            if offset > p.last:
                p.last = offset  # still records fetched before the seek: they are read again later
                return None
            # The offsets went back: the re-read has begun. If it starts past the gap's first offset,
            # those offsets do not exist (transaction markers, deleted records): continue from here.
            p.resync_to = None
            p.next_offset = offset + 1
            return None
        if p.next_offset is None or offset == p.next_offset:
            p.next_offset = offset + 1
            return None
        if offset < p.next_offset:
            return None  # a record delivered again (at-least-once): nothing skipped
        gap = Gap(tp, p.next_offset, offset)
        tries = p.rereads.get(gap.start, 0)
        if tries >= MAX_REREADS:
            p.next_offset = offset + 1
            return None
        p.rereads[gap.start] = tries + 1
        p.resync_to, p.last = gap.start, offset
        return gap
