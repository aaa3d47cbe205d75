"""Agent: chat.turns → (DLQ | scores, signals, alert candidates + ClickHouse). The logic is in convmon.batch.

Offsets: each event's message is pinned (incref) while its batch is in flight and
released only after the batch is stored and its messages are acknowledged by Kafka. If the
worker stops or dies mid-batch, the pin keeps Faust from committing past it, the records are
read again on restart, and ClickHouse deduplicates on event_id. A batch is stored and published
while the next one is being scored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import faust

from ..batch import dlq_max_bytes
from ..stream.runner import micro_batches, off_loop, raw_records, send_all, store_all

log = logging.getLogger(__name__)


def register(app: faust.App) -> None:
    rt = app.convmon_runtime
    cfg = rt.settings.worker
    topics = {"dlq": app.dlq_topic, "scores": app.scores_topic, "signals": app.signals_topic,
              "alerts": app.alerts_topic}

    @app.agent(app.turns_topic, name="convmon.score_turns", concurrency=1)
    async def score_turns(stream):
        await rt.sink.open()
        stage = rt.metrics.stage_seconds

        async def finish(events, result) -> None:
            """Store, publish, then release the batch's offsets."""
            t1 = time.perf_counter()
            await store_all(rt.sink, result.rows())
            t2 = time.perf_counter()
            out = result.messages(rt.rules, rt.thresholds, rt.policy_thresholds, dlq_max_bytes(cfg.max_record_bytes))
            await send_all((topics[role], *m) for role, ms in out.items() for m in ms)
            stage.labels("clickhouse_insert").inc(t2 - t1)
            stage.labels("publish").inc(time.perf_counter() - t2)
            for ev in events:
                await stream.ack(ev)

        previous: asyncio.Future | None = None
        try:
            async for events in micro_batches(app, stream, cfg.batch_size, cfg.batch_within_s, rt.metrics):
                for ev in events:
                    ev.message.incref()  # pinned until finish() has stored and published the batch
                records = raw_records(events)
                t0 = time.perf_counter()
                result = await off_loop(rt.score_executor, rt.metrics, "validate_and_score", rt.processor.process,
                                        records)
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
