"""Plain-data building blocks for state snapshots: strict typed readers, arrays, timestamps.

A snapshot is read back from storage that other people can write to (ClickHouse), so it is
parsed as untrusted input: JSON only, every field checked for type, range and shape before any
state object is built, nothing ever unpickled (`np.frombuffer` with an explicit numeric dtype,
never `np.load`). A check that fails raises `SnapshotError` with a reason from `REASONS` and a
description of WHERE the data was wrong, never of what it contained.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import datetime
from numbers import Integral, Real
from typing import Any, Mapping, Optional

import numpy as np

# Why a stored snapshot was skipped (the `reason` label of convmon_snapshot_rejected_total).
REASONS = (
    "legacy_pickle",  # a row written by convmon < 2 (base64 pickle): never unpickled
    "not_json",  # not a JSON object
    "version",  # a JSON object without a snapshot version this build reads
    "key_mismatch",  # the state of another key than the row's
    "invalid",  # wrong types, shapes or values
)


class SnapshotError(ValueError):
    """A stored snapshot that cannot be used; `reason` is one of REASONS."""

    def __init__(self, reason: str, where: str = ""):
        assert reason in REASONS, reason
        super().__init__(f"{reason} ({where})" if where else reason)
        self.reason = reason
        self.where = where


def invalid(where: str) -> SnapshotError:
    return SnapshotError("invalid", where)


# --------------------------------------------------------------------------- typed readers


def obj(x: Any, where: str, keys: tuple[str, ...] = ()) -> Mapping[str, Any]:
    """A JSON object holding at least `keys`."""
    if not isinstance(x, dict):
        raise invalid(f"{where}: expected an object")
    for k in keys:
        if k not in x:
            raise invalid(f"{where}: missing {k!r}")
    return x


def lst(x: Any, where: str, max_len: Optional[int] = None) -> list:
    if not isinstance(x, list):
        raise invalid(f"{where}: expected a list")
    if max_len is not None and len(x) > max_len:
        raise invalid(f"{where}: more than {max_len} items")
    return x


SAFE_INT = 2**53  # counters and offsets beyond this are not state convmon writes (and overflow float maths)


def integer(x: Any, where: str, lo: int = -SAFE_INT, hi: int = SAFE_INT) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise invalid(f"{where}: expected an integer")
    if x < lo or x > hi:
        raise invalid(f"{where}: out of range")
    return x


def number(x: Any, where: str, finite: bool = False) -> float | int:
    """An int or float, returned as stored (JSON keeps the difference, so a round trip is exact)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise invalid(f"{where}: expected a number")
    if finite and not math.isfinite(x):
        raise invalid(f"{where}: not finite")
    return x


def opt_number(x: Any, where: str) -> Optional[float | int]:
    return None if x is None else number(x, where)


def boolean(x: Any, where: str) -> bool:
    if not isinstance(x, bool):
        raise invalid(f"{where}: expected true/false")
    return x


def string(x: Any, where: str, max_len: int = 1 << 16) -> str:
    if not isinstance(x, str) or len(x) > max_len:
        raise invalid(f"{where}: expected a string")
    return x


def plain_number(x: Any) -> float | int:
    """A number as JSON can hold it (numpy scalars become Python ones)."""
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, Integral):
        return int(x)
    if isinstance(x, Real):
        return float(x)
    raise TypeError(f"not a number: {type(x).__name__}")


# --------------------------------------------------------------------------- arrays

_DTYPES = {"<f2": np.float16, "<f4": np.float32, "<f8": np.float64}


def encode_array(a: np.ndarray, compact: bool = True) -> dict[str, Any]:
    """{"dtype", "shape", "b64"}: the raw little-endian bytes of a float array.

    compact: a float32/float64 array whose values are all exact in float16 (e.g. embeddings that
    travelled as float16) is stored as float16, which halves it; decoding restores the original dtype
    from `as`.
    """
    a = np.asarray(a)
    if a.dtype.kind != "f":
        raise TypeError(f"only float arrays are snapshotted, got {a.dtype}")
    kind = a.dtype.newbyteorder("<").str
    store = a
    if compact and kind != "<f2":
        a16 = a.astype(np.float16)
        if np.array_equal(a16.astype(a.dtype), a, equal_nan=True):
            store = a16
    stored = store.dtype.newbyteorder("<").str
    out = {"dtype": stored, "shape": [int(s) for s in a.shape],
           "b64": base64.b64encode(np.ascontiguousarray(store, dtype=stored).tobytes()).decode("ascii")}
    if stored != kind:
        out["as"] = kind
    return out


def decode_array(x: Any, where: str, ndim: int, max_items: int = 1 << 26) -> np.ndarray:
    """The array of `encode_array`, after checking dtype, shape and byte length; a fresh writable copy."""
    d = obj(x, where, ("dtype", "shape", "b64"))
    dtype = d["dtype"]
    if dtype not in _DTYPES:
        raise invalid(f"{where}: unsupported dtype")
    as_ = d.get("as", dtype)
    if as_ not in _DTYPES:
        raise invalid(f"{where}: unsupported dtype")
    shape = tuple(integer(s, f"{where}.shape", 0, max_items) for s in lst(d["shape"], f"{where}.shape", ndim))
    if len(shape) != ndim:
        raise invalid(f"{where}: expected {ndim} dimensions")
    n = math.prod(shape)
    if n > max_items:
        raise invalid(f"{where}: too large")
    try:
        raw = base64.b64decode(string(d["b64"], f"{where}.b64", 1 << 30), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{where}: bad base64") from None
    if len(raw) != n * np.dtype(dtype).itemsize:
        raise invalid(f"{where}: byte length does not match the shape")
    return np.frombuffer(raw, dtype=_DTYPES[dtype]).reshape(shape).astype(_DTYPES[as_])


# --------------------------------------------------------------------------- timestamps


def encode_ts(ts: Any) -> Any:
    """A turn timestamp (datetime, epoch number, string or None), tagged so it comes back as the same type."""
    if ts is None:
        return None
    if isinstance(ts, datetime):
        return {"dt": ts.isoformat()}
    if isinstance(ts, str):
        return {"s": ts}
    return plain_number(ts)


def decode_ts(x: Any, where: str) -> Any:
    if x is None:
        return None
    if isinstance(x, dict):
        if "dt" in x:
            try:
                dt = datetime.fromisoformat(string(x["dt"], where, 64))
            except ValueError:
                raise invalid(f"{where}: bad datetime") from None
            if not 1900 <= dt.year <= 2299:  # ClickHouse DateTime64's range: such a row would never be stored
                raise invalid(f"{where}: datetime out of range")
            return dt
        if "s" in x:
            return string(x["s"], where)
        raise invalid(f"{where}: unknown timestamp form")
    return number(x, where)
