"""Wiring for stream/offsets.py: every agent checks its records' offsets, seeks back over skipped ones, and
lets the consumer commit past a hole only once it is confirmed (stream/consumer.py).

Confirmed means two things: the re-reads agree that the offsets are missing (offsets.py), and the broker,
asked by a separate consumer, returns no record at those offsets (`log_holds_records`). The second check
exists because the re-read itself can be lost: Faust's fetch loop stores each handed-over record's offset
as the last one read, also when it is still working through records fetched before our seek, and then drops
the re-fetched records below it. A chaos run (2026-12-07) lost turns/1 offset 7668 that way: three re-reads
each began at 7669, and the hole was taken for real.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Iterable, Optional

import faust

from .offsets import OffsetContinuity

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 10.0


def log_holds_records(client_config: dict, topic: str, partition: int, start: int, end: int,
                      timeout_s: float = PROBE_TIMEOUT_S) -> Optional[bool]:
    """Whether the partition's log holds a record at any offset in start..end-1 (blocking; kafka-python).
    None when the broker gave no answer in time. A consumer sees no transaction markers, so the offsets they
    take are a real hole, and so are records deleted by retention."""
    from kafka import KafkaConsumer, TopicPartition

    tp = TopicPartition(topic, partition)
    consumer = KafkaConsumer(**client_config, group_id=None, enable_auto_commit=False,
                             consumer_timeout_ms=int(timeout_s * 1000))
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        for message in consumer:  # the first record at or after `start` decides
            return message.offset < end
        return None
    finally:
        consumer.close()


class Rereader:
    """One per agent (each agent reads its own topic). `holds_records(topic, partition, start, end)`:
    `log_holds_records` with the worker's Kafka settings unless given (tests)."""

    def __init__(self, app: faust.App, metrics, holds_records: Optional[Callable] = None) -> None:
        self.app = app
        self.metrics = metrics
        self.continuity = OffsetContinuity()
        if holds_records is None:
            from ..kafka_clients import client_config

            config = client_config(app.convmon.runtime.settings.kafka)

            def holds_records(topic, partition, start, end):
                return log_holds_records(config, topic, partition, start, end)
        self.holds_records = holds_records

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
                try:
                    held = await asyncio.to_thread(self.holds_records, tp.topic, tp.partition, gap.start, gap.end)
                except Exception as e:  # noqa: BLE001 - the broker cannot tell: keep the records owed
                    log.warning("cannot check offsets %d..%d of %s/%d with the broker (%s)", gap.start,
                                gap.end - 1, tp.topic, tp.partition, type(e).__name__)
                    held = None
                if held is False:
                    log.info("offsets %d..%d of %s/%d do not exist (read again, still absent; the broker has "
                             "no record there); committing past them", gap.start, gap.end - 1, tp.topic,
                             tp.partition)
                    accept = getattr(app.consumer, "accept_gap", None)  # stream/consumer.py
                    if accept is not None:
                        await accept(tp, gap.start, gap.end - 1)
                    continue
                gap = continuity.reopen(tp, gap.start, gap.end)
                log.warning("offsets %d..%d of %s/%d were skipped on every re-read, but the broker %s: reading "
                            "them again", gap.start, gap.end - 1, tp.topic, tp.partition,
                            "holds them" if held else "did not answer")
            self.metrics.offset_gaps.labels(tp.topic).inc()
            log.warning("the consumer skipped offsets %d..%d of %s/%d; reading them again",
                        gap.start, gap.end - 1, tp.topic, tp.partition)
            await app.consumer.seek(tp, gap.start)
