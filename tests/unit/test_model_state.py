"""Per-model-version state without Kafka: windows, signal-rate drift, drift wiring."""

import numpy as np

from tests.signals import as_signals
from convmon.state.model_state import ModelState
from convmon.alerting.rules import RuleSet
from convmon.state.drift import DriftMonitor
from convmon.state.rates import RateMonitor
from convmon.state.windows import MinuteWindows


def LATER() -> float:
    """The tests' wall clock: after every event time they use (the watermark is capped near the wall clock)."""
    return 2_000_000_000.0

KEY = ("support-bot", "gpt-4o-mini", "2024-07-18", "assistant")


def rec(ts, tox=0.1, sent=0.3, tox_hit=False, emb=None):
    import base64

    return {"k": list(KEY), "ts": ts, "id": f"e{ts}", "tox": tox, "sent": sent, "jb": 0.0, "tox_hit": tox_hit,
            "jb_hit": False, "pol_hit": False, "pii": False,
            "emb": base64.b64encode(np.asarray(emb, np.float16).tobytes()).decode() if emb is not None else None}


def test_minute_windows_close_once_with_grace_and_count_late_events():
    w = MinuteWindows(grace_s=30, clock=LATER)
    for i in range(120):  # two minutes, one turn per second
        w.add(KEY, 1_800_000_000 + i, 0.01 * (i % 60), 0.5, i % 10 == 0, False, i % 30 == 0)
    rows = w.close()
    assert [r.turns for r in rows] == [60]  # minute 2 still open (watermark − grace inside it)
    r = rows[0]
    assert abs(r.toxicity_mean - np.mean([0.01 * i for i in range(60)])) < 1e-6
    assert r.jailbreak_hits == 6 and r.pii_turns == 2 and 0.55 < r.toxicity_p95 < 0.6
    w.add(KEY, 1_800_000_000 + 5, 0.5, 0.5, False, False, False)  # minute 1 is closed: late
    assert w.late_dropped == 1
    assert [x.turns for x in w.close(now=1_800_000_000 + 500)] == [60]
    assert w.close(now=1_800_000_000 + 900) == []  # nothing emitted twice


def test_rate_monitor_fires_on_a_rise_and_not_on_a_stable_rate():
    rng = np.random.default_rng(0)
    stable = RateMonitor()
    assert not any(stable.update(KEY, {"toxicity": float(rng.random() < 0.03)}) for _ in range(20000))
    rising = RateMonitor()
    fired = []
    for i in range(4000):
        p = 0.03 if i < 2000 else 0.3
        for ch in rising.update(KEY, {"toxicity": float(rng.random() < p)}):
            fired.append((i, ch))
    assert fired and fired[0][1].worse and fired[0][1].kind == "toxicity_rate"
    assert 2000 <= fired[0][0] < 2200  # found within 200 turns of the change


def test_model_state_emits_windows_reports_pins_and_alerts():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(1, 384))
    b = rng.normal(size=(1, 384))

    def emb(base):
        v = base[0] + 0.9 * rng.normal(size=384)
        return v / np.linalg.norm(v)

    state = ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(clock=LATER), RuleSet.load())
    out = state.process(as_signals([rec(1_800_000_000 + i, emb=emb(a)) for i in range(400)]))
    assert len(out["pinned"]) == 1 and out["windows"] and not out["alerts"]
    alerts = []
    for start in range(400, 1400, 100):  # the reply style switches at turn 400
        out = state.process(as_signals([rec(1_800_000_000 + i, emb=emb(b)) for i in range(start, start + 100)]))
        alerts += out["alerts"]
    kinds = [x.kind for x in alerts]
    assert kinds.count("embedding_drift") == 1, kinds
    assert "centroid distance" in alerts[kinds.index("embedding_drift")].summary


def test_restart_from_snapshot_mid_window_behaves_like_no_restart():
    """A worker restarted in the middle of a drift window resumes it from the snapshot: same alerts, same turn."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(1, 384)), rng.normal(size=(1, 384))

    def emb(base):
        v = base[0] + 0.9 * rng.normal(size=384)
        return v / np.linalg.norm(v)

    stream = [rec(1_800_000_000 + i, emb=emb(a if i < 420 else b), tox_hit=i % 9 == 0) for i in range(1200)]

    def run(restart_at=None):
        state = ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(clock=LATER), RuleSet.load())
        alerts, windows = [], []
        for start in range(0, len(stream), 60):
            if restart_at is not None and start == restart_at:
                blob = state.snapshot(KEY)
                state = ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(clock=LATER), RuleSet.load())
                state.restore(KEY, blob)
            out = state.process(as_signals(stream[start:start + 60]))
            alerts += [(x.kind, x.alert_id) for x in out["alerts"]]
            windows += [(w.window_start, w.turns) for w in out["windows"]]
        return alerts, windows

    baseline = run()
    assert any(k == "embedding_drift" for k, _ in baseline[0])
    assert run(restart_at=480) == baseline  # restart inside the first drift window after the switch


def test_signals_redelivered_after_a_restart_are_not_counted_twice():
    recs = [dict(rec(1_800_000_000 + i, tox_hit=i % 3 == 0), _p=2, _o=100 + i) for i in range(40)]
    state = ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(clock=LATER), RuleSet.load())
    state.process(as_signals(recs[:30]))
    blob = state.snapshot(KEY)
    again = ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(clock=LATER), RuleSet.load())
    again.restore(KEY, blob)
    out = again.process(as_signals(recs[20:]))  # offsets 120..129 were already applied before the snapshot
    assert again.rates.turns[KEY] == 40
    assert (out["applied"], out["redelivered"]) == (10, 10)


def test_a_record_of_several_signals_is_applied_whole_and_skipped_whole_when_redelivered():
    """convmon.signals carries one record per key and scored batch: every signal of a record shares its offset."""
    recs = [dict(rec(1_800_000_000 + i), _p=1, _o=10 + i // 5) for i in range(20)]  # 4 records of 5 signals
    state = ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(clock=LATER), RuleSet.load())
    assert state.process(as_signals(recs[:10]))["applied"] == 10
    blob = state.snapshot(KEY)
    again = ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(clock=LATER), RuleSet.load())
    again.restore(KEY, blob)
    for r in recs[5:]:
        r["id"] += "-rescored"  # the same turns scored again: only the offsets say what is applied
    out = again.process(as_signals(recs[5:]))  # record 11 again, then 12 and 13
    assert (out["applied"], out["redelivered"]) == (10, 5)
    assert again.rates.turns[KEY] == 20


def test_a_snapshot_stays_due_until_its_write_is_confirmed():
    """A snapshot write cut short (shutdown, ClickHouse error) must not leave the key marked clean: the
    shutdown snapshot would skip it and the next worker would resume from older state."""
    state = ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(clock=LATER), RuleSet.load(), snapshot_every=1)
    due = state.process(as_signals([dict(rec(1_800_000_000 + i), _p=0, _o=i) for i in range(5)]))["snapshots"]
    assert [(k, n) for k, n, _ in due] == [(KEY, 5)]
    assert [(k, n) for k, n, _ in state.due_snapshots(force=True)] == [(KEY, 5)]  # write not confirmed yet
    state.saved(due)
    assert state.due_snapshots(force=True) == []
    state.process(as_signals([dict(rec(1_800_000_010), _p=0, _o=10)]))
    assert [(k, n) for k, n, _ in state.due_snapshots(force=True)] == [(KEY, 6)]


def test_a_turn_republished_under_a_new_offset_is_counted_once():
    recs = [dict(rec(1_800_000_000 + i), _p=0, _o=i) for i in range(20)]
    again = [dict(r, _o=100 + i) for i, r in enumerate(recs[10:])]  # same event ids, new signal offsets
    state = ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(clock=LATER), RuleSet.load())
    state.process(as_signals(recs))
    state.process(as_signals(again))
    assert state.rates.turns[KEY] == 20


def test_one_turn_dated_hours_ahead_does_not_make_on_time_turns_late():
    """Security review finding 6: a turn 23 h ahead moved the watermark, and 500 of 500 on-time turns after
    it counted as late. The watermark now runs at most max_ahead_s past the wall clock."""
    now = 1_800_000_000.0
    w = MinuteWindows(grace_s=30, clock=lambda: now)
    w.add(KEY, now + 23 * 3600, 0.1, 0.0, False, False, False)  # a client with a wrong clock
    for i in range(500):  # the last 25 s, in order
        w.add(KEY, now - 25 + i * 0.05, 0.1, 0.0, False, False, False)
    assert w.late_dropped == 0
    rows = w.close(now=now + 23 * 3600 + 120)
    assert sum(r.turns for r in rows) == 501  # every turn counted, the future one in its own window


def test_a_model_version_that_goes_quiet_has_its_last_window_written():
    """Its watermark never passes the last window (no later turns come), so only wall-clock idleness closes it;
    a turn of that window arriving after the flush is late, not a second, partial row replacing the first."""
    clock = [1_800_000_000.0]
    w = MinuteWindows(grace_s=30, idle_flush_s=120, clock=lambda: clock[0])
    for i in range(30):
        w.add(KEY, clock[0] - 40 + i, 0.2, 0.0, False, False, False)
    assert w.close(keys=()) == []  # not idle yet
    clock[0] += 121
    rows = w.close(keys=())
    assert [(r.model_version, r.turns) for r in rows] == [(KEY[2], 30)]
    w.add(KEY, clock[0] - 150, 0.2, 0.0, False, False, False)  # belongs to the flushed minute
    assert w.late_dropped == 1 and w.close(keys=()) == []


def test_model_state_flushes_quiet_keys_only():
    clock = [1_800_000_000.0]
    state = ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(idle_flush_s=60, clock=lambda: clock[0]),
                       RuleSet.load())
    quiet = ("support-bot", "gpt-4o-mini", "2024-05-13", "assistant")
    state.process(as_signals([dict(rec(clock[0] - 10 + i), k=list(quiet), id=f"q{i}") for i in range(5)]))
    clock[0] += 45
    state.process(as_signals([dict(rec(clock[0] - 10 + i), id=f"b{i}") for i in range(5)]))
    clock[0] += 30  # quiet: 75 s without a turn; busy: 30 s
    assert [(r.model_version, r.turns) for r in state.flush_idle()] == [(quiet[2], 5)]


def test_memory_holds_at_most_max_keys_and_an_evicted_key_resumes_from_its_snapshot():
    """Security review finding 5: per-key state had no cap (≈21.5 KiB a key, ≈20 GiB at a million model
    versions). Keys beyond the cap, or idle past the TTL, leave memory once their state is stored, and a key
    that comes back resumes from its snapshot, counting on."""
    clock = [1_800_000_000.0]
    state = ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(clock=lambda: clock[0]), RuleSet.load(),
                       snapshot_every=1, max_keys=3, idle_ttl_s=3600, clock=lambda: clock[0])
    stored = {}
    keys = [("app", "m", f"v{i}", "user") for i in range(6)]
    for n, key in enumerate(keys):
        out = state.process(as_signals([dict(rec(clock[0] + j), k=list(key), id=f"{n}-{j}", _p=0, _o=10 * n + j)
                             for j in range(4)]))
        stored.update({k: blob for k, _, blob in out["snapshots"]})
        assert keys[n] not in state.evict()  # not stored yet: never evicted
        state.saved(out["snapshots"])
        evicted = state.evict()
        assert len(state.touched) <= 3 and all(k not in state.rates.turns for k in evicted)
    assert set(state.touched) == set(keys[3:]) and keys[0] not in state.drift.keys()
    state.restore(keys[0], stored[keys[0]])  # it comes back: resumed from ClickHouse
    state.process(as_signals([dict(rec(clock[0] + 10), k=list(keys[0]), id="back", _p=0, _o=1000)]))
    assert state.rates.turns[keys[0]] == 5
    clock[0] += 3601  # everything idle past the TTL leaves memory once stored
    state.saved(state.due_snapshots(force=True))
    state.evict()
    assert not state.touched and not state.rates.turns and not state.windows.buckets


def test_a_stopping_worker_writes_its_open_windows_and_the_final_row_counts_everything():
    """`make demo` stopped the worker before any minute window closed, so window_stats (and every chart built
    on it) stayed empty. At shutdown the open windows are written as they stand and stay open; the row written
    when a window closes carries every turn and replaces the provisional one (same key, later written_at)."""
    w = MinuteWindows(grace_s=30, clock=LATER)
    k = ("a", "m", "v", "assistant")
    for ts in (600, 610):
        w.add(k, ts, 0.2, 0.1, False, False, False)
    (early,) = w.provisional()
    assert (early.window_start.timestamp(), early.turns) == (600, 2)
    assert w.provisional() == [early]  # still open: nothing was popped
    w.add(k, 650, 0.4, 0.1, True, False, False)
    (final,) = w.close(now=2000)
    assert (final.window_start, final.turns, final.jailbreak_hits) == (early.window_start, 3, 1)
    assert w.provisional() == []
