"""Offset continuity: notice when the consumer skipped records of a partition, and say where to re-read.

Why: Faust's fetch loop can drop records it has already fetched (the consumer's position
moves past them) when flow control is suspended around a rebalance or table recovery —
faust-streaming issue #596. We saw it after a SIGKILL + restart: 301 records of one
partition silently skipped, the partition's commit stuck behind them, lag never draining.
A chat-turn topic is neither compacted nor written transactionally, so its offsets are
contiguous: a jump means records were skipped, and the cure is to seek back and read them
again (downstream writes are idempotent on event_id, so records read twice do no harm).

Plain code, no Kafka: the agent feeds it each record's (partition key, offset) and seeks
where it says. A hole is accepted as really there (transaction markers, records deleted by
retention) only when two re-reads in a row begin at the same offset past it, or after
MAX_REREADS re-reads, and then only if the broker confirms it: stream/rereads.py reads those offsets with
a separate consumer, and a hole that holds records is re-read again (`reopen`) — a re-read can itself be
dropped by Faust's fetch loop every time (a chaos run lost one turn that way, 2026-12-07). Only then does
the agent let the consumer commit past it (stream/consumer.py).
Until then the commit stays before the hole, so the records stay owed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Optional


@dataclass(frozen=True)
class Gap:
    tp: Hashable
    start: int  # first offset not seen
    end: int  # the offset that arrived instead (exclusive end of the gap)
    accepted: bool = False  # False: re-read from `start`; True: the offsets start..end-1 do not exist

    @property
    def size(self) -> int:
        return self.end - self.start


MAX_REREADS = 3  # per gap start: a hole still there after this many re-reads is accepted
RESYNC_PATIENCE = 20_000  # records still arriving from before a seek; past this, the seek was lost: ask again


@dataclass
class _Partition:
    next_offset: Optional[int] = None  # the offset expected next; None until known
    resync_to: Optional[int] = None  # after a seek back: the first offset of the gap being re-read
    last: int = -1  # while resyncing: the highest offset seen since the seek was asked for
    waited: int = 0  # while resyncing: records seen since the seek was asked for
    rereads: dict[int, int] = field(default_factory=dict)  # gap start -> re-reads asked for
    began_at: dict[int, int] = field(default_factory=dict)  # gap start -> where the last re-read of it began


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
        """Record one record's offset; returns a gap to re-read, or one to accept as really there."""
        p = self._parts.setdefault(tp, _Partition())
        if p.resync_to is not None:
            if offset > p.last:  # still records fetched before the seek: they are read again later
                p.last = offset
                p.waited += 1
                if p.waited > RESYNC_PATIENCE:  # the re-read never began: the seek was lost
                    return self._gap(p, tp, p.resync_to, offset)
                return None
            start, p.resync_to = p.resync_to, None  # the offsets went back: the re-read has begun
            if offset <= start:
                p.next_offset = offset + 1
                return None
            # It began past the gap's first offset: either those offsets do not exist, or the re-read
            # was dropped again. Same answer twice in a row means they do not exist.
            p.next_offset = start
            if p.began_at.get(start) == offset:
                p.next_offset = offset + 1
                return Gap(tp, start, offset, accepted=True)
            p.began_at[start] = offset
            return self._gap(p, tp, start, offset)
        if p.next_offset is None or offset == p.next_offset:
            p.next_offset = offset + 1
            return None
        if offset < p.next_offset:
            return None  # a record delivered again (at-least-once): nothing skipped
        return self._gap(p, tp, p.next_offset, offset)

    def reopen(self, tp: Hashable, start: int, end: int) -> Gap:
        """A hole `observe` accepted turned out to hold records (the log has them: stream/rereads.py asks the
        broker): re-read it again from `start`, with its re-reads counted afresh. Returns the gap to re-read."""
        p = self._parts.setdefault(tp, _Partition())
        p.began_at.pop(start, None)
        p.rereads[start] = 1
        p.next_offset = start
        p.resync_to, p.last, p.waited = start, end, 0
        return Gap(tp, start, end)

    @staticmethod
    def _gap(p: _Partition, tp: Hashable, start: int, end: int) -> Gap:
        for done in [k for k in p.rereads if k < start]:  # gaps behind this one are settled
            p.rereads.pop(done)
            p.began_at.pop(done, None)
        tries = p.rereads.get(start, 0)
        if tries >= MAX_REREADS:
            p.next_offset = end + 1
            return Gap(tp, start, end, accepted=True)
        p.rereads[start] = tries + 1
        p.resync_to, p.last, p.waited = start, end, 0
        return Gap(tp, start, end)


@dataclass
class StallAction:
    tp: Hashable
    kind: str  # "seek" (step 1: re-read from the committed offset), "rejoin" (step 2), "escalate", "recovered",
    # "released" (an escalated partition was revoked: another worker owns it now, and escalates on its own)
    position: int
    highwater: int
    stalled_s: float
    escalated: bool = False  # on "recovered": the stall had been escalated (its consumer_stalled alert resolves)


@dataclass(frozen=True)
class PartitionView:
    """What the watchdog sees of one assigned partition."""

    position: int  # next offset the worker will read
    highwater: int
    busy: bool  # some record of it is in processing
    committed: Optional[int] = None  # the committed offset: the first record the worker still owes
    committed_in_hand: bool = True  # the record at `committed` is in processing or already acknowledged


class StallWatch:
    """A partition that stalled, for `after_s` with neither its position nor its committed offset moving:
    * records are waiting (position < high watermark) and none of the partition's records is in
      processing — the offset-gap re-read cannot see this when no later record ever arrives (issue 12: a
      demo partition stopped at offset 94 of 148 with nothing logged); or
    * the record at the committed offset was read past but is neither in processing nor acknowledged:
      it was dropped between fetch and processing, and the commit (stream/consumer.py) waits for it.
    Steps: seek back to the committed offset; if the partition is still stuck `after_s` later, rejoin the
    consumer group (a rebalance re-seeks every partition, on every worker of the group: the last resort).
    Rejoins back off exponentially (after_s · 2^k, at most one an hour) and at most `max_rejoins_per_hour`
    happen in any hour, whatever the partitions: a stall a rejoin does not cure must not become a rebalance
    storm. It becomes an incident instead: "escalate", once per stall, when the partition is still stuck
    `after_s` after a rejoin or when the budget allows no rejoin (the caller raises a `consumer_stalled` alert,
    resolved by the "recovered" that ends the stall). A partition fully committed up to its high watermark is
    never stalled.

    Plain code: the caller passes a PartitionView (or a tuple of its fields) per partition and performs
    the actions returned."""

    def __init__(self, after_s: float, max_rejoins_per_hour: int = 4, max_settle_s: Optional[float] = None):
        self.after_s = after_s
        self.max_rejoins_per_hour = max_rejoins_per_hour
        self.max_settle_s = 4 * after_s if max_settle_s is None else max_settle_s
        self._settling_since: Optional[float] = None
        self._since: dict[Hashable, tuple[tuple, float]] = {}  # tp → (progress, when it last moved or a step ran)
        self.steps: dict[Hashable, int] = {}  # tp → steps taken in the current stall
        self.rejoins: list[float] = []  # when the recent rejoins were asked for (any partition)
        self.escalated: set = set()  # partitions whose current stall was escalated

    @property
    def stalled(self) -> set:
        return set(self.steps)

    def _may_rejoin(self, now: float, decided: list) -> bool:
        """One rejoin per check (it re-seeks every partition); after k rejoins in the last hour the next waits
        after_s · 2^k (at most an hour) since the last one; never more than max_rejoins_per_hour in an hour."""
        self.rejoins = [t for t in self.rejoins if now - t < 3600]
        if any(a.kind == "rejoin" for a in decided) or len(self.rejoins) >= self.max_rejoins_per_hour:
            return False
        k = len(self.rejoins)
        return k == 0 or now - self.rejoins[-1] >= min(3600.0, self.after_s * 2 ** k)

    @staticmethod
    def _done(v: PartitionView) -> bool:
        """Everything up to the high watermark is committed: nothing is owed, whatever the position says (after
        a broker restart the consumer's position was seen one past a high watermark it had not refreshed)."""
        return v.committed is not None and v.committed >= v.highwater

    def _owed(self, v: PartitionView) -> bool:
        return (v.committed is not None and v.committed < v.position and not v.committed_in_hand
                and not self._done(v))

    def _stuck(self, v: PartitionView) -> bool:
        return self._owed(v) or (not v.busy and v.position < v.highwater and not self._done(v))

    def skip(self, settling: bool, now: float) -> bool:
        """Whether to skip this check because the group is settling: rebalancing, or a commit waiting for an
        unreachable broker. Nothing can move until that ends and neither a re-read nor a rejoin would help, so
        every partition's clock restarts and a stall counts only from when the group can make progress again (the
        chaos run logged 8 stall warnings 15 s into a rebalance and a broker restart, all cured by their end).
        Honoured for at most `max_settle_s` in a row: a rebalance that never ends is watched as usual."""
        if not settling:
            self._settling_since = None
            return False
        if self._settling_since is None:
            self._settling_since = now
        if now - self._settling_since >= self.max_settle_s:
            return False
        self._since = {tp: (progress, now) for tp, (progress, _) in self._since.items()}
        return True

    def check(self, partitions: dict[Hashable, PartitionView | tuple], now: float) -> list[StallAction]:
        out = []
        for tp in [t for t in self._since if t not in partitions]:  # revoked
            self._since.pop(tp, None)
            self.steps.pop(tp, None)
            if tp in self.escalated:
                self.escalated.discard(tp)
                out.append(StallAction(tp, "released", -1, -1, 0.0, True))
        for tp, v in partitions.items():
            v = v if isinstance(v, PartitionView) else PartitionView(*v)
            # an owed record stalls the commit even while later records flow: then only the commit counts
            progress = ("owed", v.committed) if self._owed(v) else ("read", v.position, v.committed)
            prev = self._since.get(tp)
            moved = prev is not None and prev[0] != progress
            if not self._stuck(v) or prev is None or moved:
                self._since[tp] = (progress, now)
                if tp in self.steps and (moved or not self._stuck(v)):
                    out.append(StallAction(tp, "recovered", v.position, v.highwater, 0.0, tp in self.escalated))
                    self.steps.pop(tp)
                    self.escalated.discard(tp)
                continue
            if now - prev[1] < self.after_s:
                continue
            stalled_s, step = now - prev[1], self.steps.get(tp, 0)
            if step == 0:
                self.steps[tp] = 1
                self._since[tp] = (progress, now)  # the next step only after another wait
                out.append(StallAction(tp, "seek", v.position, v.highwater, stalled_s))
                continue
            covered = any(a.kind == "rejoin" for a in out)  # this check's rejoin re-seeks every partition
            rejoin = not covered and self._may_rejoin(now, out)
            spent = not covered and len(self.rejoins) >= self.max_rejoins_per_hour
            if tp not in self.escalated and (step >= 2 or spent):  # a rejoin did not cure it, or none may run
                self.escalated.add(tp)
                out.append(StallAction(tp, "escalate", v.position, v.highwater, stalled_s))
            if rejoin:
                self.rejoins.append(now)
                out.append(StallAction(tp, "rejoin", v.position, v.highwater, stalled_s))
            if rejoin or covered:
                self.steps[tp] = step + 1
                self._since[tp] = (progress, now)
        return out
