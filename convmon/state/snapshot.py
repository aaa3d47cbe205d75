"""Per-model-version state snapshots: plain, versioned JSON (never pickle).

One snapshot holds one key's (app, model_name, model_version, role) whole state, so a restarted
worker, or the worker that takes over the key's partition, resumes it (ClickHouse table
`model_state_snapshots`, column `state`):

    {"v": 1,
     "key": [app, model_name, model_version, role],
     "drift":   DriftMonitor per-key state (convmon.state.drift._KeyState.to_snapshot): counters
                (turns, live, looks, episode…), reference and previous-version baseline as
                Reference.to_dict() (float16 embeddings, bandwidth, calibrated null models), the
                reservoir builder before the reference is pinned (sample, score lists, PCG64 state),
                the live window (turn numbers, timestamps, scores, embeddings) and the ADWIN detector
                (convmon.state.adwin) | null,
     "rates":   {"turns": n, "tracks": {signal: {"open": bool, "adwin": {...}}}} | null,
     "windows": {"watermark": t, "buckets": [{"start": t0, "turns": n, "tox": [...], ...}]} | null,
     "applied": [kafka partition, offset] of the last signal applied | null,
     "recent":  [recent event ids]}

Arrays are {"dtype": "<f2"|"<f4"|"<f8", "shape": [...], "b64": raw little-endian bytes} (plus "as"
when float32 values exact in float16 are stored as float16). Timestamps are numbers, {"dt": ISO 8601}
or {"s": text}.

Reading is strict: the whole document is checked and every state object built before anything is
installed; a row that is not such a document raises SnapshotError with a reason (codec.REASONS).
Rows of convmon < 2 (base64 pickle) are recognised by their first bytes and rejected unread.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from . import codec as C
from .codec import REASONS, SnapshotError
from .drift import DriftMonitor, _KeyState
from .rates import RateKeyState, RateMonitor
from .windows import MinuteWindows, WindowKeyState

SNAPSHOT_VERSION = 1
MAX_RECENT = 1_000_000


@dataclass
class ModelSnapshot:
    """One key's state, parsed and checked; `ModelState.restore` installs it."""

    key: tuple[str, str, str, str]
    drift: Optional[_KeyState]
    rates: Optional[RateKeyState]
    windows: Optional[WindowKeyState]
    applied: Optional[tuple[Optional[int], int]]
    recent: list[Optional[str]]


def dump(key: Sequence[str], drift: Optional[dict], rates: Optional[dict], windows: Optional[dict],
         applied: Optional[Sequence], recent: Sequence) -> bytes:  # fmt: skip
    """The JSON document (UTF-8) of one key's state parts (each from the part's `to_snapshot`)."""
    doc = {"v": SNAPSHOT_VERSION, "key": list(key), "drift": drift, "rates": rates, "windows": windows,
           "applied": list(applied) if applied is not None else None, "recent": list(recent)}
    # allow_nan: a NaN score or an infinite watermark is state too (Python's json reads them back)
    return json.dumps(doc, separators=(",", ":"), allow_nan=True).encode()


def _looks_like_pickle(raw: bytes) -> bool:
    """A legacy row: base64 of a pickle (protocol 2+ starts with 0x80), or a raw pickle. Only the first bytes
    are base64-decoded to tell; nothing is ever unpickled."""
    head = raw.lstrip()[:8]
    if head[:1] == b"\x80":
        return True
    try:
        return base64.b64decode(head, validate=True)[:1] == b"\x80"
    except (binascii.Error, ValueError):
        return False


def load(raw: Union[str, bytes], key: Sequence[str], drift: DriftMonitor) -> ModelSnapshot:
    """Parse and check one stored snapshot of `key`; raises SnapshotError (never returns half a state)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    key = tuple(key)
    if _looks_like_pickle(raw):
        raise SnapshotError("legacy_pickle")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise SnapshotError("not_json") from None
    if not isinstance(doc, dict):
        raise SnapshotError("not_json", "not an object")
    v = doc.get("v")
    if isinstance(v, bool) or v != SNAPSHOT_VERSION:
        raise SnapshotError("version")
    try:
        return _parse(doc, key, drift)
    except SnapshotError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as e:
        # a check this module missed: still a rejected row, never a crashed worker
        raise SnapshotError("invalid", type(e).__name__) from None


def _parse(doc: dict, key: tuple, drift: DriftMonitor) -> ModelSnapshot:
    C.obj(doc, "snapshot", ("key", "drift", "rates", "windows", "applied", "recent"))
    k = C.lst(doc["key"], "key", 4)
    if [C.string(p, "key") for p in k] != list(key):
        raise SnapshotError("key_mismatch", "key")
    applied = None
    if doc["applied"] is not None:
        a = C.lst(doc["applied"], "applied", 2)
        if len(a) != 2:
            raise C.invalid("applied: expected [partition, offset]")
        applied = (None if a[0] is None else C.integer(a[0], "applied", 0, 2**31 - 1),
                   C.integer(a[1], "applied", 0, 2**63 - 1))  # a Kafka partition and offset
    recent = [None if r is None else C.string(r, "recent", 1024) for r in C.lst(doc["recent"], "recent", MAX_RECENT)]
    return ModelSnapshot(
        key=key,
        drift=None if doc["drift"] is None else drift.from_snapshot(key, doc["drift"]),
        rates=None if doc["rates"] is None else RateMonitor.from_snapshot(doc["rates"]),
        windows=None if doc["windows"] is None else MinuteWindows.from_snapshot(doc["windows"]),
        applied=applied,
        recent=recent,
    )


def recent_ids(snap: ModelSnapshot, limit: int) -> "OrderedDict[Optional[str], None]":
    return OrderedDict.fromkeys(snap.recent[-limit:] if limit else [])


__all__ = ["SNAPSHOT_VERSION", "REASONS", "SnapshotError", "ModelSnapshot", "dump", "load", "recent_ids"]
