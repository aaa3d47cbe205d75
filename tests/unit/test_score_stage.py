"""The score stage without Kafka: one batch of raw records → rows by table and messages by topic role."""

from __future__ import annotations

import json

from convmon.alerting.rules import RuleSet
from convmon.batch import BatchProcessor, RawRecord
from convmon.ingest import TurnDecoder
from convmon.scoring.pii import PiiScorer
from convmon.scoring.pipeline import ScoringPipeline
from convmon.wire import decode_alert_record, decode_signals
from tests.unit.test_alert_rules import FixedScores
from tests.unit.test_contract import VALID


def batch():
    good = [dict(VALID, event_id=f"00000000-0000-4000-8000-00000000000{i}", turn_index=i, role="user",
                 conversation_id=f"conv-{i % 2}") for i in range(4)]
    records = [RawRecord(json.dumps(d).encode(), d["conversation_id"].encode(), "chat.turns", 1, 10 + i)
               for i, d in enumerate(good)]
    records.insert(2, RawRecord(b"{not json", b"k", "chat.turns", 1, 99))
    processor = BatchProcessor(TurnDecoder(), ScoringPipeline([PiiScorer(), FixedScores(toxicity=0.97, jailbreak=0.1,
                                                                                       sentiment=-0.2)]))
    return processor.process(records)


def test_every_record_becomes_a_stored_row_and_the_bad_one_a_dead_letter():
    rows = batch().rows()
    assert len(rows["turns"]) == 4 and len(rows["dead_letters"]) == 1
    assert rows["dead_letters"][0].reason == "invalid_json" and rows["dead_letters"][0].source == "chat.turns/1@99"


def test_the_batch_sends_scores_signals_alert_candidates_and_its_dead_letter():
    out = batch().messages(RuleSet.load(), {"toxicity": 0.9, "jailbreak": 0.8}, {}, dlq_bytes=1 << 20)
    assert [k for k, _, _ in out["scores"]] == [b"conv-0", b"conv-1", b"conv-0", b"conv-1"]  # by conversation
    (record,) = out["signals"]  # one model version in the batch: one record
    signals = decode_signals(record[1])
    assert all(s.toxic and not s.jailbreak_hit for s in signals) and len(signals) == 4
    alerts = [decode_alert_record(v) for _, v, _ in out["alerts"]]
    assert {a.kind for a in alerts} == {"toxic_turn"} and len(alerts) == 4
    ((key, value, headers),) = out["dlq"]
    assert value == b"{not json" and headers["convmon.reason"] == b"invalid_json"


def test_a_valid_turn_without_a_key_is_rekeyed_by_its_conversation_and_not_scored():
    good = json.dumps({**VALID, "conversation_id": "conv-9"}).encode()
    processor = BatchProcessor(TurnDecoder(), ScoringPipeline([PiiScorer()]), rekey=True)
    out = processor.process([RawRecord(good, None, "chat.turns", 2, 5), RawRecord(b"{bad", None, "chat.turns", 2, 6),
                             RawRecord(good, b"conv-9", "chat.turns", 2, 7)])
    assert [(r.key, r.value) for r in out.rekeyed] == [(b"conv-9", good)]  # the raw id: the producer's key
    assert [s.offset for s in out.scored] == [7] and [d.reason for d in out.dead] == ["invalid_json"]
    assert out.messages(RuleSet.load(), {}, {}, 1 << 20)["turns"] == [(b"conv-9", good, None)]
