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

These overrides touch Faust's Consumer internals `_add_gap`, `_new_offset`, `_acked`, `_gap` and
`_committed_offset` (faust-streaming 0.15); tests/unit/test_contiguous_commits.py pins them.
"""

from __future__ import annotations

from typing import Optional

import faust


def contiguous(consumer_cls: type) -> type:
    """`consumer_cls` (a Faust transport's Consumer) with commits kept behind unprocessed records."""

    class ContiguousConsumer(consumer_cls):
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
            acked = self._acked[tp]
            if committed is not None and acked and min(acked) > committed and not self._gap[tp].at(committed):
                return None  # the record at the committed offset is still owed
            return consumer_cls._new_offset(self, tp)

    return ContiguousConsumer


class App(faust.App):
    """faust.App whose consumer is `contiguous(...)`."""

    def _new_transport(self):
        transport = super()._new_transport()
        transport.Consumer = contiguous(transport.Consumer)
        return transport
