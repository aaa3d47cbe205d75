"""Wiring for stream/offsets.py: every agent checks its records' offsets, seeks back over skipped ones, and
lets the consumer commit past a hole only once it is confirmed (stream/consumer.py)."""

from __future__ import annotations

import logging
from typing import Iterable

import faust

from .offsets import OffsetContinuity

log = logging.getLogger(__name__)


class Rereader:
    """One per agent (each agent reads its own topic)."""

    def __init__(self, app: faust.App, metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.continuity = OffsetContinuity()

    async def check(self, events: Iterable) -> None:
        app, continuity = self.app, self.continuity
        continuity.new_generation(app.consumer_generation_id)
        committed = getattr(app.consumer, "_committed_offset", {})  # where Faust started reading each partition
        for ev in events:
            tp = ev.message.tp
            if not continuity.known(tp):
                continuity.expect(tp, committed.get(tp))
            gap = continuity.observe(tp, ev.message.offset)
            if gap is None:
                continue
            if gap.accepted:
                log.info("offsets %d..%d of %s/%d do not exist (read again, still absent); committing past them",
                         gap.start, gap.end - 1, tp.topic, tp.partition)
                accept = getattr(app.consumer, "accept_gap", None)  # stream/consumer.py
                if accept is not None:
                    await accept(tp, gap.start, gap.end - 1)
                continue
            self.metrics.offset_gaps.labels(tp.topic).inc()
            log.warning("the consumer skipped offsets %d..%d of %s/%d; reading them again",
                        gap.start, gap.end - 1, tp.topic, tp.partition)
            await app.consumer.seek(tp, gap.start)
