"""The Faust app: configuration from Settings, topics, and the runtime the agents share."""

from __future__ import annotations

import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

import faust
from faust.types.auth import AuthProtocol

from ..batch import BatchProcessor, dlq_max_bytes
from ..config import Settings
from ..ingest import TurnDecoder
from ..privacy import Protector
from ..scoring.pipeline import ScoringPipeline
from ..alerting import outbox
from .consumer import App
from ..alerting.rules import RuleSet
from ..metrics import Metrics
from ..scoring.registry import build_scorers
from ..scoring.suite import SuiteScorer
from ..store.sink import StoreSink


def _credentials(settings: Settings):
    k = settings.kafka
    proto = k.security_protocol.upper()
    if proto == "PLAINTEXT":
        return None
    ctx = ssl.create_default_context(cafile=str(k.ssl_cafile) if k.ssl_cafile else None)
    if proto == "SSL":
        return faust.SSLCredentials(ctx)
    if proto in ("SASL_PLAINTEXT", "SASL_SSL"):
        mech = (k.sasl_mechanism or "PLAIN").upper()
        password = k.sasl_password.get_secret_value() if k.sasl_password else ""
        sasl_proto = AuthProtocol.SASL_SSL if proto == "SASL_SSL" else AuthProtocol.SASL_PLAINTEXT
        if mech.startswith("SCRAM"):
            return faust.SASLCredentials(
                username=k.sasl_username, password=password, ssl_context=ctx if proto == "SASL_SSL" else None,
                mechanism=mech, security_protocol=sasl_proto,
            )
        return faust.SASLCredentials(
            username=k.sasl_username, password=password,
            ssl_context=ctx if proto == "SASL_SSL" else None, security_protocol=sasl_proto,
        )
    raise ValueError(f"kafka.security_protocol {k.security_protocol!r} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")


@dataclass
class Runtime:
    """What the agents need, built once per worker process."""

    settings: Settings
    processor: BatchProcessor
    sink: StoreSink
    score_executor: ThreadPoolExecutor
    rules: RuleSet
    thresholds: dict
    policy_thresholds: dict
    metrics: Metrics


def build_runtime(settings: Settings, sink: Optional[StoreSink] = None) -> Runtime:
    scorers = build_scorers(settings)
    pipeline = ScoringPipeline(scorers)
    processor = BatchProcessor(TurnDecoder.from_settings(settings.worker), pipeline, Protector.from_settings(settings))
    suite = next((s for s in scorers if isinstance(s, SuiteScorer)), None)
    return Runtime(
        rules=RuleSet.load(settings.alerting.rules_file),
        metrics=Metrics(),
        thresholds=suite.model.thresholds if suite else {},
        policy_thresholds=suite.model.policy_thresholds if suite else {},
        settings=settings,
        processor=processor,
        sink=sink if sink is not None else StoreSink.from_settings(settings),
        score_executor=ThreadPoolExecutor(settings.worker.scoring_threads, thread_name_prefix="convmon-score"),
    )


def create_app(settings: Settings, runtime: Optional[Runtime] = None) -> faust.App:
    """A configured Faust app with convmon's agents registered on it."""
    (settings.var / "faust").mkdir(parents=True, exist_ok=True)
    app = App(  # faust.App whose commits never pass an unprocessed record
        settings.worker.app_id,
        broker=[f"kafka://{h.strip()}" for h in settings.kafka.bootstrap.split(",")],
        broker_credentials=_credentials(settings),
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

    from . import alerts, delivery, dynamics, model_state, turns, watchdog  # each registers itself on the app

    turns.register(app)
    dynamics.register(app)
    model_state.register(app)
    alerts.register(app)
    delivery.register(app)
    watchdog.register(app)
    return app
