"""The feedback contract: the typed model of schemas/feedback.schema.json, its decoder, and its protection.

A label says which turn (`event_id`) or alert (`alert_id`) it is about, which signal, the verdict
(`confirmed`, `false_alarm`, `missed`), where it came from and who gave it. `feedback_id` is its
idempotency key. tests/unit/test_feedback_contract.py keeps the model and the schema in agreement.

`FeedbackDecoder.decode` checks a raw chat.feedback record like a chat turn (convmon/ingest.py: the same
size, UTF-8, JSON, nesting and schema checks and reason codes, plus `note_too_long`); a rejection is
dead-lettered with its reason. `protect` is applied before anything is stored: the conversation id and the
reporter become keyed pseudonyms (convmon/privacy.py) and the note goes through the PII redactor.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator, model_validator

from ..contract import _RFC3339, _UUID, IDENTIFIER, parse_ts
from ..ingest import Rejected, decode_object, format_errors
from ..privacy import pseudonym, redact_value
from ..resources import data_path

Verdict = Literal["confirmed", "false_alarm", "missed"]
Source = Literal["oncall", "end_user", "reviewer"]
TURN_SIGNALS = ("toxicity", "jailbreak")  # a turn's own scores and hit decisions; plus policy:<id>
ALERT_SIGNALS = ("sentiment_shift", "embedding_drift", "toxicity_rate", "jailbreak_rate", "policy_rate",
                 "sentiment_drift")
SIGNAL = r"^(" + "|".join(TURN_SIGNALS + ALERT_SIGNALS) + r"|policy:[A-Za-z0-9._-]{1,64})(?![\s\S])"
_EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)


class Feedback(BaseModel):
    """One label. Kafka key = conversation_id where there is one, else alert_id."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, regex_engine="python-re")

    feedback_id: StrictStr = Field(pattern=_UUID)
    event_id: Optional[StrictStr] = Field(default=None, pattern=_UUID)
    alert_id: Optional[StrictStr] = Field(default=None, pattern=_UUID)
    conversation_id: Optional[StrictStr] = Field(default=None, min_length=1, max_length=256, pattern=IDENTIFIER)
    signal: StrictStr = Field(pattern=SIGNAL)
    verdict: Verdict
    source: Source
    reporter: Optional[StrictStr] = Field(default=None, max_length=256)
    note: Optional[StrictStr] = None
    ts: StrictStr = Field(pattern=_RFC3339)

    @field_validator("feedback_id", "event_id", "alert_id")
    @classmethod
    def _canonical_uuid(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else str(uuid.UUID(v))

    @field_validator("ts")
    @classmethod
    def _parseable_ts(cls, v: str) -> str:
        parse_ts(v)
        return v

    @model_validator(mode="after")
    def _names_what_it_labels(self) -> "Feedback":
        if self.event_id is None and self.alert_id is None:
            raise ValueError("names neither an event_id nor an alert_id")
        if self.verdict == "missed" and self.event_id is None:
            raise ValueError("a missed label names the turn convmon missed (event_id)")
        return self

    @property
    def timestamp(self) -> datetime:
        return parse_ts(self.ts)

    def kafka_key(self) -> bytes:
        return (self.conversation_id or self.alert_id or self.event_id or "").encode("utf-8")

    def encode(self) -> tuple[bytes, bytes]:
        """(Kafka key, value) for chat.feedback."""
        return self.kafka_key(), json.dumps(self.model_dump(exclude_none=True), ensure_ascii=False).encode("utf-8")


NAMES = frozenset(Feedback.model_fields)


class FeedbackDecoder:
    """Raw chat.feedback records → Feedback, or a rejection with a reason (the codes of schemas/dlq.md)."""

    def __init__(self, max_record_bytes: int = 1_048_576, max_json_depth: int = 32, max_note_chars: int = 2000,
                 max_future_skew_s: float = 86400):
        self.max_record_bytes, self.max_json_depth = max_record_bytes, max_json_depth
        self.max_note_chars = max_note_chars
        self.max_future_skew = timedelta(seconds=max_future_skew_s)

    @classmethod
    def from_settings(cls, settings) -> "FeedbackDecoder":
        w = settings.worker
        return cls(w.max_record_bytes, w.max_json_depth, settings.feedback.max_note_chars, w.max_future_skew_s)

    def decode(self, raw: Optional[bytes], key: Optional[bytes] = None) -> Union[Feedback, Rejected]:
        obj = decode_object(raw, self.max_record_bytes, self.max_json_depth)
        if isinstance(obj, Rejected):
            return obj
        try:
            fb = Feedback.model_validate(obj)
        except ValidationError as e:
            return Rejected("schema_violation", format_errors(e, NAMES))
        if fb.note is not None and len(fb.note) > self.max_note_chars:
            return Rejected("note_too_long", f"note is {len(fb.note)} characters > limit {self.max_note_chars}")
        ts = fb.timestamp
        if ts < _EARLIEST or ts > datetime.now(timezone.utc) + self.max_future_skew:
            return Rejected("ts_out_of_range", f"ts {fb.ts} outside [2000-01-01, now + {self.max_future_skew}]")
        if key and fb.conversation_id is not None and key != fb.conversation_id.encode("utf-8"):
            return Rejected("key_mismatch", "Kafka key differs from conversation_id")
        return fb


def protect(fb: Feedback, key: bytes) -> Feedback:
    """What of a label may be stored: conversation_id and reporter as keyed pseudonyms (as a turn's
    conversation_id and user_ref), the note with PII and secrets redacted (as message text)."""
    update: dict = {}
    if fb.conversation_id is not None:
        update["conversation_id"] = pseudonym(key, fb.conversation_id)
    if fb.reporter is not None:
        update["reporter"] = pseudonym(key, fb.reporter)
    if fb.note is not None:
        update["note"] = redact_value(fb.note)
    return fb.model_copy(update=update)


@lru_cache(maxsize=1)
def json_schema() -> dict:
    return json.loads(data_path("schemas/feedback.schema.json").read_text("utf-8"))
