"""Per-conversation abrupt-shift detector (convmon.state.dynamics) on synthetic score sequences."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from convmon.state.dynamics import (
    ConversationState,
    ShiftConfig,
    ShiftDetector,
    expired,
    run_conversation,
)

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


def make_turns(scores, cid="c-1", start=0, ts0=T0, step_s=30):
    """scores: [(sentiment, toxicity)], roles alternate user/assistant from turn `start` (even = user)."""
    out = []
    for k, (s, t) in enumerate(scores):
        i = start + k
        out.append(
            {
                "conversation_id": cid,
                "turn_index": i,
                "role": "user" if i % 2 == 0 else "assistant",
                "sentiment": s,
                "toxicity": t,
                "ts": (ts0 + timedelta(seconds=step_s * i)).isoformat().replace("+00:00", "Z"),
            }
        )
    return out


def fired(turns, config=None):
    _, events = run_conversation(ShiftDetector(config), turns)
    return events


CALM = [(0.1, 0.05), (0.2, 0.03), (0.0, 0.08), (0.15, 0.02), (0.05, 0.1), (0.3, 0.02)]


def test_sharp_user_drop_fires_once_on_that_turn():
    # calm for 6 turns, the user explodes at turn 6 and stays angry
    turns = make_turns(CALM + [(-0.9, 0.7), (-0.3, 0.05), (-0.8, 0.6), (-0.2, 0.05), (-0.85, 0.5), (0.0, 0.05)])
    events = fired(turns)
    assert [(e.turn_index, e.role) for e in events] == [(6, "user")]
    e = events[0]
    assert e.conversation_id == "c-1"
    assert e.before > 0 > e.after
    assert e.delta == pytest.approx(e.before - e.after, abs=1e-3)
    assert e.delta >= ShiftConfig().min_drop
    assert "sentiment_drop" in e.reason
    assert e.baseline_role == "user"


def test_hostile_assistant_compared_with_earlier_assistant_turns():
    # the user is mildly negative throughout (an apologetic, confused user); the assistant turns hostile at 7
    scores = [(-0.4, 0.1), (0.2, 0.02), (-0.5, 0.1), (0.1, 0.03), (-0.45, 0.15), (0.15, 0.02), (-0.5, 0.1),
              (-0.95, 0.6), (-0.6, 0.4), (-0.9, 0.5)]
    events = fired(make_turns(scores))
    assert [(e.turn_index, e.role) for e in events] == [(7, "assistant")]
    assert events[0].baseline_role == "assistant"
    assert events[0].before > 0  # the assistant's own baseline, not the user's negative one


def test_assistant_sympathy_does_not_fire():
    # the assistant's condolences score moderately negative; that is not hostility
    scores = [(0.0, 0.05), (0.1, 0.02), (-0.1, 0.05), (0.05, 0.03), (-0.3, 0.1), (-0.6, 0.15), (0.0, 0.05), (-0.5, 0.1)]
    assert fired(make_turns(scores)) == []


def test_steady_negative_does_not_fire():
    # unhappy from the first turn, with the usual turn-to-turn noise and a slightly worse turn later
    scores = [(-0.8, 0.3), (-0.3, 0.05), (-0.6, 0.35), (-0.4, 0.05), (-0.9, 0.4), (-0.2, 0.05), (-0.7, 0.3),
              (-0.35, 0.05), (-0.95, 0.45), (-0.3, 0.05)]
    assert fired(make_turns(scores)) == []


def test_slow_decline_does_not_fire():
    # cheerful start, each user turn a bit worse than the last: +0.7 .. -0.95 over 14 turns
    scores = []
    for k in range(14):
        if k % 2 == 0:
            scores.append((0.7 - 0.14 * k, 0.05 + 0.02 * k))
        else:
            scores.append((0.1, 0.03))
    assert scores[-2][0] < -0.9
    assert fired(make_turns(scores)) == []


def test_unhappy_again_is_not_a_new_shift():
    # the user opened furious, calmed down during troubleshooting, and is as unhappy again at the end:
    # the baseline has recovered, but this level is not new for this conversation
    scores = [(-0.9, 0.2)] + [(0.1, 0.03)] * 13 + [(-0.8, 0.2)]  # the last one is user turn 14
    turns = make_turns(scores)
    assert fired(turns) == []
    # the novelty requirement is what keeps it quiet
    assert fired(turns, ShiftConfig(max_after_level=-0.55)) == []  # let -0.8 through the level gate
    assert [e.turn_index for e in fired(turns, ShiftConfig(novelty_margin=-2.0, max_after_level=-0.55))] == [14]


def test_calm_sad_topic_does_not_fire():
    scores = [(-0.15, 0.05), (-0.3, 0.1), (-0.1, 0.1), (-0.35, 0.05), (-0.25, 0.2), (-0.2, 0.05), (-0.3, 0.1), (-0.3, 0.05)]
    assert fired(make_turns(scores)) == []


def test_positive_to_neutral_does_not_fire():
    scores = [(0.9, 0.02), (0.8, 0.02), (0.95, 0.01), (0.85, 0.02), (0.9, 0.02), (0.9, 0.02), (0.0, 0.05), (0.0, 0.05)]
    assert fired(make_turns(scores)) == []


def test_needs_prior_turns():
    # a furious first message has no baseline to shift from
    assert fired(make_turns([(-0.95, 0.9), (0.0, 0.05), (-0.9, 0.8), (0.1, 0.05)])) == []
    # ... and min_prior_turns really is the gate
    cfg = ShiftConfig(min_prior_turns=4)
    turns = make_turns([(0.2, 0.05), (0.2, 0.05), (-0.95, 0.8), (0.0, 0.05)])
    assert [e.turn_index for e in fired(turns)] == [2]
    assert fired(turns, cfg) == []


def test_drop_must_exceed_baseline_spread():
    # a user who swings between very positive and negative: -0.85 is a new low but within their usual spread
    scores = [(0.9, 0.02), (0.0, 0.05), (-0.5, 0.1), (0.0, 0.05), (0.9, 0.02), (0.0, 0.05), (-0.5, 0.1), (0.0, 0.05),
              (-0.85, 0.1)]
    turns = make_turns(scores)
    assert fired(turns) == []
    # without the spread requirement the same drop fires: the test can tell the difference
    assert fired(turns, ShiftConfig(max_after_level=-0.55)) == []  # let -0.85 through the level gate
    assert [e.turn_index for e in fired(turns, ShiftConfig(k_sigma=0.0, max_after_level=-0.55))] == [8]


def test_toxicity_jump_fires_with_negative_sentiment_only():
    base = [(0.0, 0.05), (0.1, 0.02), (0.0, 0.05), (0.1, 0.02), (0.0, 0.05), (0.1, 0.02)]
    # sentiment only mildly negative, toxicity jumps: fires on the toxicity path
    ev = fired(make_turns(base + [(-0.35, 0.9), (0.0, 0.05)]), ShiftConfig(max_after_level=-5.0))
    assert [(e.turn_index, e.reason) for e in ev] == [(6, "toxicity_jump")]
    # a high toxicity score on a positive turn (a known false positive of the head) does not fire
    assert fired(make_turns(base + [(0.4, 0.9), (0.0, 0.05)])) == []


def test_cooldown_prevents_repeated_firing():
    cfg = ShiftConfig(cooldown_turns=6)
    # two separate blow-ups: turn 6 and turn 10, with a full recovery between
    scores = CALM + [(-0.9, 0.7), (0.2, 0.02), (0.3, 0.05), (0.2, 0.02), (-0.95, 0.8), (0.1, 0.02)]
    assert [e.turn_index for e in fired(make_turns(scores), cfg)] == [6]
    # with no cooldown the second blow-up fires too: the cooldown is what suppressed it
    assert [e.turn_index for e in fired(make_turns(scores), ShiftConfig(cooldown_turns=0))] == [6, 10]
    # after the cooldown expires a new, separate shift can fire again
    late = CALM + [(-0.9, 0.7)] + [(0.3, 0.02), (0.2, 0.03)] * 4 + [(-0.95, 0.8)]
    assert [e.turn_index for e in fired(make_turns(late), cfg)] == [6, 15]
    state, _ = run_conversation(ShiftDetector(cfg), make_turns(late))
    assert state.fired and state.fire_count == 2 and state.last_fired_turn == 15


def test_update_does_not_mutate_input_and_ignores_replays():
    det = ShiftDetector()
    turns = make_turns(CALM + [(-0.9, 0.7)])
    state = None
    for t in turns[:-1]:
        state, _ = det.update(state, t)
    snapshot = state.to_dict()
    new, ev = det.update(state, turns[-1])
    assert ev is not None and ev.turn_index == 6
    assert state.to_dict() == snapshot  # the input state is untouched
    again, ev2 = det.update(new, turns[-1])  # at-least-once delivery: the same turn again
    assert ev2 is None and again.to_dict() == new.to_dict()
    older, ev3 = det.update(new, turns[2])  # out of order
    assert ev3 is None and older.to_dict() == new.to_dict()


def test_state_round_trips_through_json_and_continues_identically():
    det = ShiftDetector()
    turns = make_turns(CALM + [(-0.1, 0.1), (0.2, 0.05), (-0.9, 0.8), (-0.5, 0.2), (-0.3, 0.1)])
    _, expected = run_conversation(det, turns)
    assert [e.turn_index for e in expected] == [8]

    state = None
    for t in turns[:5]:
        state, _ = det.update(state, t)
    d = state.to_dict()
    restored = ConversationState.from_dict(json.loads(json.dumps(d)))
    assert restored.to_dict() == d
    assert restored == state
    events = []
    for t in turns[5:]:
        restored, ev = det.update(ConversationState.from_dict(json.loads(json.dumps(restored.to_dict()))), t)
        if ev:
            events.append(ev)
    assert [e.to_dict() for e in events] == [e.to_dict() for e in expected]
    json.dumps(events[0].to_dict())  # events are JSON-serialisable too


def _json_types_only(x):
    if isinstance(x, dict):
        return all(isinstance(k, str) and _json_types_only(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_json_types_only(v) for v in x)
    return x is None or isinstance(x, (str, int, float, bool))


def test_state_stays_bounded():
    det = ShiftDetector()
    state = None
    sizes = []
    for i in range(600):
        s = 0.5 if i % 3 else -0.6
        turn = {"conversation_id": "long", "turn_index": i, "role": "user" if i % 2 == 0 else "assistant",
                "sentiment": s, "toxicity": 0.1, "ts": 1_700_000_000 + 10 * i}
        state, _ = det.update(state, turn)
        sizes.append(len(json.dumps(state.to_dict())))
    d = state.to_dict()
    assert _json_types_only(d)
    assert len(state.recent) == det.config.window
    assert state.recent[-1][0] == 599 and state.n_turns == 600
    assert max(sizes) < 2000
    assert max(sizes[100:]) - min(sizes[100:]) < 100  # does not grow with the conversation


def test_expired():
    det = ShiftDetector()
    state, _ = det.update(None, make_turns([(0.1, 0.0)])[0])
    last = T0.timestamp()
    assert state.last_ts == pytest.approx(last)
    assert not expired(state, last + 3599, ttl_s=3600)
    assert expired(state, last + 3601, ttl_s=3600)
    assert expired(state, T0 + timedelta(hours=2), ttl_s=3600)  # datetime
    assert not expired(state, "2025-06-01T12:30:00Z", ttl_s=3600)  # RFC 3339 string
    # a newer turn refreshes the activity time
    state, _ = det.update(state, make_turns([(0.1, 0.0)], start=1, ts0=T0 + timedelta(hours=1), step_s=0)[0])
    assert not expired(state, last + 3601, ttl_s=3600)
    # no timestamps seen: nothing to expire on
    assert not expired(ConversationState(conversation_id="x"), last, ttl_s=1)


def test_config_rejects_unknown_parameters():
    with pytest.raises(ValueError):
        ShiftConfig.from_dict({"min_drop": 0.5, "min_dorp": 0.7})
    assert ShiftConfig.from_dict(ShiftConfig().to_dict()) == ShiftConfig()


# --- the evaluation's counting rules (convmon_dev.dynamics_eval) ---------------------------------


def test_evaluation_counts_hits_early_late_and_false_alarms():
    from convmon_dev.dynamics_eval import evaluate

    calm = CALM
    blow_up = [(-0.9, 0.7), (-0.3, 0.05)]
    scored = (
        make_turns(calm + blow_up, cid="hit")  # fires at 6, labelled 6: offset +0
        + make_turns(calm + blow_up, cid="plus1")  # fires at 6, labelled 5: offset +1 still counts
        # fires at 6, labelled 8: too early (FP), and the cooldown then hides the real turn 8 (a miss)
        + make_turns(calm + blow_up + [(-0.95, 0.8), (-0.3, 0.05)], cid="early")
        + make_turns(calm + blow_up, cid="alarm")  # fires at 6, no shift: FP
        + make_turns(calm + [(0.1, 0.05), (0.2, 0.05)], cid="missed")  # never fires, labelled 6: a miss
        + make_turns(calm, cid="unlabelled")  # no label, no event
    )
    labels = {
        "hit": {"shift_turn": 6, "kind": "user_angry"},
        "plus1": {"shift_turn": 5, "kind": "assistant_hostile"},
        "early": {"shift_turn": 8, "kind": "user_distressed"},
        "alarm": {"shift_turn": None, "kind": "steady_negative"},
        "missed": {"shift_turn": 6, "kind": "user_angry"},
    }
    r = evaluate(scored, labels, ShiftDetector())
    assert (r["true_positives"], r["false_positives"]) == (2, 2)
    assert r["precision"] == 0.5
    assert r["recall"] == 0.5 and r["shift_conversations"] == 4
    assert r["false_positives_by_kind"] == {"steady_negative": 1, "user_distressed": 1}
    assert r["offset_histogram"] == {"-2": 1, "0": 1, "1": 1}
    by_id = {c["conversation_id"]: c for c in r["per_conversation"]}
    assert by_id["unlabelled"]["kind"] == "unlabelled" and by_id["unlabelled"]["fired_turns"] == []
    assert by_id["missed"]["miss_cause"] == "scorer"
    assert by_id["early"]["miss_cause"] == "early_fire"


@pytest.mark.timeout(120)
def test_tuning_set_regression():
    """The real scorer + detector on sample.jsonl (the tuning set): guards the tuned behaviour."""
    from pathlib import Path

    from convmon_dev.dynamics_eval import read_jsonl, score_turns, evaluate

    conv = Path(__file__).resolve().parents[2] / "models" / "data" / "conversations"
    turns = read_jsonl(conv / "sample.jsonl")
    labels = {d["conversation_id"]: d for d in read_jsonl(conv / "sample_shifts.jsonl")}
    r = evaluate(score_turns(turns, conv.parents[2] / "models"), labels, ShiftDetector())
    # Measured with suite-2f6b6d6e93bc: 8 of 9 shifts found, 8 of 11 detections right, 3 of 36 calm
    # conversations alarmed. The floors leave room for one detection more or less (CPUs differ: issue 18).
    assert r["recall"] >= 7 / 9
    assert r["precision"] >= 7 / 12
    assert r["no_shift_conversations_alarmed"] <= 4



def test_the_tracker_stores_each_change_once_alerts_on_a_shift_and_expires_its_own_partition():
    from convmon.alerting.rules import RuleSet
    from convmon.state.dynamics import ConversationTracker

    tracker = ConversationTracker(ShiftDetector(), RuleSet.load(), ttl_s=3600)
    turns = make_turns([(0.6, 0.05), (0.5, 0.05), (0.55, 0.04), (0.6, 0.05), (-0.95, 0.9), (-0.9, 0.85)])
    stored, alerts = None, []
    for t in turns:
        e = {**t, "app": "bot", "model": {"provider": "p", "name": "m", "version": "v1"}}
        value, alert, shift = tracker.update(stored, e, partition=2)
        assert value is not None and value["_partition"] == 2
        stored = value
        alerts += [alert] if alert else []
    assert [(a.kind, a.turn_index, a.conversation_id) for a in alerts] == [("sentiment_shift", 4, "c-1")]
    value, alert, _ = tracker.update(stored, {**turns[-1], "app": "bot", "model": {"provider": "p", "name": "m",
                                                                                   "version": "v1"}}, partition=2)
    assert value is None and alert is None  # a replayed turn changes nothing
    later = (T0 + timedelta(hours=3)).timestamp()
    items = [("c-1", stored), ("c-2", {**stored, "_partition": 3})]
    assert tracker.stale(items, 2, later) == ["c-1"]
    assert tracker.stale(items, 2, T0.timestamp() + 200) == []
