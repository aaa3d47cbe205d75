"""One micro-batch through ingest and scoring — plain code, no Kafka.

The Faust agent hands raw records in; it gets back the scored turns to store and publish,
and the rejected records (original bytes + reason) for the dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional, Sequence

from .contract import ChatTurn
from .ingest import Rejected, TurnDecoder, cap_detail
from .scoring.pipeline import ScoredTurn, ScoringPipeline
from .store.tables import DeadLetterRow

DLQ_HEADER_PREFIX = "convmon."
# Room for the key, the headers and the record overhead: the DLQ topic and the producer allow
# dlq_max_bytes(), so a dead letter of any size the worker reads (up to max_record_bytes, or the
# broker's default 1 MiB for the too_large ones) fits with its headers.
DLQ_HEADROOM = 65536
BROKER_DEFAULT_MESSAGE_BYTES = 1_048_588


def dlq_max_bytes(max_record_bytes: int) -> int:
    return max(max_record_bytes, BROKER_DEFAULT_MESSAGE_BYTES) + DLQ_HEADROOM


@dataclass(frozen=True, slots=True)
class RawRecord:
    value: Optional[bytes]
    key: Optional[bytes] = None
    topic: str = ""
    partition: int = 0
    offset: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: RawRecord
    reason: str
    detail: str

    def row(self) -> DeadLetterRow:
        """The `dead_letters` row: reason and origin, never the content."""
        r = self.record
        return DeadLetterRow(datetime.now(timezone.utc), self.reason, f"{r.topic}/{r.partition}@{r.offset}",
                             len(r.value or b""))

    def headers(self) -> dict[str, bytes]:
        r = self.record
        return {
            f"{DLQ_HEADER_PREFIX}reason": self.reason.encode(),
            f"{DLQ_HEADER_PREFIX}detail": cap_detail(self.detail).encode("utf-8", "replace"),
            f"{DLQ_HEADER_PREFIX}source": f"{r.topic}/{r.partition}@{r.offset}".encode(),
            f"{DLQ_HEADER_PREFIX}failed_at": datetime.now(timezone.utc).isoformat().encode(),
        }

    def message(self, max_bytes: int) -> tuple[Optional[bytes], bytes, dict[str, bytes]]:
        """(key, value, headers) for the DLQ. When the original would not fit in `max_bytes` with its
        headers (a record from a topic that allows more than the DLQ), the value is left out and
        `convmon.value_omitted` gives its size: the original stays at `convmon.source`."""
        headers = self.headers()
        value, key = self.record.value or b"", self.record.key
        size = len(value) + len(key or b"") + sum(len(k) + len(v) for k, v in headers.items()) + 512
        if size > max_bytes:
            headers[f"{DLQ_HEADER_PREFIX}value_omitted"] = str(len(value)).encode()
            value = b""
        return key, value, headers


@dataclass(slots=True)
class BatchResult:
    scored: list[ScoredTurn] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    # Valid turns that came without a Kafka key: sent back to chat.turns keyed by conversation_id, unscored,
    # so that every turn of a conversation is scored on one partition, where its dynamics state lives.
    rekeyed: list[RawRecord] = field(default_factory=list)

    def rows(self) -> dict[str, list]:
        """What the batch stores, by ClickHouse table."""
        return {"turns": self.scored, "dead_letters": [d.row() for d in self.dead]}

    def messages(self, rules, thresholds: dict, policy_thresholds: dict, dlq_bytes: int) -> dict[str, list[tuple]]:
        """What the batch sends, by topic role: (key, value, headers) for the DLQ, chat.turns (the re-keyed
        turns), chat.scores, convmon.signals (one record per model-version key and batch: wire.encode_signals)
        and chat.alerts (single-turn alert candidates, wire.encode_alert)."""
        from .alerting.rules import turn_alerts
        from .wire import Signal, encode_alert, encode_signals

        return {
            "dlq": [d.message(dlq_bytes) for d in self.dead],
            "turns": [(r.key, r.value, None) for r in self.rekeyed],
            "scores": [(s.turn.conversation_id.encode(), s.event_bytes(), None) for s in self.scored],
            "signals": [(k, v, None) for k, v in encode_signals([Signal.from_scored(s) for s in self.scored])],
            "alerts": [(*encode_alert(a), None) for a in turn_alerts(rules, self.scored, thresholds, policy_thresholds)],
        }


class BatchProcessor:
    def __init__(self, decoder: TurnDecoder, pipeline: ScoringPipeline,
                 protect: Optional[Callable[[ChatTurn], ChatTurn]] = None, rekey: bool = False):
        self.decoder = decoder
        self.pipeline = pipeline
        self.protect = protect  # convmon.privacy.Protector: pseudonymised ids and redacted metadata from here on
        self.rekey = rekey  # a valid turn without a Kafka key goes to `rekeyed`, not to scoring (the worker)

    def process(self, records: Sequence[RawRecord]) -> BatchResult:
        result = BatchResult()
        turns: list[ChatTurn] = []
        positions: list[tuple[int, int]] = []
        for rec in records:
            rekey = self.rekey and not rec.key
            try:
                decoded = self.decoder.decode(rec.value, rec.key)
                if rekey and not isinstance(decoded, Rejected):
                    # the raw conversation_id (before pseudonymisation) is the key the producer should have set
                    result.rekeyed.append(RawRecord(rec.value, decoded.conversation_id.encode("utf-8"), rec.topic,
                                                    rec.partition, rec.offset))
                    continue
                if self.protect is not None and not isinstance(decoded, Rejected):
                    decoded = self.protect(decoded)
            except Exception as e:  # a decoder bug must not stop the stream
                decoded = Rejected("internal_error", f"decoder raised {type(e).__name__}")
            if isinstance(decoded, Rejected):
                result.dead.append(DeadLetter(rec, decoded.reason, decoded.detail))
            else:
                turns.append(decoded)
                positions.append((rec.partition, rec.offset))
        if turns:
            try:
                result.scored = self.pipeline.score(turns, positions)
            except Exception:
                # Isolate the turn that breaks a scorer; the others are scored normally.
                by_pos = {(r.partition, r.offset): r for r in records}
                for turn, pos in zip(turns, positions):
                    try:
                        result.scored.extend(self.pipeline.score([turn], [pos]))
                    except Exception as e:
                        result.dead.append(DeadLetter(by_pos[pos], "scoring_error", f"a scorer raised {type(e).__name__}"))
        return result
