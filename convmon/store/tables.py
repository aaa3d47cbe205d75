"""Typed rows: one class per ClickHouse table written as plain rows. A row class's fields are the table's
columns, in order (schemas/clickhouse/); `RowStore` writes a batch of one class. The `turns` and `alerts`
tables have their own stores (store/turns.py, store/alerts.py): their rows are built from a scored turn
and an alert decision."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import ClassVar, Optional, Sequence
from uuid import UUID


@dataclass(frozen=True, slots=True)
class WindowRow:
    """One model version's (app, model, version, role) one-minute aggregate."""

    TABLE: ClassVar[str] = "window_stats"
    window_start: datetime
    app: str
    model_name: str
    model_version: str
    role: str
    turns: int
    toxicity_mean: float
    toxicity_p95: float
    sentiment_mean: float
    jailbreak_hits: int
    policy_hits: int
    pii_turns: int
    drift_score: Optional[float]
    unsupported_language_turns: int


@dataclass(frozen=True, slots=True)
class DriftReportRow:
    TABLE: ClassVar[str] = "drift_reports"
    report_id: UUID
    ts: datetime
    kind: str  # window | version_change
    app: str
    model_name: str
    model_version: str
    role: str
    reference_version: str
    n_live: int
    n_reference: int
    centroid_distance: float
    centroid_threshold: float
    mmd: float
    mmd_threshold: float
    drifted: int
    details: str  # JSON


@dataclass(frozen=True, slots=True)
class BaselineRow:
    """A pinned drift reference (JSON), so a restarted worker keeps it."""

    TABLE: ClassVar[str] = "drift_baselines"
    app: str
    model_name: str
    model_version: str
    role: str
    pinned_at: datetime
    n: int
    reference: str
    source: str


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """One model version's whole state, as versioned JSON (state/snapshot.py)."""

    TABLE: ClassVar[str] = "model_state_snapshots"
    app: str
    model_name: str
    model_version: str
    role: str
    taken_at: datetime
    turns: int
    state: str


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """A dead-lettered record's reason and origin, never its content."""

    TABLE: ClassVar[str] = "dead_letters"
    ts: datetime
    reason: str
    source: str  # topic/partition@offset
    size_bytes: int


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    """One label from chat.feedback, as stored: pseudonymised ids, redacted note (feedback/contract.py protect)."""

    TABLE: ClassVar[str] = "feedback"
    feedback_id: UUID
    ts: datetime
    event_id: Optional[UUID]
    alert_id: Optional[UUID]
    conversation_id: str  # pseudonym ('' when the label names none)
    signal: str
    verdict: str  # confirmed | false_alarm | missed
    source: str  # oncall | end_user | reviewer
    reporter: str  # pseudonym ('' when none)
    note: str  # redacted
    kafka_partition: int
    kafka_offset: int


ROW_TYPES = {cls.TABLE: cls for cls in (WindowRow, DriftReportRow, BaselineRow, SnapshotRow, DeadLetterRow,
                                        FeedbackRow)}


def columns(row_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(row_type))


class RowStore:
    """Batched insert of typed rows into their table."""

    def __init__(self, client, row_type: type):
        self.client, self.row_type, self.table = client, row_type, row_type.TABLE
        self.columns = columns(row_type)

    def write(self, rows: Sequence) -> int:
        for r in rows:
            if not isinstance(r, self.row_type):
                raise TypeError(f"{self.table} takes {self.row_type.__name__} rows, not {type(r).__name__}")
        if rows:
            self.client.insert(self.table, [[getattr(r, c) for c in self.columns] for r in rows],
                               column_names=self.columns)
        return len(rows)
