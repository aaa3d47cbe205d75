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
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    topics = settings.topics
    app.turns_topic = app.topic(topics.turns, partitions=topics.partitions, **raw)
    app.dlq_topic = app.topic(topics.dlq, partitions=topics.partitions, **raw)
    app.scores_topic = app.topic(topics.scores, partitions=topics.partitions, **raw)
    app.alerts_topic = app.topic(topics.alerts, partitions=topics.partitions, **raw)
    app.signals_topic = app.topic(topics.signals, partitions=topics.partitions, **raw)
    app.outbox_topics = {name: app.topic(t, partitions=topics.partitions, **raw)  # written here, read by delivery
                         for name, t in outbox.topic_names(topics.outbox_prefix, settings.alerting.channels).items()}
    app.convmon_runtime = runtime or build_runtime(settings)

    from . import alerts, delivery, model_state, turns
    from ..stream import watchdog  # each registers itself on the app

    turns.register(app)
    model_state.register(app)
    alerts.register(app)
    delivery.register(app)
    watchdog.register(app)
    return app
