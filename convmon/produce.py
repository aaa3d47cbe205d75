"""Producer side: publish chat turns to Kafka in the contract's shape.

For chat backends written in Python (kafka-python, the client most of them use):

    from convmon.produce import TurnPublisher
    with TurnPublisher("broker:9092") as pub:
        pub.publish({"conversation_id": "c-42", "turn_index": 0, "role": "user", "text": "hi",
                     "app": "support-bot",
                     "model": {"provider": "openai", "name": "gpt-4o-mini", "version": "2024-07-18"}})

`publish` fills `event_id` (a new UUID) and `ts` (now) when missing, writing both into the
caller's dict, so that publishing the same dict again after an error re-sends the same turn
(counted once: event_id is the idempotency key). It uses conversation_id as the key, and
validates locally first so that a malformed turn fails in the caller, not in the monitor. Other languages: produce the same JSON with any Kafka client (see README).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from pydantic import ValidationError

from .contract import ChatTurn, format_ts


class ContractError(ValueError):
    pass


def complete(turn: dict[str, Any]) -> dict[str, Any]:
    """Fill event_id/ts where missing, in `turn` itself, and check it against the contract.

    In place on purpose: a caller that retries with the same dict sends the same event_id and ts,
    so the retry is deduplicated instead of stored as a second turn."""
    turn.setdefault("event_id", str(uuid.uuid4()))
    turn.setdefault("ts", format_ts(datetime.now(timezone.utc)))
    out = dict(turn)
    try:
        ChatTurn.model_validate(out)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or '(root)'}: {err['msg']}"
                             for err in e.errors(include_input=False, include_url=False)[:5])
        raise ContractError(f"turn does not match the chat-turn contract (schemas/chat_turn.schema.json): "
                            f"{problems}") from None
    return out


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as e:
                    raise ContractError(f"{path}:{lineno}: not JSON ({e.msg})") from None


def encode(turn: dict[str, Any]) -> bytes:
    return json.dumps(turn, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class TurnPublisher:
    def __init__(self, bootstrap: str, topic: str = "chat.turns", **producer_config):
        """`producer_config`: more kafka-python KafkaProducer arguments (security: see from_settings)."""
        from kafka import KafkaProducer  # imported lazily: the worker does not need it

        self.topic = topic
        self._producer = KafkaProducer(**{"bootstrap_servers": bootstrap.split(","), "acks": "all", "linger_ms": 5,
                                          **producer_config})

    @classmethod
    def from_settings(cls, kafka, topic: str) -> "TurnPublisher":
        """A publisher that reaches the cluster the worker reaches: address, TLS and SASL from `Settings.kafka`."""
        from .kafka_clients import client_config

        return cls(kafka.bootstrap, topic, **client_config(kafka))

    def publish(self, turn: dict[str, Any]):
        """Complete, validate and send one turn; returns kafka-python's future."""
        full = complete(turn)
        return self._producer.send(self.topic, key=full["conversation_id"].encode("utf-8"), value=encode(full))

    def publish_raw(self, value: bytes, key: Optional[bytes] = None):
        """Send bytes as they are, unvalidated (replaying dead letters, tests)."""
        return self._producer.send(self.topic, key=key, value=value)

    def publish_many(self, turns: Iterable[dict[str, Any]], rate: Optional[float] = None, progress=None) -> int:
        """Publish all turns, at most `rate` per second when given; flushes at the end."""
        n = 0
        start = time.monotonic()
        for turn in turns:
            self.publish(turn)
            n += 1
            if rate:
                ahead = n / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
            if progress is not None:
                progress(n)
        self.flush()
        return n

    def flush(self, timeout: float = 30.0) -> None:
        self._producer.flush(timeout)

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()

    def __enter__(self) -> "TurnPublisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
