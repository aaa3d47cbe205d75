"""Signal drift per (app, model, version, role): river ADWIN on the per-turn signal streams.

toxicity_rate / jailbreak_rate / policy_rate watch the share of turns at or above the
signal's threshold (binary stream); sentiment_drift watches mean sentiment. ADWIN keeps an
adaptive window and cuts it when two sub-windows' means differ beyond its Hoeffding-style
bound (delta); we alert when a cut shows the rate RISING (sentiment: falling) and resolve when a
later cut brings it back down. No alert before `min_turns` turns of a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from . import adwin as adwin_codec
from . import codec as C

RATE_KINDS = {"toxicity": "toxicity_rate", "jailbreak": "jailbreak_rate", "policy": "policy_rate",
              "sentiment": "sentiment_drift"}


@dataclass
class RateChange:
    kind: str
    signal: str
    before: float
    after: float
    worse: bool  # rate rose (sentiment fell): fire; otherwise: resolve an open episode
    turns: int


class _Track:
    def __init__(self, delta: float):
        from river import drift

        self.det = drift.ADWIN(delta=delta)
        self.open = False

    def to_snapshot(self) -> dict[str, Any]:
        return {"open": self.open, "adwin": adwin_codec.to_snapshot(self.det)}

    @classmethod
    def from_snapshot(cls, x: Any, where: str) -> "_Track":
        d = C.obj(x, where, ("open", "adwin"))
        t = cls.__new__(cls)
        t.open = C.boolean(d["open"], f"{where}.open")
        # the detector is rebuilt exactly from its window (convmon.state.adwin); only where this river's
        # layout is unknown does it start fresh (same parameters): it re-learns the rate from the next turns
        t.det, _exact = adwin_codec.from_snapshot(d["adwin"], f"{where}.adwin")
        return t


@dataclass
class RateKeyState:
    """One key's rate detectors and turn counter, parsed from a snapshot."""

    tracks: dict[str, _Track]
    turns: int


class RateMonitor:
    def __init__(self, delta: float = 0.002, min_turns: int = 100):
        # river's detectors pull in scipy and scikit-learn (about 1 s of CPU): load them with the worker,
        # not in the first batch of turns, where they held up scoring on a 2-core machine
        from river import drift  # noqa: F401

        self.delta = delta
        self.min_turns = min_turns
        self.tracks: dict[tuple, dict[str, _Track]] = {}
        self.turns: dict[tuple, int] = {}

    def forget(self, key: tuple) -> None:
        """Drop a key's detectors from memory (its snapshot is kept in ClickHouse)."""
        self.tracks.pop(key, None)
        self.turns.pop(key, None)

    # -- snapshots: one key as plain data --------------------------------------------------------

    def to_snapshot(self, key: tuple) -> Optional[dict[str, Any]]:
        tracks = self.tracks.get(key)
        if tracks is None:
            return None
        return {"turns": self.turns.get(key, 0), "tracks": {s: t.to_snapshot() for s, t in tracks.items()}}

    @staticmethod
    def from_snapshot(x: Any, where: str = "rates") -> RateKeyState:
        d = C.obj(x, where, ("turns", "tracks"))
        tracks = {}
        for signal, t in C.obj(d["tracks"], f"{where}.tracks").items():
            if signal not in RATE_KINDS:
                raise C.invalid(f"{where}.tracks: unknown signal")
            tracks[signal] = _Track.from_snapshot(t, f"{where}.tracks.{signal}")
        return RateKeyState(tracks, C.integer(d["turns"], f"{where}.turns", 0))

    def restore(self, key: tuple, ks: RateKeyState) -> None:
        self.tracks[key], self.turns[key] = ks.tracks, ks.turns

    def update(self, key: tuple, values: dict[str, Optional[float]]) -> list[RateChange]:
        tracks = self.tracks.setdefault(key, {})
        n = self.turns[key] = self.turns.get(key, 0) + 1
        out = []
        for signal, x in values.items():
            if x is None:
                continue
            t = tracks.get(signal)
            if t is None:
                t = tracks[signal] = _Track(self.delta)
            before = t.det.estimation
            t.det.update(float(x))
            if not t.det.drift_detected or n < self.min_turns:
                continue
            after = t.det.estimation
            worse = after < before if signal == "sentiment" else after > before
            if worse or t.open:
                t.open = worse
                out.append(RateChange(RATE_KINDS[signal], signal, round(before, 4), round(after, 4), worse, n))
        return out
