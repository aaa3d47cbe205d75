"""What every agent repeats: micro-batches with offset re-reads, the hop to a worker thread, sending records
and waiting until Kafka has them, storing rows by table."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator, Iterable, Mapping, Sequence

from ..batch import RawRecord
from .rereads import Rereader

Message = tuple  # (Faust topic, key bytes, value bytes[, headers])

log = logging.getLogger(__name__)


async def micro_batches(app, stream, size: int, within: float, metrics) -> AsyncIterator[list]:
    """The stream's events in batches of up to `size`, waiting at most `within` s; skipped offsets are re-read
    (stream/rereads.py). A batch's offsets are acknowledged when the agent asks for the next one."""
    rereader = Rereader(app, metrics)
    async for events in stream.take_events(size, within=within):
        await rereader.check(events)
        yield events


def raw_records(events) -> list[RawRecord]:
    """The events' records with where they were read (for dead letters and idempotent writes)."""
    return [RawRecord(ev.value, ev.key, ev.message.topic, ev.message.partition, ev.message.offset) for ev in events]


async def off_loop_timed(executor, metrics, label: str, fn, *args) -> tuple:
    """(`fn(*args)`, the seconds it took), run on `executor`'s thread (model inference, state) and timed there as
    convmon_stage_seconds{label}: from its start on the thread, not from the submit, so that a call queued behind
    another one is not counted twice."""

    def run():
        t0 = time.perf_counter()
        try:
            out = fn(*args)
        finally:
            seconds = time.perf_counter() - t0
            metrics.stage_seconds.labels(label).inc(seconds)
        return out, seconds

    return await asyncio.get_running_loop().run_in_executor(executor, run)


async def off_loop(executor, metrics, label: str, fn, *args):
    """`fn(*args)` on `executor`'s thread, timed there (off_loop_timed)."""
    return (await off_loop_timed(executor, metrics, label, fn, *args))[0]


async def send_all(messages: Iterable[Message]) -> None:
    """Send every (topic, key, value[, headers]) in order; returns once Kafka has acknowledged them all."""
    sent = [await m[0].send(key=m[1], value=m[2], headers=m[3] if len(m) > 3 else None) for m in messages]
    if sent:
        await asyncio.gather(*sent)


async def dead_letter(dlq_topic, dead: Sequence, max_bytes: int, metrics, what: str) -> None:
    """Send the records of an internal topic that convmon did not write (batch.DeadLetter) to the DLQ, each
    with its reason, and count them: the stage goes on without them. `what` names them in the one log line."""
    if not dead:
        return
    log.warning("dead-lettered %d records that are not %s", len(dead), what)
    for d in dead:
        metrics.dlq.labels(d.reason).inc()
    await send_all((dlq_topic, *d.message(max_bytes)) for d in dead)


async def store_all(sink, rows: Mapping[str, Sequence]) -> None:
    """Write each table's rows (retried until ClickHouse accepts them: see store/sink.py), in the given order."""
    for table, batch in rows.items():
        if batch:
            await sink.write(batch, table=table)
