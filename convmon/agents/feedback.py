"""Agent: chat.feedback → labels (feedback/stage.py) → ClickHouse `feedback`; records that are not feedback
records go to the DLQ with their reason. The offsets of a batch are committed once its rows are stored."""

from __future__ import annotations

import faust

from ..batch import dlq_max_bytes
from ..feedback.contract import FeedbackDecoder
from ..feedback.stage import FeedbackStage
from ..privacy import Protector
from ..stream.runner import dead_letter, micro_batches, raw_records, store_all


def register(app: faust.App) -> None:
    rt = app.convmon.runtime
    settings = rt.settings
    stage = FeedbackStage(FeedbackDecoder.from_settings(settings), Protector.from_settings(settings).key)
    dlq_bytes = dlq_max_bytes(settings.worker.max_record_bytes)

    @app.agent(app.convmon.topics.feedback, name="convmon.feedback", concurrency=1)
    async def handle_feedback(stream):
        cfg = settings.worker
        async for events in micro_batches(app, stream, cfg.batch_size, cfg.batch_within_s, rt.metrics):
            out = stage.process(raw_records(events))
            await dead_letter(app.convmon.topics.dlq, out.dead, dlq_bytes, rt.metrics, "feedback records")
            await store_all(rt.sink, stage.rows(out))
            yield len(out.rows)

    app.convmon.agents["handle_feedback"] = handle_feedback
