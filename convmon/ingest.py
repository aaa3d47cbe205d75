"""Ingest: raw Kafka record bytes → a validated ChatTurn, or a rejection with a reason.

Every rejection carries a machine-readable `reason` (one of REASONS) and a short
human-readable `detail` (at most DETAIL_MAX_BYTES) that never quotes the input: not the text,
and not a field name the contract does not define (an unknown 2 KB "field name" can be a secret). The worker sends the
original bytes plus these to the dead-letter topic.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional, Union

from pydantic import ValidationError

from .contract import ChatTurn, ModelRef, PromptRef

REASONS = {
    "empty": "the record has no value",
    "too_large": "the record is larger than worker.max_record_bytes",
    "invalid_utf8": "the record is not valid UTF-8",
    "invalid_json": "the record is not a JSON document (or repeats a key)",
    "too_deep": "the JSON nests deeper than worker.max_json_depth",
    "not_an_object": "the JSON document is not an object",
    "invalid_unicode": "a string contains a lone surrogate (not encodable as UTF-8)",
    "schema_violation": "the object does not match schemas/chat_turn.schema.json",
    "text_too_long": "text is longer than worker.max_text_bytes",
    "ts_out_of_range": "ts is before 2000 or further in the future than worker.max_future_skew_s",
    "key_mismatch": "the Kafka key is set and differs from conversation_id",
    "note_too_long": "a chat.feedback note is longer than feedback.max_note_chars",
    "internal_error": "the decoder failed unexpectedly (a convmon bug; please report it)",
    "scoring_error": "a scorer failed on this turn (a convmon bug; please report it)",
}

DETAIL_MAX_BYTES = 256
_CONTRACT_NAMES = frozenset(n for m in (ChatTurn, ModelRef, PromptRef) for n in m.model_fields)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    detail: str


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey("an object repeats a key" + (f" ({k})" if k in _CONTRACT_NAMES else ""))
            seen.add(k)
    return obj


def _depth_exceeds(raw: bytes, limit: int) -> bool:
    """Cheap pre-check on bracket nesting (over-counts brackets inside strings, never under-counts)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    in_str = esc = False
    for b in raw:
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:
                esc = True
            elif b == 0x22:
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif b in (0x5D, 0x7D):
            depth -= 1
    return False


def _has_lone_surrogate(obj) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _location(loc: tuple, names: frozenset = _CONTRACT_NAMES) -> str:
    """A field path for the detail: contract field names and list indexes only; any other name came
    from the input (an unknown field, a metadata key) and is not repeated."""
    return ".".join(str(p) if isinstance(p, int) or p in names else "<name not shown>" for p in loc) \
        or "(root)"


def cap_detail(detail: str, limit: int = DETAIL_MAX_BYTES) -> str:
    """`detail` cut to `limit` UTF-8 bytes (on a character boundary)."""
    raw = detail.encode("utf-8", "replace")
    return detail if len(raw) <= limit else raw[: limit - 3].decode("utf-8", "ignore") + "..."


def format_errors(exc: ValidationError, names: frozenset = _CONTRACT_NAMES, limit: int = 3) -> str:
    """A pydantic error as a DLQ detail: field paths (only the contract's own `names`) and reasons, never values."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:limit]:
        loc = _location(err["loc"], names)
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)


def decode_object(raw: Optional[bytes], max_record_bytes: int, max_json_depth: int) -> Union[dict, Rejected]:
    """Raw record bytes → a JSON object, or a rejection (size, UTF-8, nesting, JSON, duplicate keys, lone
    surrogates): the checks every contract convmon reads shares (chat turns, feedback)."""
    if not raw:
        return Rejected("empty", "the record value is empty")
    if len(raw) > max_record_bytes:
        return Rejected("too_large", f"{len(raw)} bytes > limit {max_record_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Rejected("invalid_utf8", f"invalid byte at offset {e.start}")
    if _depth_exceeds(raw, max_json_depth):
        return Rejected("too_deep", f"nesting deeper than {max_json_depth}")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as e:
        return Rejected("invalid_json", str(e))
    except (ValueError, RecursionError) as e:
        msg = e.msg if isinstance(e, json.JSONDecodeError) else type(e).__name__
        pos = f" at offset {e.pos}" if isinstance(e, json.JSONDecodeError) else ""
        return Rejected("invalid_json", f"{msg}{pos}")
    if not isinstance(obj, dict):
        return Rejected("not_an_object", f"top-level JSON is {type(obj).__name__}")
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(obj):
        return Rejected("invalid_unicode", "a string contains a lone UTF-16 surrogate")
    return obj


class TurnDecoder:
    """Validates raw records against the contract and the worker's limits."""

    def __init__(
        self,
        max_record_bytes: int = 1_048_576,
        max_text_bytes: int = 65536,
        max_json_depth: int = 32,
        max_future_skew_s: float = 86400,
    ):
        self.max_record_bytes = max_record_bytes
        self.max_text_bytes = max_text_bytes
        self.max_json_depth = max_json_depth
        self.max_future_skew = timedelta(seconds=max_future_skew_s)

    @classmethod
    def from_settings(cls, worker) -> "TurnDecoder":
        return cls(worker.max_record_bytes, worker.max_text_bytes, worker.max_json_depth, worker.max_future_skew_s)

    def decode(self, raw: Optional[bytes], key: Optional[bytes] = None) -> Union[ChatTurn, Rejected]:
        obj = decode_object(raw, self.max_record_bytes, self.max_json_depth)
        if isinstance(obj, Rejected):
            return obj
        try:
            turn = ChatTurn.model_validate(obj)
        except ValidationError as e:
            return Rejected("schema_violation", format_errors(e))
        text_bytes = len(turn.text.encode("utf-8"))
        if text_bytes > self.max_text_bytes:
            return Rejected("text_too_long", f"text is {text_bytes} bytes > limit {self.max_text_bytes}")
        ts = turn.timestamp
        if ts < _EARLIEST or ts > datetime.now(timezone.utc) + self.max_future_skew:
            return Rejected("ts_out_of_range", f"ts {turn.ts} outside [2000-01-01, now + {self.max_future_skew}]")
        if key and key != turn.conversation_id.encode("utf-8"):
            return Rejected("key_mismatch", "Kafka key differs from conversation_id")
        return turn
