"""Precision and calibration from labels joined with what convmon decided (embedded ClickHouse, migrated)."""

from __future__ import annotations

import tomllib
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from convmon.alerting.model import Alert
from convmon.alerting.rules import RuleSet, default_rules_text
from convmon.feedback import calibrate as cal
from convmon.feedback.precision import precision, wilson
from convmon.scoring.pii import PiiScorer
from convmon.scoring.pipeline import ScoringPipeline
from convmon.store.alerts import AlertRecord, AlertStore
from convmon.store.migrate import migrate
from convmon.store.tables import FeedbackRow, RowStore
from convmon.store.turns import TurnStore
from tests.unit.test_store import make_turns

NOW = datetime.now(timezone.utc)


def test_wilson_interval_matches_the_published_formula():
    lo, hi = wilson(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)  # Wilson (1927); e.g. Newcombe 1998, table I
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(0, 20)
    assert lo == 0.0 and 0.15 < hi < 0.17
    assert wilson(50, 100)[0] < 0.5 < wilson(50, 100)[1]


def store_turns(client, scores, ts=None):
    """Scored turns as the worker stores them, with the given toxicity (the suite's decision at 0.5)."""
    turns = ScoringPipeline([PiiScorer()]).score(make_turns(len(scores)))
    for s, x in zip(turns, scores):
        s.scores.update(toxicity=float(x), jailbreak=0.0, sentiment=0.0, toxicity_hit=bool(x >= 0.5),
                        jailbreak_hit=False, policy_scores={}, policy_hits=[])
        s.turn = s.turn.model_copy(update={"ts": (ts or NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z")})
    TurnStore(client).write(turns)
    return turns


def label(event_id=None, alert_id=None, verdict="confirmed", signal="toxicity", ts=None):
    return FeedbackRow(uuid.uuid4(), ts or NOW - timedelta(minutes=30), event_id and uuid.UUID(event_id),
                       alert_id and uuid.UUID(alert_id), "", signal, verdict, "oncall", "", "", 0, 0)


def test_precision_per_signal_app_and_version_with_the_latest_label_per_item(client):
    migrate(client)
    turns = store_turns(client, [0.9] * 6 + [0.2] * 2)
    ids = [s.turn.event_id for s in turns]
    alert = Alert("toxic_turn", "warning", "toxicity 0.90", "k", app="app-a", model_name="m", model_version="v1",
                  details={"event_id": ids[5], "signal": "toxicity"})
    AlertStore(client).write([AlertRecord(alert, "notified")])
    rows = [label(ids[0]), label(ids[1]), label(ids[2]), label(ids[3], verdict="false_alarm"),
            label(ids[4], verdict="confirmed", ts=NOW - timedelta(minutes=50)),
            label(ids[4], verdict="false_alarm", ts=NOW - timedelta(minutes=10)),  # corrected later: counts once
            label(alert_id=alert.alert_id, verdict="confirmed"),  # the alert: joined to its turn, model version
            label(ids[6], verdict="missed"), label(ids[7], verdict="missed", signal="jailbreak")]
    RowStore(client, FeedbackRow).write(rows)
    (jb, tox) = precision(client)
    assert (tox.signal, tox.app, tox.model_version) == ("toxicity", "app-a", "v1")
    assert (tox.labelled, tox.confirmed, tox.false_alarm, tox.missed) == (7, 4, 2, 1)
    assert tox.precision == round(4 / 6, 4)
    assert (tox.low, tox.high) == tuple(round(x, 4) for x in wilson(4, 6))  # the SQL computes the same interval
    assert (jb.signal, jb.missed, jb.precision, jb.low) == ("jailbreak", 1, None, None)
    assert precision(client, app="other") == []
    assert precision(client, since_s=60) == []  # every label is older than a minute
    # the view says what convmon decided for each label: the alert's turn, its score and hit decision
    got = client.query("SELECT alert_kind, score, flagged, scorer_version FROM feedback_labels "
                       "WHERE alert_id IS NOT NULL").result_rows
    assert got == [("toxic_turn", pytest.approx(0.9), 1, "pii-2")]
    assert client.query(f"SELECT flagged FROM feedback_labels WHERE event_id = '{ids[6]}'").result_rows == [(0,)]


def fixture(client, n_turns=3000, n_labels=400, seed=7):
    """An app's turns with a ground truth; on-call labelled a random sample of what convmon flagged (score ≥ 0.5)
    and reported some misses."""
    rng = np.random.default_rng(seed)
    scores = rng.beta(0.6, 3.0, n_turns)
    truth = rng.random(n_turns) < scores ** 2.5
    turns = store_turns(client, scores)
    flagged = np.flatnonzero(scores >= 0.5)
    sample = rng.choice(flagged, size=min(n_labels, len(flagged)), replace=False)
    rows = [label(turns[i].turn.event_id, verdict="confirmed" if truth[i] else "false_alarm") for i in sample]
    missed = np.flatnonzero(truth & (scores < 0.5))[:20]
    rows += [label(turns[i].turn.event_id, verdict="missed") for i in missed]
    RowStore(client, FeedbackRow).write(rows)
    return scores, truth


@pytest.mark.parametrize("budget", [5.0, 15.0])
def test_calibrate_meets_the_budget_it_was_given_on_the_whole_ground_truth(client, budget):
    migrate(client)
    scores, truth = fixture(client)
    (p,) = cal.calibrate(client, "app-a", budget=budget, min_labels=30, since_s=86400)
    assert p.signal == "toxicity" and p.kind == "toxic_turn" and p.threshold is not None, p.reason
    false_per_1000 = 1000 * np.sum(~truth & (scores >= p.threshold)) / len(scores)
    assert false_per_1000 <= budget, (p, false_per_1000)
    assert p.expected_false_per_1000 <= budget
    assert p.threshold < scores.max() and 0 < p.recall < 1  # a useful proposal, not "never alert"


def test_a_tighter_budget_gives_a_higher_threshold(client):
    migrate(client)
    fixture(client)
    loose, tight = (cal.calibrate(client, "app-a", budget=b, min_labels=30, since_s=86400)[0] for b in (15.0, 2.0))
    assert tight.threshold > loose.threshold and tight.recall <= loose.recall


def test_calibrate_with_too_few_labels_says_so_and_proposes_nothing(client):
    migrate(client)
    fixture(client, n_labels=12)
    (p,) = cal.calibrate(client, "app-a", budget=5.0, min_labels=30, since_s=86400)
    assert p.threshold is None and p.reason.startswith("too few labels: 12 ")
    text = cal.snippet([p], "app-a", 5.0, RuleSet.load())
    assert "match =" not in text and "nothing proposed" in text


def test_the_snippet_applied_as_it_says_sets_the_apps_threshold_and_keeps_the_other_overrides(tmp_path):
    rules = RuleSet.load()
    p = cal.Proposal("toxicity", "toxic_turn", 100, 40, 3000, threshold=0.8123, expected_false_per_1000=1.2,
                     recall=0.7)
    q = cal.Proposal("policy:climate_science", "policy_violation", 50, 10, 3000, threshold=0.97,
                     expected_false_per_1000=0.1, recall=0.5, match=(("policy", "climate_science"),))
    text = cal.snippet([p, q], "app-a", 2.0, rules)
    assert "NOT APPLIED" in text
    merged = cal.insert_overrides(default_rules_text(), cal.override_blocks([p, q], "app-a", rules))
    tomllib.loads(merged)
    (tmp_path / "rules.toml").write_text(merged)
    new = RuleSet.load(tmp_path / "rules.toml")
    assert new.get("toxic_turn", {"app": "app-a", "role": "user"}).threshold == 0.8123
    assistant = new.get("toxic_turn", {"app": "app-a", "role": "assistant"})
    assert assistant.threshold == 0.8123 and assistant.severity == "critical"  # the role override still applies
    assert new.get("toxic_turn", {"app": "app-b", "role": "user"}).threshold is None  # other apps unchanged
    assert new.get("policy_violation", {"app": "app-a", "policy": "climate_science"}).threshold == 0.97
    assert new.get("policy_violation", {"app": "app-a", "policy": "other"}).threshold is None
    assert set(new.rules) == set(rules.rules)

