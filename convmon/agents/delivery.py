"""Wiring: the outbox delivery (alerting/outbox_delivery.py) and the channel-backlog watch, on the Faust app.

The delivery reads each alert channel's outbox topic with its own consumer group
(`<app_id>.deliver`) and commits a record only once its channel has accepted the page, so an
outage of any length and a restart lose nothing (see that module for why this is not a Faust
agent). A timer watches each channel's backlog (`convmon_channel_pending`,
`convmon_channel_oldest_pending_seconds`) and raises a `channel_backlog` alert, sent through the
other channels, when the oldest waiting page is older than `alerting.backlog_alert_after_s`; it
resolves once the backlog has cleared.
"""

from __future__ import annotations

import logging
import time

import faust

from ..alerting import outbox
from ..alerting.backlog import BacklogWatch
from ..alerting.channels import build_channels
from ..alerting.delivery import Dispatcher
from ..alerting.hops import AlertHops
from ..alerting.outbox_delivery import OutboxDelivery
from .. import wire
from ..kafka_clients import aiokafka_config

log = logging.getLogger(__name__)


def register(app: faust.App) -> None:
    rt = app.convmon.runtime
    settings = rt.settings
    channels = build_channels(settings.alerting.channels, settings.secrets())
    dispatchers = {c.name: Dispatcher([c], queue_size=settings.alerting.max_pending) for c in channels}
    app.convmon.dispatchers.update(dispatchers)
    watch = BacklogWatch(settings.alerting.backlog_alert_after_s)
    if not channels:
        return
    topics = outbox.topic_names(settings.topics.outbox_prefix, settings.alerting.channels)

    def consumer(listener):
        from aiokafka import AIOKafkaConsumer

        c = AIOKafkaConsumer(group_id=f"{settings.worker.app_id}.deliver", enable_auto_commit=False,
                             auto_offset_reset="earliest", session_timeout_ms=int(settings.worker.session_timeout_s * 1000),
                             client_id=f"{settings.worker.app_id}-deliver", **aiokafka_config(settings.kafka))
        c.subscribe(list(topics.values()), listener=listener)
        return c

    holder: dict = {}

    @app.task
    async def deliver_outbox():
        holder["delivery"] = d = OutboxDelivery(
            consumer, topics, dispatchers, on_unreadable=lambda ch: rt.metrics.outbox_unreadable.labels(ch).inc(),
            hops=AlertHops(rt.metrics.observe_hop))
        await d.run()

    @app.on_before_shutdown.connect
    async def _stop_delivery(app, **kwargs):  # pragma: no cover - exercised by the e2e tests
        # What is not delivered within the drain stays uncommitted in the outbox and is delivered after a restart.
        if "delivery" in holder:
            await holder["delivery"].stop(drain_timeout_s=5.0)

    @app.timer(settings.alerting.sweep_interval_s)
    async def watch_backlog():
        stats = {n: s for d in dispatchers.values() for n, s in d.stats().items()}
        for alert in watch.check(stats, time.time()):
            log.warning("%s", alert.summary)
            key, value = wire.encode_alert(alert)
            await app.convmon.topics.alerts.send(key=key, value=value)
