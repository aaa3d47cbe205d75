import pytest

from convmon.alerting.incidents import IncidentBook
from convmon.alerting.rules import default_rules_text, RuleSet, turn_alerts
from convmon.scoring.pii import PiiScorer
from convmon.scoring.pipeline import ScoringPipeline
from tests.unit.test_store import make_turns


class FixedScores:
    """Fixed model scores, with the hit decisions a suite calibrated at THRESHOLDS would make (unless given)."""

    name, version = "fixed", "fixed-1"

    def __init__(self, **scores):
        for signal in ("toxicity", "jailbreak"):
            if scores.get(signal) is not None:
                scores.setdefault(f"{signal}_hit", scores[signal] >= THRESHOLDS[signal])
        scores.setdefault("policy_hits", [p for p, v in scores.get("policy_scores", {}).items()
                                          if v >= POLICY_THRESHOLDS[p]])
        self.scores = scores

    def score(self, turns):
        return [dict(self.scores) for _ in turns]


def scored(n, **scores):
    turns = make_turns(n)
    return ScoringPipeline([PiiScorer(), FixedScores(**scores)]).score(turns)


THRESHOLDS = {"toxicity": 0.5, "jailbreak": 0.5}
POLICY_THRESHOLDS = {"climate_science": 0.8}


def test_default_rules_load_and_cover_every_kind():
    from convmon.alerting.model import KINDS

    rules = RuleSet.load()
    assert set(rules.rules) == set(KINDS)


def test_bad_rule_is_a_clear_error(tmp_path):
    p = tmp_path / "rules.toml"
    p.write_text('[[rules]]\nkind = "toxic_turns"\n')
    with pytest.raises(ValueError, match="toxic_turns"):
        RuleSet.load(p)


def test_single_turn_candidates_respect_thresholds_and_roles():
    rules = RuleSet.load()
    hot = scored(4, toxicity=0.95, jailbreak=0.97, policy_scores={"climate_science": 0.99})
    cold = scored(4, toxicity=0.2, jailbreak=0.1, policy_scores={"climate_science": 0.1})
    alerts = turn_alerts(rules, hot, THRESHOLDS, {"climate_science": 0.8})
    kinds = sorted(a.kind for a in alerts)
    # jailbreak is only a user-turn alert; make_turns alternates user/assistant
    assert kinds.count("toxic_turn") == 4 and kinds.count("jailbreak_attempt") == 2
    assert kinds.count("policy_violation") == 4
    assert turn_alerts(rules, cold, THRESHOLDS, {"climate_science": 0.8}) == []
    assistant = [a for a in alerts if a.kind == "toxic_turn" and a.role == "assistant"]
    assert assistant and all(a.severity == "critical" for a in assistant)  # per-role override
    # deterministic ids: the same turn scored again yields the same alert
    again = turn_alerts(rules, hot, THRESHOLDS, {"climate_science": 0.8})
    assert [a.alert_id for a in again] == [a.alert_id for a in alerts]
    for a in alerts:
        assert "hello" not in a.summary  # never the chat text


def test_a_turn_alerts_on_the_scorers_decision_unless_its_rule_sets_a_threshold(tmp_path):
    """One decision: a score above the suite's threshold but not a hit (as the scorer decided) does not alert;
    a rule with its own `threshold` compares the score with it, for its scope only."""
    rules = RuleSet.load()
    undecided = scored(2, toxicity=0.95, toxicity_hit=False)
    assert [a for a in turn_alerts(rules, undecided, THRESHOLDS, {}) if a.kind == "toxic_turn"] == []
    p = tmp_path / "rules.toml"
    p.write_text(default_rules_text() + '\n[[rules]]\nkind = "toxic_turn"\n'
                 '  [[rules.overrides]]\n  match = { app = "app-a" }\n  threshold = 0.9\n')
    own = RuleSet.load(p)
    fired = [a for a in turn_alerts(own, undecided, THRESHOLDS, {}) if a.kind == "toxic_turn"]
    assert len(fired) == 2 and fired[0].details["threshold"] == 0.9
    assert [a for a in turn_alerts(own, scored(2, toxicity=0.6), THRESHOLDS, {}) if a.kind == "toxic_turn"] == []


def test_a_burst_of_500_toxic_turns_in_one_conversation_is_one_page():
    rules = RuleSet.load()
    book = IncidentBook(rules)
    turns = scored(500, toxicity=0.99)
    alerts = [a for a in turn_alerts(rules, turns, THRESHOLDS, {}) if a.role == "user"]
    # force one conversation: same dedup key for all
    key = alerts[0].dedup_key
    states, pages = {}, []
    for i, a in enumerate(alerts):
        a.dedup_key = key
        st, d = book.offer(states.get(key), a, now=1000 + i)
        states[key] = st
        if d.notification:
            pages.append(d.notification)
    assert len(pages) == 1 and states[key]["count"] == len(alerts)
    # re-delivery of an already-seen alert changes nothing
    st, d = book.offer(states[key], alerts[-1], now=2000)
    assert d.delivery == "duplicate" and st["count"] == len(alerts)


def test_renotify_sweep_and_explicit_resolve():
    rules = RuleSet.load()
    book = IncidentBook(rules)
    a = turn_alerts(rules, scored(3, toxicity=0.99), THRESHOLDS, {})
    for x in a:
        x.dedup_key = "k"
    st, d = book.offer(None, a[0], now=0)
    assert d.delivery == "notified"
    renotify = rules.rules["toxic_turn"].renotify_s
    st, d = book.offer(st, a[1], now=renotify + 1)
    assert d.delivery == "notified" and d.notification.count == 2
    st, n = book.sweep(st, now=renotify + 10)
    assert n is None  # not quiet long enough
    st, n = book.sweep(st, now=renotify + 1 + rules.rules["toxic_turn"].resolve_after_s)
    assert n is not None and n.status == "resolved" and st["status"] == "resolved"
    # a new alert after resolution and cooldown opens a new incident and pages
    st, d = book.offer(st, a[2], now=10 * renotify)
    assert d.delivery == "notified"
    resolved = a[2].__class__(**{**a[2].__dict__, "status": "resolved", "alert_id": "r-1"})
    st, d = book.offer(st, resolved, now=10 * renotify + 5)
    assert d.delivery == "resolved" and d.notification.status == "resolved"


def test_a_consumer_stalled_alert_pages_once_per_stall_and_resolves():
    """Issue 20: the watchdog's escalation (stream/offsets.py "escalate") is one critical page per stalled partition,
    through the default rules; its re-sends are folded, the recovery resolves it, and it has no label command."""
    import json
    from pathlib import Path

    import jsonschema

    from convmon import wire
    from convmon.alerting.stalled import stalled_alert
    from convmon.feedback.oncall import label_command

    book = IncidentBook(RuleSet.load())
    fire = stalled_alert("convmon", "chat.turns", 3, 94, 148, 94, 185.0, first_seen=1000.0, status="firing")
    assert fire.severity == "critical" and "chat.turns/3" in fire.summary and "94 of 148" in fire.summary
    key, value = wire.encode_alert(fire)
    schema = json.loads((Path(__file__).parents[2] / "schemas/alert.schema.json").read_text())
    jsonschema.validate(json.loads(value), schema)
    again = wire.decode_alert_record(value)  # the same alert read twice (a re-delivery)
    st, d = book.offer(None, fire, now=1000)
    assert d.delivery == "notified" and d.notification.alert.kind == "consumer_stalled"
    st, d = book.offer(st, again, now=1001)
    assert d.delivery == "duplicate"
    other = stalled_alert("convmon", "chat.turns", 1, 5, 9, 5, 185.0, first_seen=1000.0, status="firing")
    assert other.dedup_key != fire.dedup_key  # one incident per partition
    resolved = stalled_alert("convmon", "chat.turns", 3, 148, 148, 148, 0.0, first_seen=1000.0, status="resolved")
    st, d = book.offer(st, resolved, now=1300)
    assert d.delivery == "resolved" and resolved.dedup_key == fire.dedup_key
    assert label_command(fire) is None
