"""Create convmon's topics when they are missing, before the Faust worker subscribes.

Faust subscribes to an agent's source topic without creating it (and ignores it while it
is missing), so the worker creates chat.turns, the DLQ, chat.scores, chat.alerts, chat.feedback and the alert
channels' outbox topics first, and checks that the conversations table is partitioned like chat.turns.
"""

from __future__ import annotations

import logging
import time

from ..alerting import outbox
from ..batch import dlq_max_bytes
from ..config import Settings
from ..kafka_clients import client_config

log = logging.getLogger(__name__)


# Faust tables (changelog-backed). Their changelog topics are created here with the source topics: left to
# Faust, a changelog created at start could be missing from the metadata when the agent first writes the
# table, and the agent crashed with PartitionsMismatch ("changelog topic has 0 partitions", seen in CI).
CONVERSATIONS_TABLE = "convmon-conversations"
INCIDENTS_TABLE = "convmon-incidents"


def changelog_topics(settings: Settings) -> list[str]:
    return [f"{settings.worker.app_id}-{t}-changelog" for t in (CONVERSATIONS_TABLE, INCIDENTS_TABLE)]


def topic_configs(settings: Settings, name: str) -> dict[str, str]:
    """Explicit per-topic settings for a topic the worker creates: retention (the DLQ's is short: it holds
    raw input) and, for the DLQ, a message size that fits any record the worker accepts plus its headers."""
    t = settings.topics
    if name in changelog_topics(settings):
        return {"cleanup.policy": "compact"}  # as Faust creates them: the latest state per key, kept
    hours = t.dlq_retention_hours if name == t.dlq else t.retention_hours
    out = {} if hours is None else {"retention.ms": str(int(hours * 3_600_000))}
    if name == t.dlq:
        out["max.message.bytes"] = str(dlq_max_bytes(settings.worker.max_record_bytes))
    return out


def partition_counts(described: list[dict]) -> dict[str, int]:
    """Topic → partition count, from kafka-python's describe_topics (which names a topic `name`)."""
    return {d["name"]: len(d.get("partitions") or []) for d in described if d.get("name")}


def check_copartitioned(settings: Settings, partitions: dict[str, int]) -> None:
    """The conversations table lives beside chat.turns (agents/turns.py): its changelog must have as many
    partitions as chat.turns, which may be a topic the chat backends created. Raises RuntimeError if not."""
    t = settings.topics
    changelog = changelog_topics(settings)[0]
    have, table = partitions.get(t.turns), partitions.get(changelog)
    if have and table and have != table:
        raise RuntimeError(
            f"{t.turns} has {have} partitions but {changelog} has {table}: the conversation state must be "
            f"partitioned like {t.turns}. Set CONVMON_TOPICS__PARTITIONS={have} (topics.partitions) for a new "
            f"deployment, or add partitions to {t.turns} to match; then delete {changelog} so the worker "
            "recreates it (conversation state starts afresh)."
        )


def _reachable(bootstrap: str, deadline: float) -> bool:
    """True once a bootstrap server accepts a TCP connection; says once that it is waiting."""
    import socket

    servers = [h.strip().rsplit(":", 1) for h in bootstrap.split(",") if h.strip()]
    said = False
    while True:
        for host, port in servers:
            try:
                socket.create_connection((host, int(port)), timeout=2).close()
                return True
            except (OSError, ValueError):
                pass
        if time.monotonic() >= deadline:
            return False
        if not said:
            log.warning("waiting for Kafka at %s (up to %.0f s)…", bootstrap, deadline - time.monotonic())
            said = True
        time.sleep(1)


def ensure_topics(settings: Settings, timeout_s: float = 60.0) -> list[str]:
    """Create the missing topics; returns the names created. Raises RuntimeError if Kafka is unreachable."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    t = settings.topics
    names = [t.turns, t.dlq, t.scores, t.alerts, t.signals, t.feedback,
             *outbox.topic_names(t.outbox_prefix, settings.alerting.channels).values(), *changelog_topics(settings)]
    deadline = time.monotonic() + timeout_s
    if not _reachable(settings.kafka.bootstrap, deadline):  # one line while waiting, not the client's retries
        raise RuntimeError(
            f"cannot reach Kafka at {settings.kafka.bootstrap} (nothing accepts connections there). Start the local "
            "broker with `convmon kafka up`, or set CONVMON_KAFKA_BOOTSTRAP to your cluster."
        )
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(**client_config(settings.kafka), client_id="convmon-admin")
            break
        except KafkaError as e:
            last = e
            time.sleep(1)
    else:
        raise RuntimeError(
            f"cannot reach Kafka at {settings.kafka.bootstrap} ({type(last).__name__}). Start the local broker "
            "with `convmon kafka up`, or set CONVMON_KAFKA_BOOTSTRAP to your cluster."
        )
    try:
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                admin.create_topics([NewTopic(n, num_partitions=t.partitions, replication_factor=t.replication_factor,
                                              topic_configs=topic_configs(settings, n)) for n in missing])
            except TopicAlreadyExistsError:  # another worker won the race
                pass
            log.info("created topics %s with %d partitions", missing, t.partitions)
        # Metadata can lag right after creation: wait until every topic has partitions.
        while time.monotonic() < deadline:
            described = admin.describe_topics(names)
            if all(d.get("partitions") for d in described):
                break
            time.sleep(0.2)
        check_copartitioned(settings, partition_counts(described))
        return missing
    finally:
        admin.close()
