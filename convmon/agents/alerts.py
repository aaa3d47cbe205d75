"""Agent: chat.alerts → incidents (alerting/stage.py) → the channels' outbox topics + ClickHouse `alerts`.

chat.alerts is keyed by dedup_key, so one incident's alerts meet in one partition and its
state lives in the changelog-backed table `incidents`: a restarted worker resumes it and a
re-processed alert (same alert_id) pages nobody twice. Kafka has every decided notification on
its channel's outbox topic before the incident state changes and before the alert's offset commits;
agents/delivery.py delivers it.
"""

from __future__ import annotations

import time
from collections import Counter

import faust

from ..batch import dlq_max_bytes
from ..alerting.hops import AlertHops, event_time
from ..alerting.stage import AlertStage
from ..stream.current import processing
from ..stream.runner import dead_letter, micro_batches, raw_records, send_all
from ..stream.topics import INCIDENTS_TABLE


def register(app: faust.App) -> None:
    rt = app.convmon.runtime
    settings = rt.settings
    outboxes = app.convmon.topics.outboxes  # channel name → its outbox topic (agents/delivery.py)
    stage = AlertStage(rt.rules, list(outboxes), settings.alerting.incident_retention_s)
    incidents = app.Table(INCIDENTS_TABLE, partitions=settings.topics.partitions, key_type=str)
    dlq_bytes = dlq_max_bytes(settings.worker.max_record_bytes)
    hops = AlertHops(rt.metrics.observe_hop)

    @app.agent(app.convmon.topics.alerts, name="convmon.alerts", concurrency=1)
    async def handle_alerts(stream):
        cfg = settings.worker
        # a short window: an alert waits at most 50 ms for others to share its insert
        async for events in micro_batches(app, stream, cfg.batch_size, min(cfg.batch_within_s, 0.05), rt.metrics):
            taken = time.time()
            out = stage.process(raw_records(events), incidents.get, taken)
            # not alert records (a hostile or broken producer): dead-lettered, alerting goes on
            await dead_letter(app.convmon.topics.dlq, out.dead, dlq_bytes, rt.metrics, "alert records")
            await send_all((outboxes[name], key, body) for name, key, body in out.outbox)  # Kafka has every page…
            hops.decided((event_time(events[i]) for i in out.pages), taken, time.time())
            for i, key, state in out.changes:  # …before any incident records it as notified
                with processing(events[i]):  # the incidents changelog record goes to this event's partition
                    if state is not None:
                        incidents[key] = state
                    elif key in incidents:
                        del incidents[key]
                stage.written(key, state)
            await rt.sink.write(out.rows, table="alerts")
            by_delivery: Counter = Counter()
            for (kind, delivery), n in out.decisions.items():
                rt.metrics.alerts.labels(kind, delivery).inc(n)
                by_delivery[delivery] += n
            yield dict(by_delivery)  # the batch's offsets are acknowledged once the agent asks for the next one

    @app.timer(settings.alerting.sweep_interval_s)
    async def sweep_incidents():
        records = stage.sweep(lambda: list(incidents.items()), incidents.get, app.consumer_generation_id, time.time())
        for key, value in records:
            await app.convmon.topics.alerts.send(key=key, value=value)

    app.convmon.agents["handle_alerts"] = handle_alerts
    app.convmon.tables["incidents"] = incidents
