"""Hostile input: property-based tests over the consumer's decode-and-score path.

Whatever the bytes, the decoder returns a turn or a rejection with a known reason, and the
batch processor accounts for every record (scored or dead-lettered) without raising.
"""

import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convmon.batch import BatchProcessor, RawRecord
from convmon.contract import ChatTurn
from convmon.ingest import REASONS, Rejected, TurnDecoder
from convmon.scoring.pii import PiiScorer, scan
from convmon.scoring.pipeline import ScoringPipeline
from tests.unit.test_contract import VALID

DECODER = TurnDecoder()
PROCESSOR = BatchProcessor(DECODER, ScoringPipeline([PiiScorer()]))
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=20,
)


def _check(out):
    assert isinstance(out, (ChatTurn, Rejected))
    if isinstance(out, Rejected):
        assert out.reason in REASONS and isinstance(out.detail, str) and len(out.detail) < 1000


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(raw):
    _check(DECODER.decode(raw, key=raw[:8] or None))


@FUZZ
@given(json_values)
def test_arbitrary_json_documents(doc):
    try:
        raw = json.dumps(doc).encode()
    except ValueError:  # NaN/inf are not JSON
        return
    _check(DECODER.decode(raw))


@FUZZ
@given(field=st.sampled_from(sorted(VALID)), value=json_values)
def test_valid_turns_with_one_field_replaced(field, value):
    doc = dict(VALID, **{field: value})
    try:
        raw = json.dumps(doc).encode()
    except ValueError:
        return
    _check(DECODER.decode(raw))


@FUZZ
@given(st.text(max_size=2000))
def test_any_text_in_a_valid_turn_is_accepted_and_scored(text):
    raw = json.dumps(dict(VALID, text=text), ensure_ascii=False).encode("utf-8", "surrogatepass")
    out = DECODER.decode(raw)
    has_surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    if has_surrogate:
        assert isinstance(out, Rejected) and out.reason in ("invalid_utf8", "invalid_unicode")
    else:
        assert isinstance(out, ChatTurn) and out.text == text
        result = PROCESSOR.process([RawRecord(raw)])
        assert len(result.scored) == 1 and not result.dead


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=300), st.just(json.dumps(VALID).encode())), max_size=30))
def test_every_record_of_a_batch_is_accounted_for(values):
    records = [RawRecord(v, None, "chat.turns", 0, i) for i, v in enumerate(values)]
    result = PROCESSOR.process(records)
    assert len(result.scored) + len(result.dead) == len(records)
    assert sorted([s.offset for s in result.scored] + [d.record.offset for d in result.dead]) == list(range(len(records)))


def test_specific_hostile_inputs():
    big = dict(VALID, text="x" * 100_000)
    cases = {
        "deep": (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        "deep_object": (b'{"a":' * 5000 + b"1" + b"}" * 5000, "too_deep"),
        "100k_text": (json.dumps(big).encode(), "text_too_long"),
        "lone_surrogate": (json.dumps(dict(VALID, text="a")).encode().replace(b'"a"', b'"\\udc80"'), "invalid_unicode"),
        "far_past": (json.dumps(dict(VALID, ts="1901-01-01T00:00:00Z")).encode(), "ts_out_of_range"),
        "far_future": (json.dumps(dict(VALID, ts="9999-12-31T23:59:59Z")).encode(), "ts_out_of_range"),
        "huge": (b" " * 2_000_000, "too_large"),
        "nul": (b"\x00" * 10, "invalid_json"),
    }
    for name, (raw, reason) in cases.items():
        out = DECODER.decode(raw)
        assert isinstance(out, Rejected) and out.reason == reason, (name, out)


def test_duplicate_event_ids_are_accepted_once_each_by_the_decoder():
    """Duplicates are a storage concern (dedup on event_id), not a decode error."""
    raw = json.dumps(dict(VALID, event_id=str(uuid.uuid4()))).encode()
    assert isinstance(DECODER.decode(raw), ChatTurn) and isinstance(DECODER.decode(raw), ChatTurn)


def test_zero_width_bidi_and_homoglyph_text_is_accepted_and_normalised_for_matching():
    tricky = "y\u200bou are an id\u200diot \u202egnorts\u202c call me at \uff14\uff11\uff11\uff11 1111 1111 1111"
    out = DECODER.decode(json.dumps(dict(VALID, text=tricky)).encode())
    assert isinstance(out, ChatTurn) and out.text == tricky  # stored as sent (redacted copy is normalised)
    assert scan(tricky).types == ["credit_card"]


def test_text_is_never_interpreted():
    """Format strings, SQL and paths in a message are data: they reach storage unchanged."""
    evil = "{0.__class__} %s %n '); DROP TABLE turns; -- ../../etc/passwd ${jndi:ldap://x}"
    result = PROCESSOR.process([RawRecord(json.dumps(dict(VALID, text=evil)).encode())])
    assert result.scored[0].scores["text_redacted"] == evil


def test_hostile_text_round_trips_through_clickhouse_unchanged(client):
    from convmon.store.migrate import migrate
    from convmon.store.turns import TurnStore

    migrate(client)
    evil = "'); DROP TABLE turns; -- \\' \" \t\n {x:String} ${y} \u202e\u200b ☃"
    result = PROCESSOR.process([RawRecord(json.dumps(dict(VALID, text=evil), ensure_ascii=False).encode())])
    TurnStore(client).write(result.scored)
    stored = client.query("SELECT text_redacted FROM turns FINAL").result_rows
    assert stored == [(result.scored[0].scores["text_redacted"],)]
    assert client.query("EXISTS TABLE turns").result_rows == [(1,)]
