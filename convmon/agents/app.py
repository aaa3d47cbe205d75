"""The Faust app: configuration from Settings, the topics, and convmon's agents registered on it."""

from __future__ import annotations

from typing import Optional

import faust

from ..alerting import outbox
from ..batch import dlq_max_bytes
from ..config import Settings
from ..kafka_clients import faust_credentials
from ..runtime import Runtime, build_runtime
from ..stream.consumer import App
from ..stream.wiring import Topics, Wiring


def create_app(settings: Settings, runtime: Optional[Runtime] = None) -> faust.App:
    """A configured Faust app with convmon's agents registered on it."""
    (settings.var / "faust").mkdir(parents=True, exist_ok=True)
    app = App(  # faust.App whose commits never pass an unprocessed record
        settings.worker.app_id,
        broker=[f"kafka://{h.strip()}" for h in settings.kafka.bootstrap.split(",")],
        broker_credentials=faust_credentials(settings.kafka),
        store="memory://",
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=dlq_max_bytes(settings.worker.max_record_bytes),  # a dead letter of any accepted size
        broker_commit_interval=1.0,
        broker_session_timeout=settings.worker.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.worker.session_timeout_s / 10),
        web_enabled=False,
        datadir=str(settings.var / "faust"),
        autodiscover=False,
    )
    t = settings.topics

    def topic(name: str):
        return app.topic(name, partitions=t.partitions, key_serializer="raw", value_serializer="raw")

    app.convmon = Wiring(
        runtime=runtime or build_runtime(settings),
        topics=Topics(turns=topic(t.turns), dlq=topic(t.dlq), scores=topic(t.scores), alerts=topic(t.alerts),
                      signals=topic(t.signals), feedback=topic(t.feedback),  # outboxes: written by the alerts agent, read by the delivery
                      outboxes={name: topic(n) for name, n in
                                outbox.topic_names(t.outbox_prefix, settings.alerting.channels).items()}),
    )

    from . import alerts, delivery, feedback, model_state, turns
    from ..stream import watchdog  # each registers itself on the app

    turns.register(app)
    model_state.register(app)
    alerts.register(app)
    delivery.register(app)
    feedback.register(app)
    watchdog.register(app)
    return app
