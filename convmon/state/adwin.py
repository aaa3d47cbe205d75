"""river ADWIN detectors as plain data, for the JSON state snapshots.

river 0.26's ADWIN keeps its adaptive window in a Rust object whose only way in or out is bincode
bytes (`__getstate__`/`__setstate__`, used by pickle). Those bytes are never stored, and bytes read
from storage never reach river (its `__setstate__` panics on malformed input). A snapshot holds what
is needed to REBUILD the detector exactly, as plain numbers:

    {"delta", "clock", "max_buckets", "min_window_length", "grace_period",   # constructor arguments
     "drift_detected",                                                        # the Python wrapper's flag
     "window": {"total", "variance", "width", "total_width", "n_buckets", "max_n_buckets", "tick",
                "n_detections", "rows": [{"totals": [...], "variances": [...]}, ...]}}

`rows[i]` are the used entries of ADWIN's exponential histogram row i (each entry summarises 2^i
values). Restoring checks every number against ADWIN's invariants (so a crafted row cannot make the
Rust code panic later: e.g. clock >= 1, the width equals the entries' sizes, rows above 0 are not
empty), then encodes the bincode bytes for the one struct layout this module knows and gives them
to a fresh `ADWIN`: the rebuilt detector has the same window and takes the same decisions, bit for
bit. Every snapshot re-encodes what it read and compares it with river's own bytes, and the layout
is self-tested once per process, so this module can never hand river bytes of a layout it has not
just read from river itself.

If river's layout ever differs (another river version), `window` is null: only the parameters are
kept and a restore starts a FRESH detector with them (`exact` is False); the caller decides how to
prime it (the embedding-drift detector is re-primed from its reference).
"""

from __future__ import annotations

import functools
import logging
import struct
from typing import Any

from .codec import boolean, integer, invalid, lst, number, obj

log = logging.getLogger(__name__)

I32 = (-(2**31), 2**31 - 1)
MAX_ROWS = 60  # 2^60 values: never reached; keeps `1 << row` inside u64
MAX_BUCKETS = 1000

# serde/bincode 1 (fixint, little-endian) of river's pyo3 `AdaptiveWindowing` wrapper, river 0.26:
# the Rust struct (delta f64, clock i32, max_buckets u64, min_window_length f64, grace_period f64,
# total, variance, width, total_width f64, n_buckets, max_n_buckets, tick, n_detections i32,
# bucket_list Vec<Bucket{max_size u64, current_idx u64, totals Vec<f64>, variances Vec<f64>}>)
# followed by the wrapper's constructor arguments (delta f64, clock i32, max_buckets u64,
# min_window_length i32, grace_period i32).
_HEAD = struct.Struct("<diQdd dddd iiii")
_TAIL = struct.Struct("<diQii")
_U64 = struct.Struct("<Q")
_WINDOW_FLOATS = ("total", "variance", "width", "total_width")
_WINDOW_INTS = ("n_buckets", "max_n_buckets", "tick", "n_detections")
PARAMS = ("delta", "clock", "max_buckets", "min_window_length", "grace_period")


def _new(params: dict):
    from river import drift

    return drift.ADWIN(**params)


def _params(det) -> dict:
    return {p: getattr(det, p) for p in PARAMS}


# --------------------------------------------------------------------------- bincode (known layout)


def _decode(raw: bytes, params: dict) -> dict:
    """river's bytes → the plain window; ValueError/struct.error when they are not the known layout."""
    head = _HEAD.unpack_from(raw, 0)
    o = _HEAD.size
    expect = (float(params["delta"]), params["clock"], params["max_buckets"], float(params["min_window_length"]),
              float(params["grace_period"]))
    if head[:5] != expect:
        raise ValueError("parameters")
    (n_rows,) = _U64.unpack_from(raw, o)
    o += 8
    if not 1 <= n_rows <= MAX_ROWS:
        raise ValueError("rows")
    rows = []
    cap = params["max_buckets"] + 1
    for _ in range(n_rows):
        max_size, idx = struct.unpack_from("<QQ", raw, o)
        o += 16
        cols = []
        for _ in range(2):
            (n,) = _U64.unpack_from(raw, o)
            o += 8
            if max_size != params["max_buckets"] or n != cap or idx > n:
                raise ValueError("bucket")
            vals = struct.unpack_from(f"<{n}d", raw, o)
            o += 8 * n
            if any(v != 0.0 for v in vals[idx:]):
                raise ValueError("bucket padding")
            cols.append(list(vals[:idx]))
        rows.append({"totals": cols[0], "variances": cols[1]})
    tail = _TAIL.unpack_from(raw, o)
    if o + _TAIL.size != len(raw) or tail != (expect[0], expect[1], expect[2], params["min_window_length"],
                                               params["grace_period"]):
        raise ValueError("tail")
    window = dict(zip(_WINDOW_FLOATS, head[5:9]))
    window.update(zip(_WINDOW_INTS, head[9:13]))
    window["rows"] = rows
    return window


def _encode(params: dict, window: dict) -> bytes:
    cap = params["max_buckets"] + 1
    parts = [_HEAD.pack(float(params["delta"]), params["clock"], params["max_buckets"],
                        float(params["min_window_length"]), float(params["grace_period"]),
                        *(float(window[k]) for k in _WINDOW_FLOATS), *(window[k] for k in _WINDOW_INTS)),
             _U64.pack(len(window["rows"]))]
    for row in window["rows"]:
        idx = len(row["totals"])
        parts.append(struct.pack("<QQ", params["max_buckets"], idx))
        for col in (row["totals"], row["variances"]):
            parts.append(_U64.pack(cap) + struct.pack(f"<{cap}d", *(float(v) for v in col), *([0.0] * (cap - idx))))
    parts.append(_TAIL.pack(float(params["delta"]), params["clock"], params["max_buckets"],
                            params["min_window_length"], params["grace_period"]))
    return b"".join(parts)


@functools.lru_cache(maxsize=1)
def layout_ok() -> bool:
    """Does this river build serialise ADWIN in the layout above? (once per process)"""
    try:
        params = {"delta": 0.05, "clock": 4, "max_buckets": 5, "min_window_length": 5, "grace_period": 10}
        a, values = _new(params), [float((i * 7919) % 13 < (3 if i < 400 else 9)) for i in range(600)]
        for v in values[:500]:
            a.update(v)
        raw = a._helper.__getstate__()  # noqa: SLF001
        if _encode(params, _decode(raw, params)) != raw:
            raise ValueError("round trip")
        b = _new(params)
        b._helper.__setstate__(raw)  # noqa: SLF001 - river's own bytes, just read
        b._drift_detected = a.drift_detected  # noqa: SLF001
        for v in values[500:]:
            a.update(v)
            b.update(v)
            if a.drift_detected != b.drift_detected:
                raise ValueError("behaviour")
        if a._helper.__getstate__() != b._helper.__getstate__():  # noqa: SLF001
            raise ValueError("state")
        return True
    except Exception as e:  # noqa: BLE001 - any difference means: not the layout this module knows
        log.warning("river's ADWIN state layout is not the one convmon knows (%s): restored ADWIN detectors "
                    "start fresh", type(e).__name__)
        return False


# --------------------------------------------------------------------------- plain data


def to_snapshot(det) -> dict[str, Any]:
    """A river ADWIN as plain data (see the module docstring)."""
    params = _params(det)
    out: dict[str, Any] = {**params, "drift_detected": bool(det.drift_detected), "window": None}
    if layout_ok():
        raw = det._helper.__getstate__()  # noqa: SLF001
        try:
            window = _decode(raw, params)
            if _encode(params, window) == raw:
                out["window"] = window
        except (ValueError, struct.error):
            pass
        if out["window"] is None:
            log.warning("an ADWIN detector could not be captured exactly; it will restart fresh")
    return out


def _check_params(d: dict, where: str) -> dict:
    delta = number(d["delta"], f"{where}.delta", finite=True)
    if not 0 < delta < 1:
        raise invalid(f"{where}.delta: out of range")
    return {"delta": delta, "clock": integer(d["clock"], f"{where}.clock", 1, I32[1]),
            "max_buckets": integer(d["max_buckets"], f"{where}.max_buckets", 2, MAX_BUCKETS),
            "min_window_length": integer(d["min_window_length"], f"{where}.min_window_length", 1, I32[1]),
            "grace_period": integer(d["grace_period"], f"{where}.grace_period", 0, I32[1])}


def _check_window(x: Any, params: dict, where: str) -> dict:
    w = obj(x, where, (*_WINDOW_FLOATS, *_WINDOW_INTS, "rows"))
    out: dict[str, Any] = {k: number(w[k], f"{where}.{k}") for k in _WINDOW_FLOATS}
    out.update({k: integer(w[k], f"{where}.{k}", *I32) for k in _WINDOW_INTS})  # i32 counters (they may wrap)
    rows = lst(w["rows"], f"{where}.rows", MAX_ROWS)
    if not rows:
        raise invalid(f"{where}.rows: empty")
    out["rows"], width = [], 0
    for i, r in enumerate(rows):
        r = obj(r, f"{where}.rows[{i}]", ("totals", "variances"))
        t = [number(v, f"{where}.rows[{i}]") for v in lst(r["totals"], f"{where}.rows[{i}]", params["max_buckets"])]
        v = [number(v, f"{where}.rows[{i}]") for v in lst(r["variances"], f"{where}.rows[{i}]", params["max_buckets"])]
        if len(t) != len(v):
            raise invalid(f"{where}.rows[{i}]: totals and variances differ in length")
        if i > 0 and not t:  # ADWIN never leaves a row above the first empty (it deletes from the last one)
            raise invalid(f"{where}.rows[{i}]: empty")
        width += len(t) << i
        out["rows"].append({"totals": t, "variances": v})
    if out["width"] != width:
        raise invalid(f"{where}.width: does not match the rows")
    return out


def from_snapshot(x: Any, where: str = "adwin") -> tuple[Any, bool]:
    """(detector, exact): the rebuilt ADWIN, or a fresh one with the same parameters (exact=False)
    when the snapshot holds no window or this river's layout is not the one known here."""
    d = obj(x, where, (*PARAMS, "drift_detected", "window"))
    params = _check_params(d, where)
    detected = boolean(d["drift_detected"], f"{where}.drift_detected")
    window = None if d["window"] is None else _check_window(d["window"], params, f"{where}.window")
    det = _new(params)
    if window is None or not layout_ok():
        return det, False
    raw = _encode(params, window)
    try:
        det._helper.__setstate__(raw)  # noqa: SLF001 - bytes encoded here from checked numbers
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - river panics (pyo3 PanicException is a BaseException)
        raise invalid(f"{where}: rejected by river") from None
    if det._helper.__getstate__() != raw:  # noqa: SLF001
        raise invalid(f"{where}: rejected by river")
    det._drift_detected = detected  # noqa: SLF001 - the wrapper resets the window on the next update
    return det, True

