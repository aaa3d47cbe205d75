"""Agent: chat.turns → (DLQ | scores + ClickHouse). Thin wiring; the logic is in convmon.batch.

Offsets: each event's message is pinned (incref) while its batch is in flight and
released only after the batch is stored and its DLQ/score messages are acknowledged by
Kafka. If the worker stops or dies mid-batch, the pin keeps Faust from committing past it,
the records are read again on restart, and ClickHouse deduplicates on event_id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import faust

from ..alerting.rules import turn_alerts
from ..batch import RawRecord, dlq_max_bytes
from .alerts import alert_to_json
from .model_state import signal_record
from .rereads import Rereader

log = logging.getLogger(__name__)


async def publish(app: faust.App, rt, result) -> None:
    """DLQ records, score events, per-version signals and alert candidates; returns once Kafka has them all."""
    sent = []
    for d in result.dead:
        key, value, headers = d.message(dlq_max_bytes(rt.settings.worker.max_record_bytes))
        sent.append(await app.dlq_topic.send(key=key, value=value, headers=headers))
    for s in result.scored:
        sent.append(await app.scores_topic.send(key=s.turn.conversation_id.encode(), value=s.event_bytes()))
        key, value = signal_record(s, rt.thresholds)
        sent.append(await app.signals_topic.send(key=key, value=value))
    for alert in turn_alerts(rt.rules, result.scored, rt.thresholds, rt.policy_thresholds):
        sent.append(await app.alerts_topic.send(key=alert.dedup_key.encode(), value=alert_to_json(alert)))
    if sent:
        await asyncio.gather(*sent)


def register(app: faust.App) -> None:
    rt = app.convmon_runtime
    cfg = rt.settings.worker

    @app.agent(app.turns_topic, name="convmon.score_turns", concurrency=1)
    async def score_turns(stream):
        await rt.sink.open()
        loop = asyncio.get_running_loop()
        stage = rt.metrics.stage_seconds

        async def finish(events, result) -> None:
            """Store, publish, then release the batch's offsets — while the next batch is being scored."""
            t1 = time.perf_counter()
            await rt.sink.write(result.scored)
            await rt.sink.write([d.row() for d in result.dead], table="dead_letters")
            t2 = time.perf_counter()
            await publish(app, rt, result)
            stage.labels("clickhouse_insert").inc(t2 - t1)
            stage.labels("publish").inc(time.perf_counter() - t2)
            for ev in events:
                await stream.ack(ev)

        previous: asyncio.Future | None = None
        rereader = Rereader(app, rt.metrics)
        try:
            async for events in stream.take_events(cfg.batch_size, within=cfg.batch_within_s):
                for ev in events:
                    ev.message.incref()  # pinned until finish() has stored and published the batch
                await rereader.check(events)
                records = [RawRecord(ev.value, ev.key, ev.message.topic, ev.message.partition, ev.message.offset)
                           for ev in events]
                t0 = time.perf_counter()
                result = await loop.run_in_executor(rt.score_executor, rt.processor.process, records)
                stage.labels("validate_and_score").inc(time.perf_counter() - t0)
                rt.metrics.observe_batch(len(records), result, time.perf_counter() - t0)
                if result.dead:
                    log.warning("dead-lettered %d records to %s: %s", len(result.dead),
                                app.dlq_topic.get_topic_name(), dict(Counter(d.reason for d in result.dead)))
                if previous is not None:
                    await previous  # batches are stored and published in order
                previous = asyncio.ensure_future(finish(events, result))
                yield len(events)
        finally:
            if previous is not None and not previous.done():
                # Let the last batch finish on shutdown, within bounds: if it cannot (ClickHouse down), its
                # offsets stay uncommitted and it is read again on restart.
                try:
                    await asyncio.wait_for(asyncio.shield(previous), cfg.shutdown_timeout_s)
                except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                    log.warning("stopping with one batch not stored: it will be re-read on restart")

    app.score_turns = score_turns
