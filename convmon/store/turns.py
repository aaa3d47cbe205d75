"""The `turns` sink: batched, idempotent inserts of scored turns.

Idempotent twice over: a retried identical batch is dropped by ClickHouse (`insert_deduplication_token`), and
turns Kafka delivered again in other batches are looked up and left out (store/replays.py)."""

from __future__ import annotations

import hashlib
import json
from typing import Optional, Sequence

from clickhouse_connect.driver.client import Client

from ..scoring.fields import declared
from ..scoring.pipeline import ScoredTurn
from .replays import ReplayGuard

TURN_COLUMNS = (
    "event_id", "conversation_id", "turn_index", "role", "ts", "app",
    "model_provider", "model_name", "model_version", "prompt_template_id", "prompt_version",
    "user_ref", "metadata", "text_chars",
)  # fmt: skip
# every stored score field, as its scorer declares it (scoring/fields.py)
SCORE_COLUMNS = tuple(f.name for f in declared() if f.column is not None)
COLUMNS = TURN_COLUMNS + SCORE_COLUMNS + ("scorer_version", "scored_at", "kafka_partition", "kafka_offset")


def to_row(s: ScoredTurn) -> list:
    t, f = s.turn, s.scores
    return [
        t.event_id, t.conversation_id, t.turn_index, t.role, t.timestamp, t.app,
        t.model.provider, t.model.name, t.model.version,
        t.prompt.template_id if t.prompt else "", (t.prompt.version or "") if t.prompt else "",
        t.user_ref or "", json.dumps(t.metadata, ensure_ascii=False) if t.metadata else "",
        len(t.text), *(f[c] for c in SCORE_COLUMNS),
        s.scorer_version, s.scored_at, s.partition, s.offset,
    ]  # fmt: skip


def dedup_token(rows: Sequence[ScoredTurn]) -> str:
    h = hashlib.sha1()
    for s in rows:
        h.update(s.turn.event_id.encode())
    return h.hexdigest()


class TurnStore:
    """Writes batches of scored turns, each turn once (see the module docstring); returns how many it gave
    ClickHouse. `guard` is shared by the stores of one worker process, across reconnects."""

    table = "turns"

    def __init__(self, client: Client, max_rows: int = 10000, guard: Optional[ReplayGuard] = None):
        self.client = client
        self.max_rows = max_rows
        self.guard = guard if guard is not None else ReplayGuard()

    def already_stored(self, rows: Sequence[ScoredTurn]) -> set[str]:
        """The event ids of `rows` the table holds, looked up by its sorting key (app, model, version, event_id)."""
        found: set[str] = set()
        keys = sorted({(s.turn.app, s.turn.model.name, s.turn.model.version, s.turn.event_id) for s in rows})
        for i in range(0, len(keys), 1000):
            found.update(r[0] for r in self.client.query(
                f"SELECT DISTINCT toString(event_id) FROM {self.table} "
                "WHERE (app, model_name, model_version, event_id) IN %(keys)s",
                parameters={"keys": keys[i : i + 1000]},
            ).result_rows)
        return found

    def write(self, rows: Sequence[ScoredTurn]) -> int:
        suspects = self.guard.to_check(rows)
        copies = self.already_stored(suspects) if suspects else set()
        new = [s for s in rows if s.turn.event_id not in copies] if copies else list(rows)
        self._insert(new)
        self.guard.stored(rows, copies)
        return len(new)

    def _insert(self, rows: Sequence[ScoredTurn]) -> None:
        for i in range(0, len(rows), self.max_rows):
            chunk = rows[i : i + self.max_rows]
            self.client.insert(
                self.table,
                [to_row(s) for s in chunk],
                column_names=COLUMNS,
                settings={"insert_deduplication_token": dedup_token(chunk)},
            )
