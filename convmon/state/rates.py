"""Signal drift per (app, model, version, role): river ADWIN on the per-turn signal streams.

toxicity_rate / jailbreak_rate / policy_rate watch the share of turns at or above the
signal's threshold (binary stream); sentiment_drift watches mean sentiment. ADWIN keeps an
adaptive window and cuts it when two sub-windows' means differ beyond its Hoeffding-style
bound (delta); we alert when a cut shows the rate RISING (sentiment: falling) and resolve when a
later cut brings it back down. No alert before `min_turns` turns of a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

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


class RateMonitor:
    def __init__(self, delta: float = 0.002, min_turns: int = 100):
        self.delta = delta
        self.min_turns = min_turns
        self.tracks: dict[tuple, dict[str, _Track]] = {}
        self.turns: dict[tuple, int] = {}

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
