"""The scorer extension point: a batch of turns in, a batch of score fields out.

A scorer returns, for each turn, a dict of fields of the score record (the contract of
the `turns` table and the `chat.scores` topic, see schemas/score_event.schema.json).
Adding a signal is adding one Scorer; `ScoringPipeline` merges their fields.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

from ..contract import ChatTurn

ScoreFields = dict[str, Any]


@runtime_checkable
class Scorer(Protocol):
    name: str
    version: str

    def score(self, turns: Sequence[ChatTurn]) -> list[ScoreFields]:
        """One dict per turn, in input order. Must not raise on any valid turn."""
        ...
