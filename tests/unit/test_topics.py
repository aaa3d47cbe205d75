"""Topics the worker creates before it subscribes, with explicit settings."""

import os

import pytest

from convmon.stream.topics import changelog_topics, topic_configs
from convmon.config import Settings


@pytest.fixture(autouse=True)
def _no_convmon_environment(monkeypatch):
    """Each test builds its own Settings: the developer's CONVMON_* variables (`make newcomer` moves the broker
    off 9092 with CONVMON_KAFKA_BOOTSTRAP, which outranks the settings given here) must not leak into them."""
    for k in list(os.environ):
        if k.startswith("CONVMON_"):
            monkeypatch.delenv(k)


def test_the_tables_changelogs_are_created_up_front_compacted_and_the_rest_with_retention():
    """A changelog left to Faust could be missing from the metadata when the agent first wrote its table:
    the alerts agent crashed with PartitionsMismatch (CI, 2026-11-30)."""
    s = Settings(worker={"app_id": "cm"}, alerting={"channels": [{"type": "slack", "name": "oncall",
                                                                   "url_env": "X"}]})
    assert changelog_topics(s) == ["cm-convmon-conversations-changelog", "cm-convmon-incidents-changelog"]
    for t in changelog_topics(s):
        assert topic_configs(s, t) == {"cleanup.policy": "compact"}
    assert topic_configs(s, "chat.turns") == {"retention.ms": str(168 * 3_600_000)}
    assert topic_configs(s, "convmon.outbox.oncall") == {"retention.ms": str(168 * 3_600_000)}
    dlq = topic_configs(s, "chat.turns.dlq")
    assert dlq["retention.ms"] == str(72 * 3_600_000) and int(dlq["max.message.bytes"]) > 1_048_576


def test_an_unreachable_broker_is_said_once_early_then_a_clear_error(caplog):
    """Issue 12: a worker pointed at nothing printed ~79 lines of client retries over 62 s before its message."""
    import logging
    import socket

    import pytest

    from convmon.stream.topics import ensure_topics

    # A port held bound but not listening for the whole test: refused, and never handed out as a client's
    # source port. Released before the call, an ephemeral port could connect to itself (TCP self-connect) and
    # let kafka-python in with its own "Connection closed" warnings (a fresh-clone CI run, 2026-12-07).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        caplog.set_level(logging.INFO)
        with pytest.raises(RuntimeError, match="cannot reach Kafka at 127.0.0.1:.*convmon kafka up"):
            ensure_topics(Settings(kafka_bootstrap=f"127.0.0.1:{port}"), timeout_s=2.5)
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 1 and "waiting for Kafka" in lines[0].getMessage()


def test_the_outbox_consumer_connects_with_the_workers_kafka_settings():
    from convmon.kafka_clients import aiokafka_config, client_config

    s = Settings(kafka={"bootstrap": "k1:9093,k2:9093", "security_protocol": "sasl_ssl", "sasl_mechanism": "plain",
                        "sasl_username": "u", "sasl_password": "p"})
    a = aiokafka_config(s.kafka)
    assert a["bootstrap_servers"] == ["k1:9093", "k2:9093"] and a["security_protocol"] == "SASL_SSL"
    assert (a["sasl_mechanism"], a["sasl_plain_username"], a["sasl_plain_password"]) == ("PLAIN", "u", "p")
    assert "ssl_context" in a and "ssl_cafile" not in a
    assert "ssl_context" not in aiokafka_config(Settings().kafka)
    assert client_config(Settings().kafka)["security_protocol"] == "PLAINTEXT"


def test_a_chat_turns_topic_partitioned_unlike_the_conversation_state_is_a_clear_error():
    """Conversation dynamics live beside chat.turns (the table's changelog partition is the turn's): a chat.turns
    created by the backends with another partition count would crash the worker at its first table write."""
    from convmon.stream.topics import check_copartitioned, partition_counts

    s = Settings(worker={"app_id": "cm"})
    changelog = changelog_topics(s)[0]
    check_copartitioned(s, {"chat.turns": 4, changelog: 4, "chat.alerts": 4})
    described = [{"error_code": 0, "name": "chat.turns", "partitions": [{"partition": i} for i in range(6)]},
                 {"error_code": 0, "name": changelog, "partitions": [{"partition": i} for i in range(4)]}]
    assert partition_counts(described) == {"chat.turns": 6, changelog: 4}  # as kafka-python describes topics
    with pytest.raises(RuntimeError, match="chat.turns has 6 partitions but cm-convmon-conversations-changelog has 4"
                                           ".*CONVMON_TOPICS__PARTITIONS=6"):
        check_copartitioned(s, {"chat.turns": 6, changelog: 4})
