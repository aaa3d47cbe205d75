"""The scoring stage: run every scorer on a micro-batch and merge their fields per turn."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional, Sequence

from ..contract import ChatTurn, format_ts
from .base import Scorer, ScoreFields
from .fields import defaults

@dataclass(slots=True)
class ScoredTurn:
    turn: ChatTurn
    scores: ScoreFields
    scorer_version: str
    scored_at: datetime
    partition: int = 0
    offset: int = 0
    extras: dict = field(default_factory=dict)  # non-contract per-turn data for later stages (e.g. embeddings)

    def event(self) -> dict[str, Any]:
        """The record published on chat.scores (schemas/score_event.schema.json)."""
        t = self.turn
        out: dict[str, Any] = {
            "event_id": t.event_id,
            "conversation_id": t.conversation_id,
            "turn_index": t.turn_index,
            "role": t.role,
            "ts": t.ts,
            "app": t.app,
            "model": {"provider": t.model.provider, "name": t.model.name, "version": t.model.version},
            "scored_at": format_ts(self.scored_at),
            "scorer_version": self.scorer_version,
        }
        if t.prompt is not None:
            out["prompt"] = t.prompt.model_dump(exclude_none=True)
        if t.user_ref is not None:
            out["user_ref"] = t.user_ref
        for k, v in self.scores.items():
            if k == "text_raw" and v is None:
                continue
            out[k] = v
        return out

    def event_bytes(self) -> bytes:
        return json.dumps(self.event(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class ScoringPipeline:
    """Runs scorers in order on a batch; later scorers may not overwrite earlier fields."""

    def __init__(self, scorers: Sequence[Scorer]):
        names = [s.name for s in scorers]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate scorer names: {names}")
        self.scorers = list(scorers)
        self.defaults = defaults()  # every declared score field (scoring/fields.py), for scorers that are off
        self.version = "+".join(s.version for s in scorers) or "none"

    def close(self) -> None:
        """Release what scorers hold outside this process (the encoder's child process)."""
        for s in self.scorers:
            if hasattr(s, "close"):
                s.close()

    def score(
        self, turns: Sequence[ChatTurn], positions: Optional[Sequence[tuple[int, int]]] = None
    ) -> list[ScoredTurn]:
        now = datetime.now(timezone.utc)
        merged: list[ScoreFields] = [dict(self.defaults) for _ in turns]
        for scorer in self.scorers:
            results = scorer.score(turns)
            if len(results) != len(turns):
                raise RuntimeError(f"scorer {scorer.name} returned {len(results)} results for {len(turns)} turns")
            for target, fields in zip(merged, results):
                target.update(fields)
        positions = positions or [(0, 0)] * len(turns)
        out = []
        for turn, fields, (p, o) in zip(turns, merged, positions):
            # Fields starting with "_" (e.g. the embedding) feed later stages, not the score record.
            extras = {k[1:]: fields.pop(k) for k in [k for k in fields if k.startswith("_")]}
            out.append(ScoredTurn(turn, fields, self.version, now, p, o, extras))
        return out
