"""The feedback stage: a batch of chat.feedback records → `feedback` rows and dead letters. Plain code, no
Kafka: agents/feedback.py feeds it and writes what it returns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Sequence

from ..batch import DeadLetter, RawRecord
from ..ingest import Rejected
from ..store.tables import FeedbackRow
from .contract import Feedback, FeedbackDecoder, protect


@dataclass
class FeedbackBatch:
    rows: list[FeedbackRow] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


def to_row(fb: Feedback, partition: int = 0, offset: int = 0) -> FeedbackRow:
    """The stored row of a protected label."""
    return FeedbackRow(uuid.UUID(fb.feedback_id), fb.timestamp, fb.event_id and uuid.UUID(fb.event_id),
                       fb.alert_id and uuid.UUID(fb.alert_id), fb.conversation_id or "", fb.signal, fb.verdict,
                       fb.source, fb.reporter or "", fb.note or "", partition, offset)


class FeedbackStage:
    def __init__(self, decoder: FeedbackDecoder, pseudonym_key: bytes):
        self.decoder, self.key = decoder, pseudonym_key

    def process(self, records: Sequence[RawRecord]) -> FeedbackBatch:
        out = FeedbackBatch()
        for rec in records:
            try:
                decoded = self.decoder.decode(rec.value, rec.key)
                if not isinstance(decoded, Rejected):
                    decoded = protect(decoded, self.key)
            except Exception as e:  # a decoder bug must not stop the stream
                decoded = Rejected("internal_error", f"decoder raised {type(e).__name__}")
            if isinstance(decoded, Rejected):
                out.dead.append(DeadLetter(rec, decoded.reason, decoded.detail))
            else:
                out.rows.append(to_row(decoded, rec.partition, rec.offset))
        return out

    def rows(self, batch: FeedbackBatch) -> dict[str, list]:
        """What a batch stores, by table."""
        return {"feedback": batch.rows, "dead_letters": [d.row() for d in batch.dead]}
