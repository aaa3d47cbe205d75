"""Prometheus /metrics for the worker (prometheus-client): throughput, latency, lag, DLQ, alerts, channels.

Served on 127.0.0.1:<worker.metrics_port> when the port is set (0 = off).
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from .alerting.hops import BUCKETS as HOP_BUCKETS, HOPS
from .state.codec import REASONS as SNAPSHOT_REJECT_REASONS

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.turns = Counter("convmon_turns_total", "Chat turns processed", ["outcome"], registry=r)
        self.dlq = Counter("convmon_dlq_total", "Records sent to the dead-letter topic", ["reason"], registry=r)
        self.scoring_seconds = Histogram(
            "convmon_scoring_seconds_per_turn", "Scoring time per turn (micro-batch time / turns)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5), registry=r)
        self.batch_turns = Histogram("convmon_batch_turns", "Turns per micro-batch",
                                     buckets=(1, 8, 32, 64, 128, 256, 512, 1024), registry=r)
        self.stage_seconds = Counter("convmon_stage_seconds_total", "Wall time spent per pipeline stage",
                                     ["stage"], registry=r)
        self.state_turns = Counter(
            "convmon_state_turns_total",
            "Signals taken by the per-model-version state: applied, or skipped as already applied (redelivered)",
            ["outcome"], registry=r)
        self.state_keys = Gauge("convmon_state_keys", "Model versions whose state is in this worker's memory",
                                registry=r)
        self.alerts = Counter("convmon_alerts_total", "Alert candidates by kind and what became of them",
                              ["kind", "delivery"], registry=r)
        self.offset_gaps = Counter("convmon_offset_gaps_total",
                                   "Records the consumer skipped and convmon re-read (see convmon/stream/offsets.py)",
                                   ["topic"], registry=r)
        self.snapshot_rejected = Counter(
            "convmon_snapshot_rejected_total",
            "Stored model-state snapshots skipped at restore (not valid versioned JSON; never executed)",
            ["reason"], registry=r)
        self.partition_stalls = Counter("convmon_partition_stalled_total",
                                        "Partitions found stalled (records waiting, position not moving)",
                                        ["topic", "partition"], registry=r)
        self.partitions_stalled = Gauge("convmon_partitions_stalled", "Partitions stalled right now", registry=r)
        self.group_rejoins = Counter("convmon_group_rejoins_total",
                                     "Consumer-group rejoins the stall watchdog asked for (its last resort, budgeted)",
                                     registry=r)
        self.outbox_unreadable = Counter("convmon_outbox_unreadable_total",
                                         "Outbox records that are not a notification this version reads (skipped)",
                                         ["channel"], registry=r)
        self.alert_hop_seconds = Histogram(
            "convmon_alert_hop_seconds",
            "A page's latency per hop of the alert path, from Kafka record timestamps (alerting/hops.py): score, "
            "alerts_topic, decide, outbox_topic, deliver", ["hop"], buckets=HOP_BUCKETS, registry=r)
        for hop in HOPS:
            self.alert_hop_seconds.labels(hop)
        for reason in SNAPSHOT_REJECT_REASONS:  # every reason exported from 0, so rate()/increase() see the first one
            self.snapshot_rejected.labels(reason)
        self._app = None

    def observe_batch(self, n: int, result, seconds: float) -> None:
        self.batch_turns.observe(n)
        self.scoring_seconds.observe(seconds / max(n, 1))
        self.turns.labels("scored").inc(len(result.scored))
        self.turns.labels("dead").inc(len(result.dead))
        for d in result.dead:
            self.dlq.labels(d.reason).inc()

    def observe_hop(self, hop: str, seconds: float) -> None:
        """One alert record's or page's time on `hop` (alerting/hops.AlertHops observes through this)."""
        self.alert_hop_seconds.labels(hop).observe(seconds)

    def watch(self, app) -> None:
        """Add collectors that read live state: consumer lag and channel delivery stats."""
        self._app = app
        self.registry.register(_LiveCollector(app))

    def serve(self, port: int) -> None:
        start_http_server(port, addr="127.0.0.1", registry=self.registry)
        log.info("metrics on http://127.0.0.1:%d/metrics", port)


class _LiveCollector:
    def __init__(self, app):
        self.app = app

    def collect(self):
        lag = GaugeMetricFamily("convmon_consumer_lag", "Records behind the partition end", labels=["topic", "partition"])
        try:
            consumer = self.app.consumer
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                read = consumer._read_offset.get(tp)  # noqa: SLF001 - Faust keeps the read position here
                if high is not None:
                    lag.add_metric([tp.topic, str(tp.partition)], max(0, high - (read + 1 if read is not None else 0)))
        except Exception:  # not started yet / rebalancing
            pass
        yield lag
        sink = self.app.convmon.runtime.sink
        g = GaugeMetricFamily("convmon_store_consecutive_failures", "ClickHouse write attempts failing right now")
        g.add_metric([], float(sink.failures))
        yield g
        g = GaugeMetricFamily("convmon_store_rows_written", "Rows written to ClickHouse since start")
        g.add_metric([], float(sink.rows_written))
        yield g
        dispatchers = self.app.convmon.dispatchers
        stats = {n: s for d in dispatchers.values() for n, s in d.stats().items()}
        for name, metric, help_ in (
                ("delivered", "convmon_channel_delivered", "Notifications delivered"),
                ("failed_attempts", "convmon_channel_failed_attempts", "Failed delivery attempts"),
                ("pending", "convmon_channel_pending", "Notifications read from the outbox and not yet delivered"),
                ("oldest_s", "convmon_channel_oldest_pending_seconds", "Age of the oldest undelivered notification"),
                ("failed", "convmon_channel_failed", "Notifications given up (not retryable)")):
            g = GaugeMetricFamily(metric, help_, labels=["channel"])
            for ch, st in stats.items():
                g.add_metric([ch], float(st.get(name, 0) or 0))
            yield g
