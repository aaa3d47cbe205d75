"""Typed records on convmon's internal topics, next to the input contract (contract.py).

* `Signal`: what the per-model-version state needs of one scored turn. On convmon.signals one record
  carries the signals of one app|model|version|role key from one scored batch (`encode_signals`,
  `decode_signals`; schemas/signal.schema.json), so a batch costs a message per model version, not per turn.
* alert records on chat.alerts: an `Alert` (alerting/model.py) or a `ForgetIncident` control record,
  keyed by the incident's dedup key (schemas/alert.schema.json).

Every stage that writes or reads these topics goes through this module, so a field has one name
from the scorer to the table; tests/unit/test_wire.py checks each record against its schema.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Union

import numpy as np

from .alerting.model import KINDS, Alert

SIGNAL_VERSION = 2  # 1: one signal per record (still read)
EMBEDDING_DIM = 384  # the drift embedding: mean-pooled MiniLM hidden states (scoring/suite.py)
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Signal:
    """What the per-model-version state needs of one scored turn."""

    key: tuple[str, str, str, str]  # app, model name, model version, role
    ts: float  # event time, seconds since the epoch
    event_id: str
    toxicity: Optional[float]
    sentiment: Optional[float]
    jailbreak: Optional[float]
    toxic: Optional[bool]  # the suite's toxicity_hit: its one 'toxic' decision (also read by alerts); None: not decided
    jailbreak_hit: Optional[bool]  # None: not decided (assistant and system turns, unsupported languages)
    policy_hit: bool
    pii: bool
    embedding: Optional[np.ndarray] = None  # float16 on the wire
    unsupported_language: bool = False  # a language the suite does not judge (scores kept, no decision)
    partition: Optional[int] = None  # where the record was read (not on the wire)
    offset: Optional[int] = None

    @classmethod
    def from_scored(cls, scored) -> "Signal":
        """The scorers' own hit decisions (scoring/fields.py ScoreField.hit), never a threshold applied again."""
        t, f = scored.turn, scored.scores
        emb = scored.extras.get("embedding")
        return cls(
            key=(t.app, t.model.name, t.model.version, t.role), ts=t.timestamp.timestamp(), event_id=t.event_id,
            toxicity=f.get("toxicity"), sentiment=f.get("sentiment"), jailbreak=f.get("jailbreak"),
            toxic=_decision(f.get("toxicity_hit")), jailbreak_hit=_decision(f.get("jailbreak_hit")),
            policy_hit=bool(f.get("policy_hits")), pii=bool(f.get("pii")),
            unsupported_language=f.get("language_supported") is False,
            embedding=None if emb is None else np.asarray(emb, np.float16),
        )

    def to_dict(self) -> dict:
        """One entry of a record's `signals` (the key is the record's)."""
        emb = None if self.embedding is None else base64.b64encode(
            np.asarray(self.embedding, np.float16).tobytes()).decode()
        return {"ts": self.ts, "event_id": self.event_id,
                "toxicity": self.toxicity, "sentiment": self.sentiment, "jailbreak": self.jailbreak,
                "toxic": self.toxic, "jailbreak_hit": self.jailbreak_hit, "policy_hit": self.policy_hit,
                "pii": self.pii, "embedding": emb, "unsupported_language": self.unsupported_language}

    @classmethod
    def from_dict(cls, key, d: dict, partition: Optional[int] = None, offset: Optional[int] = None) -> "Signal":
        emb = d.get("embedding")
        return cls(
            key=tuple(key), ts=float(d["ts"]), event_id=d["event_id"], toxicity=d["toxicity"],
            sentiment=d["sentiment"], jailbreak=d["jailbreak"], toxic=_decision(d["toxic"]),
            jailbreak_hit=_decision(d["jailbreak_hit"]), policy_hit=bool(d["policy_hit"]), pii=bool(d["pii"]),
            unsupported_language=bool(d.get("unsupported_language", False)),
            embedding=None if not emb else np.frombuffer(base64.b64decode(emb), dtype=np.float16),
            partition=partition, offset=offset,
        )

    @classmethod
    def decode(cls, raw: bytes, partition: Optional[int] = None, offset: Optional[int] = None) -> "Signal":
        """A version-1 record (one signal), as earlier releases wrote them; decode_signals reads every version."""
        d = json.loads(raw)
        if "k" in d:  # the unversioned layout of earlier releases, still on the topic after an upgrade
            d = {"key": d["k"], "ts": d["ts"], "event_id": d.get("id"), "toxicity": d["tox"], "sentiment": d["sent"],
                 "jailbreak": d["jb"], "toxic": d["tox_hit"], "jailbreak_hit": d["jb_hit"],
                 "policy_hit": d["pol_hit"], "pii": d["pii"], "embedding": d.get("emb")}
        return cls.from_dict(d["key"], d, partition, offset)


def _decision(value) -> Optional[bool]:
    """A hit decision as the scorer made it: True, False, or None (not decided)."""
    return None if value is None else bool(value)


def encode_signals(signals: list[Signal]) -> list[tuple[bytes, bytes]]:
    """(Kafka key, value) records: one per key, holding that key's signals in batch order."""
    by_key: dict[tuple, list[Signal]] = {}
    for s in signals:
        by_key.setdefault(s.key, []).append(s)
    return [("|".join(k).encode(), json.dumps({"v": SIGNAL_VERSION, "key": list(k),
                                              "signals": [s.to_dict() for s in group]}).encode())
            for k, group in by_key.items()]


def decode_signals(raw: bytes, partition: Optional[int] = None, offset: Optional[int] = None) -> list[Signal]:
    """Every signal in a record, each with the record's partition and offset; reads version 1 too. Raises
    InvalidRecord when the record is not one convmon writes: the per-model-version state must never apply
    half a record or a value it cannot hold (a producer on convmon.signals is not trusted)."""
    try:
        d = json.loads(raw)
        if not isinstance(d, dict):
            raise InvalidRecord("not a JSON object")
        out = ([Signal.from_dict(d["key"], e, partition, offset) for e in d["signals"]] if d.get("v") == SIGNAL_VERSION
               else [Signal.decode(raw, partition, offset)])
    except InvalidRecord:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # binascii.Error is a ValueError
        raise InvalidRecord(f"not a signal record ({type(e).__name__})") from None
    if not out:
        raise InvalidRecord("no signals")
    for s in out:
        _check_signal(s)
    return out


def _check_signal(s: Signal) -> None:
    if len(s.key) != 4 or not all(isinstance(k, str) for k in s.key):
        raise InvalidRecord("key is not four strings")
    if not math.isfinite(s.ts) or not isinstance(s.event_id, str) or not s.event_id:
        raise InvalidRecord("bad ts or event_id")
    for name, lo in (("toxicity", 0.0), ("jailbreak", 0.0), ("sentiment", -1.0)):
        v = getattr(s, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= 1.0):
            raise InvalidRecord(f"{name} is not a score")
    if s.embedding is not None and (s.embedding.shape != (EMBEDDING_DIM,) or not np.isfinite(s.embedding).all()):
        raise InvalidRecord(f"embedding is not {EMBEDDING_DIM} finite float16 values")


@dataclass(frozen=True)
class ForgetIncident:
    """Control record on chat.alerts: forget this resolved incident. The sweep decides and the alerts stage
    deletes, so the incidents table changes only inside the stream, in the key's own changelog partition."""

    dedup_key: str
    resolved_at: float

    def encode(self) -> tuple[bytes, bytes]:
        value = {"control": "forget_incident", "dedup_key": self.dedup_key, "resolved_at": self.resolved_at}
        return self.dedup_key.encode(), json.dumps(value).encode()


def encode_alert(alert: Alert) -> tuple[bytes, bytes]:
    """(Kafka key, value) of an alert candidate on chat.alerts."""
    return alert.dedup_key.encode(), json.dumps(alert.to_dict(), ensure_ascii=False, default=str).encode()


class InvalidRecord(ValueError):
    """A record on an internal topic that convmon did not write as it is: dead-lettered with this reason."""


def decode_alert_record(raw: bytes) -> Union[Alert, ForgetIncident]:
    """An alert or a forget request; InvalidRecord when the record is not one convmon writes (a stuck or
    hostile producer on chat.alerts must not stall alerting: a bad alert_id made the insert fail forever)."""
    try:
        d = json.loads(raw)
        if not isinstance(d, dict):
            raise InvalidRecord("not a JSON object")
        if d.get("control") == "forget_incident":
            return ForgetIncident(str(d["dedup_key"]), float(d["resolved_at"]))
        d["ts"] = datetime.fromisoformat(d["ts"])
        a = Alert(**d)
    except InvalidRecord:
        raise
    except (ValueError, TypeError, KeyError) as e:
        raise InvalidRecord(f"not an alert record ({type(e).__name__})") from None
    if a.kind not in KINDS or a.severity not in SEVERITIES or a.status not in ("firing", "resolved"):
        raise InvalidRecord("unknown kind, severity or status")
    try:
        uuid.UUID(a.alert_id)
    except (ValueError, TypeError, AttributeError):
        raise InvalidRecord("alert_id is not a UUID") from None
    if not isinstance(a.dedup_key, str) or not a.dedup_key or a.ts.tzinfo is None:
        raise InvalidRecord("empty dedup_key or a time without a zone")
    return a
