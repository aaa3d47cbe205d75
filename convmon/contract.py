"""The chat-turn contract: the typed model of schemas/chat_turn.schema.json.

Chat backends in any language publish JSON matching the schema; this module is the
Python side of the same contract. `tests/unit/test_contract.py` keeps the two in
agreement (same fields, same accept/reject decisions on a corpus of documents).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator
from .resources import data_path

Role = Literal["user", "assistant", "system", "tool"]

# RFC 3339 with a mandatory offset; pydantic alone would also accept unix numbers and naive times.
_RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# Identifiers (app, model provider/name/version, conversation_id, prompt template/version) end up in
# dashboards, SQL filters, alert labels and dedup keys: letters, digits and . _ : @ / + = # - only (no
# quotes, backslashes, commas, braces, spaces or control characters). The lookahead, not `$`, ends
# the match, so a trailing newline is refused by every JSON Schema implementation alike.
IDENTIFIER = r"^[A-Za-z0-9._:@/+=#-]+(?![\s\S])"


class _Strict(BaseModel):
    # python-re: the same regex semantics as JSON Schema validators (lookahead in IDENTIFIER)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, regex_engine="python-re")


class ModelRef(_Strict):
    provider: StrictStr = Field(min_length=1, max_length=128, pattern=IDENTIFIER)
    name: StrictStr = Field(min_length=1, max_length=128, pattern=IDENTIFIER)
    version: StrictStr = Field(min_length=1, max_length=128, pattern=IDENTIFIER)


class PromptRef(_Strict):
    template_id: StrictStr = Field(min_length=1, max_length=128, pattern=IDENTIFIER)
    version: Optional[StrictStr] = Field(default=None, max_length=128, pattern=IDENTIFIER)


class ChatTurn(_Strict):
    """One chat turn. Kafka key = conversation_id."""

    event_id: StrictStr = Field(pattern=_UUID)
    conversation_id: StrictStr = Field(min_length=1, max_length=256, pattern=IDENTIFIER)
    turn_index: StrictInt = Field(ge=0, le=1_000_000)
    role: Role
    text: StrictStr
    ts: StrictStr = Field(pattern=_RFC3339)
    app: StrictStr = Field(min_length=1, max_length=128, pattern=IDENTIFIER)
    model: ModelRef
    prompt: Optional[PromptRef] = None
    user_ref: Optional[StrictStr] = Field(default=None, max_length=256)
    metadata: Optional[dict[str, Any]] = None

    @field_validator("turn_index", mode="before")
    @classmethod
    def _integral_number(cls, v):
        # JSON Schema counts 3.0 as an integer; some producers serialise numbers that way.
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return v

    @field_validator("event_id")
    @classmethod
    def _canonical_uuid(cls, v: str) -> str:
        return str(uuid.UUID(v))

    @field_validator("ts")
    @classmethod
    def _parseable_ts(cls, v: str) -> str:
        parse_ts(v)  # raises ValueError on e.g. month 13
        return v

    @property
    def timestamp(self) -> datetime:
        return parse_ts(self.ts)


def parse_ts(value: str) -> datetime:
    """RFC 3339 string → aware UTC datetime."""
    dt = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T", 1))
    if dt.tzinfo is None:  # excluded by the pattern; defensive
        raise ValueError("timestamp has no time zone offset")
    return dt.astimezone(timezone.utc)


def format_ts(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=1)
def json_schema() -> dict:
    """The language-neutral contract, shipped inside the package."""
    text = data_path("schemas/chat_turn.schema.json").read_text("utf-8")
    return json.loads(text)
