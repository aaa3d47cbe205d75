"""The records on convmon's topics match their JSON Schemas (schemas/), and read back as written."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from convmon.alerting.model import Alert
from convmon.alerting.rules import RuleSet
from convmon.scoring.pii import PiiScorer
from convmon.scoring.pipeline import ScoringPipeline
from convmon.wire import ForgetIncident, Signal, decode_alert_record, decode_signals, encode_alert, encode_signals
from tests.unit.test_store import make_turns

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def validator(name: str):
    schema = json.loads((SCHEMAS / name).read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def scored_turns(n=6):
    """Scored turns as the worker makes them: PII from the real scorer, model scores filled in as a suite would."""
    out = ScoringPipeline([PiiScorer()]).score(make_turns(n))
    rng = np.random.default_rng(1)
    for i, s in enumerate(out):
        s.scores.update(toxicity=float(i) / n, sentiment=-0.5 + 0.2 * i, sentiment_label="neutral",
                        jailbreak=0.9 if i == 2 else 0.1, policy_scores={"climate_science": 0.2},
                        policy_hits=["climate_science"] if i == 3 else [],
                        toxicity_hit=float(i) / n >= 0.5, jailbreak_hit=i == 2)  # the suite's decisions
        s.extras["embedding"] = rng.normal(size=384).astype(np.float32)
    return out


def test_score_events_match_their_schema():
    v = validator("score_event.schema.json")
    for s in scored_turns():
        v.validate(json.loads(s.event_bytes()))
    unscored = ScoringPipeline([PiiScorer()]).score(make_turns(2))  # model suite off: scores are null
    for s in unscored:
        v.validate(json.loads(s.event_bytes()))


def test_a_score_event_that_breaks_the_contract_is_caught_by_the_schema():
    v = validator("score_event.schema.json")
    e = json.loads(scored_turns(1)[0].event_bytes())
    for broken in ({**e, "toxicity": 1.5}, {k: x for k, x in e.items() if k != "scorer_version"},
                   {**e, "pii": ["home_address"]}):
        assert not v.is_valid(broken)


def test_signals_match_their_schema_and_read_back_as_written():
    """One record per model-version key and batch, each signal back as written, with the record's position."""
    v = validator("signal.schema.json")
    turns = scored_turns()
    sigs = [Signal.from_scored(s) for s in turns]
    sigs[2] = dataclasses.replace(sigs[2], key=("app-b", "m", "v2", "user"))
    keys = list(dict.fromkeys(s.key for s in sigs))
    assert len(keys) == 3  # user and assistant turns of one version, and another app
    records = encode_signals(sigs)
    assert [tuple(k.decode().split("|")) for k, _ in records] == keys
    back = []
    for offset, (_, value) in enumerate(records):
        v.validate(json.loads(value))
        back += decode_signals(value, partition=3, offset=100 + offset)
    assert all((b.partition, b.offset) == (3, 100 + keys.index(b.key)) for b in back)
    by_id = {b.event_id: b for b in back}
    assert [b.event_id for b in back if b.key == keys[0]] == [s.event_id for s in sigs if s.key == keys[0]]  # in order
    for sig, s in zip(sigs, turns):
        b = by_id[sig.event_id]
        assert (b.key, b.event_id, b.toxicity, b.toxic, b.jailbreak_hit, b.policy_hit, b.pii) == \
            (sig.key, sig.event_id, sig.toxicity, sig.toxic, sig.jailbreak_hit, sig.policy_hit, sig.pii)
        np.testing.assert_allclose(b.embedding.astype(np.float32), s.extras["embedding"], atol=2e-2)
    decisions = [Signal.from_scored(s) for s in scored_turns()]
    assert [d.toxic for d in decisions] == [False, False, False, True, True, True]  # the suite's own decision
    assert [d.jailbreak_hit for d in decisions] == [False, False, True, False, False, False]


def test_signals_written_by_an_earlier_release_are_still_read():
    legacy = {"k": ["a", "m", "v1", "user"], "ts": 1.8e9, "id": "e1", "tox": 0.2, "sent": 0.1, "jb": 0.0,
              "tox_hit": False, "jb_hit": False, "pol_hit": True, "pii": False, "emb": None}
    (s,) = decode_signals(json.dumps(legacy).encode())
    assert (s.key, s.event_id, s.toxicity, s.policy_hit, s.embedding) == (("a", "m", "v1", "user"), "e1", 0.2, True, None)
    v1 = {"v": 1, "key": ["a", "m", "v1", "user"], "ts": 1.8e9, "event_id": "e2", "toxicity": 0.3, "sentiment": 0.1,
          "jailbreak": 0.0, "toxic": False, "jailbreak_hit": False, "policy_hit": False, "pii": True, "embedding": None}
    (s,) = decode_signals(json.dumps(v1).encode(), 1, 7)  # one signal per record, as the previous release wrote
    assert (s.key, s.event_id, s.pii, s.partition, s.offset) == (("a", "m", "v1", "user"), "e2", True, 1, 7)


def test_alert_records_match_their_schema_and_read_back_as_written():
    v = validator("alert.schema.json")
    rules = RuleSet.load()
    a = rules.make_alert("toxic_turn", {"app": "a", "model_name": "m", "model_version": "v1", "role": "user",
                                        "conversation_id": "c-7", "turn_index": 4}, "toxic turn", {"score": 0.97}, "e1")
    key, value = encode_alert(a)
    v.validate(json.loads(value))
    back = decode_alert_record(value)
    assert isinstance(back, Alert) and back.to_dict() == a.to_dict() and key == a.dedup_key.encode()

    key, value = ForgetIncident("k1", 1.8e9).encode()
    v.validate(json.loads(value))
    assert decode_alert_record(value) == ForgetIncident("k1", 1.8e9) and key == b"k1"


@pytest.mark.parametrize("field,value", [("kind", "made_up"), ("severity", "loud"), ("alert_id", "not-a-uuid")])
def test_an_alert_record_outside_the_contract_is_caught_by_the_schema(field, value):
    a = Alert(kind="toxic_turn", severity="warning", summary="s", dedup_key="k")
    d = json.loads(encode_alert(a)[1])
    assert validator("alert.schema.json").is_valid(d)
    assert not validator("alert.schema.json").is_valid({**d, field: value})


def test_the_score_event_schema_is_the_one_the_scorers_declare():
    """scoring/fields.py is the one home of a score: the committed schema is generated from it (`make schemas`)."""
    from convmon.scoring.fields import render

    assert (SCHEMAS / "score_event.schema.json").read_text() == render(), "run `make schemas` and commit the result"


def test_every_declared_score_field_is_a_column_of_turns_with_its_declared_type(client):
    from convmon.scoring.fields import declared
    from convmon.store.migrate import migrate

    migrate(client)
    def plain(t: str) -> str:  # ClickHouse spreads a named Tuple over lines
        return re.sub(r"\s+", " ", t).replace("( ", "(").replace(" )", ")")

    types = {r[0]: plain(r[1]) for r in client.query("DESCRIBE TABLE turns").result_rows}
    for f in declared():
        if f.column is not None:
            assert types.get(f.name) == f.column, (f.name, types.get(f.name), f.column)
