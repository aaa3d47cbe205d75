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


@dataclass
class StallAction:
    tp: Hashable
    kind: str  # "seek" (step 1: re-read from the committed offset), "rejoin" (step 2), "recovered"
    position: int
    highwater: int
    stalled_s: float


class StallWatch:
    """A partition that stalled: records are waiting (position < high watermark), none of the partition's
    records is in processing, and the position has not moved for `after_s`. The offset-gap re-read above
    cannot see this when no later record ever arrives (issue 12: a demo partition stopped at offset 94 of
    148 with nothing logged). Steps: seek back to the committed offset; if the partition is still stuck
    `after_s` later, rejoin the consumer group (a rebalance re-seeks every partition); then again.

    Plain code: the caller passes, per partition, (position = next offset to read, high watermark, busy =
    some record of it is being processed) and performs the actions returned."""

    def __init__(self, after_s: float):
        self.after_s = after_s
        self._since: dict[Hashable, tuple[int, float]] = {}  # tp → (position, when it last moved or a step ran)
        self.steps: dict[Hashable, int] = {}  # tp → steps taken in the current stall

    @property
    def stalled(self) -> set:
        return set(self.steps)

    def check(self, partitions: dict[Hashable, tuple[int, int, bool]], now: float) -> list[StallAction]:
        out = []
        for tp in [t for t in self._since if t not in partitions]:  # revoked
            self._since.pop(tp, None)
            self.steps.pop(tp, None)
        for tp, (pos, high, busy) in partitions.items():
            prev = self._since.get(tp)
            if busy or pos >= high or prev is None or prev[0] != pos:
                self._since[tp] = (pos, now)
                if tp in self.steps and (pos >= high or (prev is not None and prev[0] != pos)):
                    out.append(StallAction(tp, "recovered", pos, high, 0.0))
                    self.steps.pop(tp)
                continue
            if now - prev[1] < self.after_s:
                continue
            step = self.steps.get(tp, 0) + 1
            self.steps[tp] = step
            self._since[tp] = (pos, now)  # the next step only after another after_s
            out.append(StallAction(tp, "seek" if step == 1 else "rejoin", pos, high, now - prev[1]))
        return out
