"""The JSON Schema and the typed model are one contract: same fields, same decisions."""

import copy
import json
import uuid

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convmon.contract import ChatTurn, json_schema
from convmon.ingest import REASONS, Rejected, TurnDecoder

VALID = {
    "event_id": "4f0c7f0e-0c39-4a1e-9e0f-6a3a2b1c0d9e",
    "conversation_id": "conv-1",
    "turn_index": 3,
    "role": "assistant",
    "text": "Hello! How can I help?",
    "ts": "2026-11-28T17:00:00.123Z",
    "app": "support-bot",
    "model": {"provider": "openai", "name": "gpt-4o-mini", "version": "2024-07-18"},
    "prompt": {"template_id": "support-v2", "version": "7"},
    "user_ref": "u-93",
    "metadata": {"region": "eu", "tags": ["a", 1]},
}

_VALIDATOR = jsonschema.Draft202012Validator(json_schema(), format_checker=jsonschema.FormatChecker())


def schema_accepts(doc) -> bool:
    return _VALIDATOR.is_valid(doc)


def model_accepts(doc) -> bool:
    try:
        ChatTurn.model_validate(doc)
        return True
    except Exception:
        return False


def _mutations():
    """(name, document) pairs: valid variants and one violation each."""
    yield "valid", VALID
    minimal = {k: v for k, v in VALID.items() if k not in ("prompt", "user_ref", "metadata")}
    yield "minimal", minimal
    for k in VALID:
        d = copy.deepcopy(VALID)
        del d[k]
        yield f"missing {k}", d
    for k in ("provider", "name", "version"):
        d = copy.deepcopy(VALID)
        del d["model"][k]
        yield f"missing model.{k}", d
        d = copy.deepcopy(VALID)
        d["model"][k] = ""
        yield f"empty model.{k}", d
    bad_values = {
        "event_id": ["not-a-uuid", 12345, "", "4f0c7f0e-0c39-4a1e-9e0f-6a3a2b1c0d9"],
        "conversation_id": ["", 7, None, "x" * 257],
        "turn_index": [-1, 1.5, "3", True, None, 1_000_001],
        "role": ["bot", "USER", "", None],
        "text": [None, 5, ["a"]],
        "ts": ["2026-11-28", "2026-11-28T17:00:00", "yesterday", 1732813200, "2026-13-28T17:00:00Z"],
        "app": ["", None, 3],
        "model": ["gpt", None, {"provider": "a", "name": "b", "version": "c", "extra": 1}],
        "prompt": [{"version": "1"}, "p", {"template_id": "t", "version": 2}],
        "user_ref": [5, "u" * 257],
        "metadata": ["x", [1], 3],
    }
    for k, values in bad_values.items():
        for v in values:
            d = copy.deepcopy(VALID)
            d[k] = v
            yield f"{k}={v!r:.30}", d
    d = copy.deepcopy(VALID)
    d["unexpected"] = 1
    yield "extra field", d
    for v in (0.0, 3.0, 1e2, 2.5, -1.0):  # JSON Schema: a number with zero fraction is an integer
        d = copy.deepcopy(VALID)
        d["turn_index"] = v
        yield f"turn_index={v}", d
    for ts in ("2026-11-28T17:00:00+02:00", "2026-11-28t17:00:00z", "2026-11-28T17:00:00.5-05:30", "2026-11-28 17:00:00Z"):
        d = copy.deepcopy(VALID)
        d["ts"] = ts
        yield f"ts={ts}", d
    d = copy.deepcopy(VALID)
    d["event_id"] = uuid.uuid4().hex  # the contract wants the canonical dashed form
    yield "uuid without dashes", d


@pytest.mark.parametrize("name,doc", list(_mutations()), ids=lambda x: x if isinstance(x, str) else "")
def test_schema_and_model_agree(name, doc):
    assert schema_accepts(doc) == model_accepts(doc), name


def test_valid_documents_are_accepted_and_violations_rejected():
    decisions = {name: model_accepts(doc) for name, doc in _mutations()}
    assert decisions["valid"] and decisions["minimal"]
    assert decisions["ts=2026-11-28T17:00:00+02:00"]
    assert not decisions["missing text"] and not decisions["role='bot'"] and not decisions["extra field"]


def test_same_fields_and_required_sets():
    schema = json_schema()
    assert set(schema["properties"]) == set(ChatTurn.model_fields)
    required_in_model = {n for n, f in ChatTurn.model_fields.items() if f.is_required()}
    assert set(schema["required"]) == required_in_model
    assert set(schema["properties"]["role"]["enum"]) == {"user", "assistant", "system", "tool"}


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(sorted(VALID)), value=_json_values)
def test_agreement_on_random_field_values(field, value):
    doc = copy.deepcopy(VALID)
    doc[field] = value
    assert schema_accepts(doc) == model_accepts(doc)


# --- the decoder's rejection reasons ---------------------------------------------------------------
def _raw(doc) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "raw,reason",
    [
        (b"", "empty"),
        (b"x" * 2_000_000, "too_large"),
        (b"\xff\xfe{}", "invalid_utf8"),
        (b"{not json", "invalid_json"),
        (b'{"text": "a", "text": "b"}', "invalid_json"),
        (b"[" * 100 + b"]" * 100, "too_deep"),
        (b'"just a string"', "not_an_object"),
        (b"[1, 2]", "not_an_object"),
        (_raw({**VALID, "text": "a\ud800b"}), "invalid_unicode"),
        (_raw({**VALID, "role": "bot"}), "schema_violation"),
        (_raw({**VALID, "text": "x" * 70000}), "text_too_long"),
        (_raw({**VALID, "ts": "1970-01-01T00:00:00Z"}), "ts_out_of_range"),
        (_raw({**VALID, "ts": "2999-01-01T00:00:00Z"}), "ts_out_of_range"),
    ],
)
def test_decoder_rejects_with_reason(raw, reason):
    out = TurnDecoder().decode(raw)
    assert isinstance(out, Rejected), out
    assert out.reason == reason
    assert out.reason in REASONS


def test_decoder_accepts_valid_and_checks_key():
    d = TurnDecoder()
    turn = d.decode(_raw(VALID), key=b"conv-1")
    assert isinstance(turn, ChatTurn) and turn.text == VALID["text"]
    assert isinstance(d.decode(_raw(VALID), key=None), ChatTurn)
    out = d.decode(_raw(VALID), key=b"other-conversation")
    assert isinstance(out, Rejected) and out.reason == "key_mismatch"


def test_rejection_detail_never_quotes_the_text():
    secret = "my password is hunter2"
    out = TurnDecoder().decode(_raw({**VALID, "text": secret, "role": 42}))
    assert isinstance(out, Rejected) and secret not in out.detail and "hunter2" not in out.detail


def test_publishing_the_same_turn_again_keeps_its_event_id_and_ts():
    """Security review finding 10: complete() minted a new UUID (and ts) on every retry, so a retried
    publish was stored as a second turn. The fill-ins are written into the caller's dict."""
    from convmon.produce import complete

    turn = {"conversation_id": "c-42", "turn_index": 0, "role": "user", "text": "hi", "app": "support-bot",
            "model": {"provider": "openai", "name": "gpt-4o-mini", "version": "2024-07-18"}}
    first = complete(turn)
    again = complete(turn)  # the caller retries after a send error
    assert first["event_id"] == again["event_id"] == turn["event_id"]
    assert first["ts"] == again["ts"] == turn["ts"]
    given = dict(turn, event_id="5b4f1d0e-8a39-4c2e-9a51-2f0d5e1b7c11")
    assert complete(given)["event_id"] == "5b4f1d0e-8a39-4c2e-9a51-2f0d5e1b7c11"  # a caller's id is kept


def test_dlq_detail_never_echoes_unknown_field_names_and_is_capped():
    """Security review finding 7: the detail repeated unknown field names in full; a 2 KB header carried an
    API key. Only contract field names appear, and the header is capped."""
    from convmon.batch import DeadLetter, RawRecord
    from convmon.ingest import DETAIL_MAX_BYTES, TurnDecoder

    secret_name = "sk-live-" + "A1b2C3d4" * 250
    doc = {"event_id": "5b4f1d0e-8a39-4c2e-9a51-2f0d5e1b7c11", "conversation_id": "c", "turn_index": 0,
           "role": "user", "text": "hi", "ts": "2026-11-28T12:00:00Z", "app": "a",
           "model": {"provider": "p", "name": "m", "version": "v", secret_name: 1}, secret_name: 2}
    r = TurnDecoder().decode(json.dumps(doc).encode())
    assert r.reason == "schema_violation" and "sk-live" not in r.detail and "model." in r.detail
    dup = TurnDecoder().decode(b'{"%s": 1, "%s": 2}' % (secret_name.encode(), secret_name.encode()))
    assert dup.reason == "invalid_json" and "sk-live" not in dup.detail
    headers = DeadLetter(RawRecord(b"x"), "schema_violation", "d" * 5000).headers()
    assert len(headers["convmon.detail"]) <= DETAIL_MAX_BYTES


def test_a_dead_letter_that_cannot_fit_the_dlq_keeps_its_reason_and_points_at_the_original():
    from convmon.batch import DeadLetter, RawRecord

    d = DeadLetter(RawRecord(b"v" * 2000, key=b"c-1", topic="chat.turns", partition=3, offset=17), "too_large", "x")
    key, value, headers = d.message(max_bytes=100_000)
    assert (key, value) == (b"c-1", b"v" * 2000) and "convmon.value_omitted" not in headers
    key, value, headers = d.message(max_bytes=1500)
    assert value == b"" and headers["convmon.value_omitted"] == b"2000"
    assert headers["convmon.reason"] == b"too_large" and headers["convmon.source"] == b"chat.turns/3@17"


@pytest.mark.parametrize("field,bad", [("app", "support\\"), ("app", "x' OR 1=1 --"), ("conversation_id", "c 42"),
                                       ("conversation_id", "a,b"), ("conversation_id", "c-42\n"),
                                       ("model.version", "v{1}"), ("model.name", "gpt\u00a04")])
def test_identifiers_that_reach_sql_and_labels_have_a_documented_charset(field, bad):
    """Security review finding 2: an app ending in a backslash (accepted before) broke every dashboard panel."""
    doc = copy.deepcopy(VALID)
    if "." in field:
        outer, inner = field.split(".")
        doc[outer][inner] = bad
    else:
        doc[field] = bad
    assert not schema_accepts(doc) and not model_accepts(doc)


@pytest.mark.parametrize("ok", ["support-bot", "gpt-4o-mini", "meta-llama/Llama-3.1-8B-Instruct", "claude@20240620",
                                "slack:T123:C456", "2024-07-18", "conv_9f8e+1=#2"])
def test_common_identifiers_are_accepted(ok):
    doc = copy.deepcopy(VALID)
    doc["app"] = doc["conversation_id"] = doc["model"]["name"] = doc["model"]["version"] = ok
    assert schema_accepts(doc) and model_accepts(doc)


def test_produce_names_the_line_the_field_and_the_allowed_values_and_refuses_an_empty_file(tmp_path):
    """Issue 12: a contract violation said "(role)" only, and an empty file was accepted silently.
    Both fail before any connection to Kafka is made."""
    from click.testing import CliRunner

    from convmon.cli import main

    good = dict(VALID)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(good) + "\n" + json.dumps(dict(good, role="bot")) + "\n")
    r = CliRunner().invoke(main, ["produce", str(bad)])
    assert r.exit_code == 1 and f"{bad}:2:" in r.output and "role" in r.output and "'assistant'" in r.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    r = CliRunner().invoke(main, ["produce", str(empty)])
    assert r.exit_code == 1 and "no turns" in r.output
