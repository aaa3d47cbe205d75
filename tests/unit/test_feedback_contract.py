"""The feedback contract: schema and model agree; a bad record is dead-lettered with its reason; what is
stored is pseudonymised and redacted; a label is stored once per feedback_id."""

import copy
import json
import uuid

import jsonschema
import pytest

from convmon.batch import RawRecord
from convmon.feedback.contract import Feedback, FeedbackDecoder, json_schema
from convmon.feedback.stage import FeedbackStage
from convmon.ingest import REASONS
from convmon.privacy import pseudonym
from convmon.store.migrate import migrate
from convmon.store.tables import FeedbackRow, RowStore

KEY = b"k" * 32
VALID = {
    "feedback_id": "9b2d7c1e-5f3a-4c2b-8e1d-0a9f8e7d6c5b",
    "event_id": "4f0c7f0e-0c39-4a1e-9e0f-6a3a2b1c0d9e",
    "conversation_id": "c-42",
    "signal": "toxicity",
    "verdict": "false_alarm",
    "source": "end_user",
    "reporter": "u-93",
    "note": "not rude at all, write to me at jane.doe@example.com",
    "ts": "2026-11-28T17:05:00Z",
}
_VALIDATOR = jsonschema.Draft202012Validator(json_schema(), format_checker=jsonschema.FormatChecker())


def _mutations():
    yield "valid", VALID, True
    on_alert = {"feedback_id": VALID["feedback_id"], "alert_id": str(uuid.uuid4()), "signal": "policy:climate_science",
                "verdict": "confirmed", "source": "oncall", "ts": VALID["ts"]}
    yield "an alert label", on_alert, True
    yield "a miss", dict(VALID, verdict="missed"), True
    yield "a miss of an alert only", dict(on_alert, verdict="missed"), False
    yield "names nothing", {k: v for k, v in VALID.items() if k != "event_id"}, False
    yield "null event_id, no alert", dict(VALID, event_id=None), False
    for k in ("feedback_id", "signal", "verdict", "source", "ts"):
        yield f"missing {k}", {x: v for x, v in VALID.items() if x != k}, False
    bad = {"feedback_id": ["x", 3], "event_id": ["nope"], "signal": ["toxic", "policy:", "policy:a b", "toxicity\n"],
           "verdict": ["yes", None], "source": ["pager"], "ts": ["2026-11-28", 5], "conversation_id": ["a b", ""],
           "reporter": [5, "r" * 257], "note": [7]}
    for k, values in bad.items():
        for v in values:
            yield f"{k}={v!r:.20}", dict(VALID, **{k: v}), False
    yield "extra field", dict(VALID, extra=1), False
    for s in ("jailbreak", "sentiment_shift", "embedding_drift", "policy:medical-advice_v2"):
        yield f"signal {s}", dict(VALID, signal=s), True


CASES = list(_mutations())


@pytest.mark.parametrize("name,doc,ok", CASES, ids=[c[0] for c in CASES])
def test_schema_and_model_agree(name, doc, ok):
    try:
        Feedback.model_validate(copy.deepcopy(doc))
        model = True
    except Exception:
        model = False
    assert (_VALIDATOR.is_valid(doc), model) == (ok, ok), name


def test_schema_and_model_have_the_same_fields():
    assert set(json_schema()["properties"]) == set(Feedback.model_fields)
    assert set(json_schema()["required"]) == {n for n, f in Feedback.model_fields.items() if f.is_required()}


def records(*values, key=None):
    return [RawRecord(v if isinstance(v, bytes) else json.dumps(v).encode(), key, "chat.feedback", 0, i)
            for i, v in enumerate(values)]


def test_a_bad_feedback_record_goes_to_the_dlq_with_its_reason():
    stage = FeedbackStage(FeedbackDecoder(max_note_chars=100), KEY)
    bad = {b"": "empty", b"{nope": "invalid_json", b"[1]": "not_an_object", b"\xff": "invalid_utf8",
           json.dumps(dict(VALID, verdict="maybe")).encode(): "schema_violation",
           json.dumps(dict(VALID, note="x" * 101)).encode(): "note_too_long",
           json.dumps(dict(VALID, ts="1999-01-01T00:00:00Z")).encode(): "ts_out_of_range"}
    out = stage.process(records(*bad, VALID))
    assert [d.reason for d in out.dead] == list(bad.values())
    assert set(bad.values()) <= set(REASONS)
    assert len(out.rows) == 1  # the good record of the same batch is kept
    detail = out.dead[4].message(1 << 20)[2]
    assert detail["convmon.reason"] == b"schema_violation" and b"verdict" in detail["convmon.detail"]
    assert detail["convmon.source"] == b"chat.feedback/0@4"
    rows = stage.rows(out)
    assert len(rows["dead_letters"]) == len(bad) and rows["feedback"] == out.rows


def test_a_key_that_is_not_the_conversation_is_rejected():
    stage = FeedbackStage(FeedbackDecoder(), KEY)
    assert [d.reason for d in stage.process(records(VALID, key=b"other")).dead] == ["key_mismatch"]
    assert len(stage.process(records(VALID, key=b"c-42")).rows) == 1


def test_the_stored_label_holds_pseudonyms_and_a_redacted_note_never_the_raw_values():
    (row,) = FeedbackStage(FeedbackDecoder(), KEY).process(records(VALID)).rows
    assert row.conversation_id == pseudonym(KEY, "c-42") and row.reporter == pseudonym(KEY, "u-93")
    assert "jane.doe" not in row.note and "[EMAIL]" in row.note
    assert str(row.event_id) == VALID["event_id"] and row.alert_id is None and row.verdict == "false_alarm"


def test_a_label_published_twice_is_stored_once(client):
    migrate(client)
    stage = FeedbackStage(FeedbackDecoder(), KEY)
    rows = stage.process(records(VALID, VALID)).rows
    RowStore(client, FeedbackRow).write(rows)
    RowStore(client, FeedbackRow).write(rows)
    assert client.query("SELECT count() FROM feedback FINAL").result_rows[0][0] == 1


def test_encode_keys_by_conversation_else_alert():
    fb = Feedback.model_validate(VALID)
    key, value = fb.encode()
    assert key == b"c-42" and json.loads(value) == VALID
    alert_id = str(uuid.uuid4())
    on_alert = Feedback.model_validate({**{k: v for k, v in VALID.items() if k not in ("conversation_id", "event_id")},
                                        "alert_id": alert_id})
    assert on_alert.encode()[0] == alert_id.encode()


def test_every_dead_letter_reason_is_documented():
    from pathlib import Path

    dlq = (Path(__file__).resolve().parents[2] / "schemas/dlq.md").read_text()
    assert [r for r in REASONS if f"`{r}`" not in dlq] == []
