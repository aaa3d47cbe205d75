"""The Faust consumer with commits that never pass an unprocessed record.

Faust treats every jump in a partition's offsets as a *gap* (room taken by transaction markers)
and commits straight over it once later records are acknowledged. When the jump is records that
Faust's own fetch loop dropped (faust-streaming #596: a record handed over while flow is suspended
around a rebalance is abandoned, yet its offset counts as read), that commit loses them for good:
a restart or a rebalance starts after them. Two lost-turn failures of the end-to-end suite were
this (turns/2 offsets 445..499 after a SIGKILL take-over).

convmon's topics are written without transactions, so a jump is not a gap until the re-read
(stream/rereads.py, stream/offsets.py) has looked and found the offsets really absent. Here:
  * `_add_gap`, called by Faust's fetch loop on every jump, records nothing;
  * `accept_gap` is what the re-read calls once a hole is confirmed: then Faust may commit over it;
  * `_new_offset` commits nothing while the record at the committed offset is unacknowledged and
    not inside an accepted gap (Faust's own check lets one missing record through, and none when
    the committed offset is 0; its `_add_gap` leaves out the committed offset itself).
The records stay owed: the committed offset stays before them, so a restart, a rebalance or the
stall watchdog (stream/watchdog.py) reads them again.

A partition's revocation must not let the commit pass skipped records either. Faust forgets a revoked
partition's committed offset and acknowledgements, and only then does its App wait for the events still in
flight and commit (`wait_empty`): their late acknowledgements, after records that were skipped and not yet
re-read, made a first run of acknowledged offsets that Faust's own `_new_offset` committed over the skipped
ones (a chaos run on an experimental consumer lost turns/0 5797..6230 this way). The committed offset of a
revoked partition is kept for that check until the partition is assigned again.

A commit that fails (the broker is away) is not taken for done: Faust would record its offsets as committed
after dropping their acknowledgements, so a partition that then received nothing new never committed them
(the stall warnings during the chaos run's broker restart, issue 20). `_commit_offsets` keeps the committed
offset where it was and `_new_offset` offers the failed offset again with the next commit.

`_read_offset` has one meaning here: the offset of the last record handed to a stream. Faust's fetch loop
stores that, but its `seek` and `perform_seek` (run on every partition assignment) store the offset to
read *next* there. The stall watchdog (position = last read + 1) then saw a finished partition one past
its high watermark after every rebalance (after kills and a broker restart: issue 20) and rejoined the
group again and again. `seek` and `perform_seek` below store `offset - 1` (None before offset 1), which
the fetch loop reads the same way: a record at `offset` or later is taken, and one at the sought offset
is not a jump.

These overrides touch Faust's Consumer internals `_add_gap`, `_new_offset`, `_commit_offsets`, `_acked`,
`_gap`, `_read_offset` and `_committed_offset` (faust-streaming 0.15); tests/unit/test_contiguous_commits.py
pins them.
"""

from __future__ import annotations

from typing import Optional

import faust
from faust.transport.consumer import ensure_TP


def last_read(next_offset: Optional[int]) -> Optional[int]:
    """The `_read_offset` value for a partition about to read `next_offset` (nothing read before it)."""
    return next_offset - 1 if next_offset is not None and next_offset > 0 else None


def contiguous(consumer_cls: type) -> type:
    """`consumer_cls` (a Faust transport's Consumer) with commits kept behind unprocessed records."""

    class ContiguousConsumer(consumer_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._failed_commit: dict = {}  # tp → offset of a commit that failed, tried again with the next one
            self._revoked_committed: dict = {}  # tp → its committed offset when revoked (Faust forgets it then)

        async def _add_gap(self, tp, offset_from: int, offset_to: int) -> None:
            return None  # a jump is skipped records until the re-read says otherwise

        async def accept_gap(self, tp, offset_from: int, offset_to: int) -> None:
            """Offsets offset_from..offset_to (inclusive) do not exist: commits may pass them.
            (Not Faust's `_add_gap`: that one leaves out the committed offset itself.)"""
            gaps = self._gap[tp]
            gaps.addi(offset_from, offset_to + 1)  # intervaltree: end exclusive
            gaps.merge_overlaps()

        def _new_offset(self, tp) -> Optional[int]:
            committed = self._committed_offset[tp]
            if committed is None:  # revoked: the events still in flight are acked after Faust forgot it
                committed = self._revoked_committed.get(tp)
            retry = self._failed_commit.get(tp)  # a failed commit: its records are processed, its acks gone
            if retry is not None and (committed is None or retry > committed):
                committed = retry
            acked = self._acked[tp]
            if committed is not None and acked and min(acked) > committed and not self._gap[tp].at(committed):
                new = None  # the record at the committed offset is still owed
            else:
                saved, self._committed_offset[tp] = self._committed_offset[tp], committed
                try:
                    new = consumer_cls._new_offset(self, tp)
                finally:
                    self._committed_offset[tp] = saved
            return retry if retry is not None and (new is None or new < retry) else new

        async def _commit_offsets(self, offsets, start_new_transaction: bool = True) -> bool:
            """Faust's, but a failed commit (broker away) is not taken for done: Faust records the offsets as
            committed and has dropped their acknowledgements, so a partition with nothing new to read never
            committed them. Here the committed offsets stay as they were and the failed ones are tried again
            with the next commit."""
            before = {tp: self._committed_offset.get(tp) for tp in offsets}
            did = await consumer_cls._commit_offsets(self, offsets, start_new_transaction)
            assigned = self.assignment()
            for tp, offset in offsets.items():
                if did:
                    if self._failed_commit.get(tp, -1) <= offset:
                        self._failed_commit.pop(tp, None)
                elif tp in assigned:
                    self._committed_offset[tp] = before[tp]
                    self._failed_commit[tp] = max(offset, self._failed_commit.get(tp, offset))
            return did

        async def on_partitions_revoked(self, revoked) -> None:
            for tp in revoked:
                self._failed_commit.pop(tp, None)  # the new owner reads from the broker's committed offset
                if self._committed_offset.get(tp) is not None:
                    self._revoked_committed[tp] = self._committed_offset[tp]
            await consumer_cls.on_partitions_revoked(self, revoked)

        async def seek(self, partition, offset: int) -> None:
            await self._seek(partition, offset)
            self._read_offset[ensure_TP(partition)] = last_read(offset)

        async def perform_seek(self) -> None:
            """Faust's perform_seek (every partition to its committed offset), with `_read_offset` as above."""
            committed = await self.seek_to_committed()
            for tp in committed:
                self._revoked_committed.pop(ensure_TP(tp), None)  # assigned again: the broker's offset counts
            self._read_offset.update({tp: last_read(o) for tp, o in committed.items()})
            self._committed_offset.update({ensure_TP(tp): o if o else None
                                           for tp, o in committed.items() if o is not None})

    return ContiguousConsumer


class App(faust.App):
    """faust.App whose consumer is `contiguous(...)`."""

    def _new_transport(self):
        transport = super()._new_transport()
        transport.Consumer = contiguous(transport.Consumer)
        return transport
