"""Test helper: signal records written as dicts (the compact layout of wire.Signal.decode) → wire.Signal."""

from __future__ import annotations

import json

from convmon.wire import Signal


def as_signals(records) -> list[Signal]:
    """Each dict may carry `_p`/`_o`: the partition and offset it was read from."""
    out = []
    for d in records:
        body = {k: v for k, v in d.items() if k not in ("_p", "_o")}
        out.append(Signal.decode(json.dumps(body).encode(), d.get("_p"), d.get("_o")))
    return out
