"""Per-model-version state snapshots: plain versioned JSON, exact round trips, untrusted rows rejected.

No Kafka: the state is driven directly; stored rows go through the real embedded ClickHouse (chdb).
"""

import base64
import json
import logging
import pickle

import numpy as np
import pytest

from tests.signals import as_signals
from convmon.state.model_state import ModelState, restore_stored
from convmon.alerting.rules import RuleSet
from convmon.metrics import Metrics
from convmon.state import adwin as adwin_codec
from convmon.state.codec import REASONS, SnapshotError
from convmon.state.drift import DriftMonitor, as_key
from convmon.state.rates import RateMonitor
from convmon.state.windows import MinuteWindows
from convmon.store.migrate import migrate
from tests.unit.test_model_state import KEY, rec


def LATER() -> float:
    """The tests' wall clock: after every event time they use (the watermark is capped near the wall clock)."""
    return 2_000_000_000.0

V1 = KEY
V2 = (KEY[0], KEY[1], "2024-09-01", KEY[3])  # the next version of the same model: V1's reference is its baseline
T0 = 1_800_000_000


def new_state() -> ModelState:
    return ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(clock=LATER), RuleSet.load())


def signals(key, start, n, emb, p=0):
    out = []
    for i in range(start, start + n):
        r = rec(T0 + i, tox=0.05 + 0.01 * (i % 5), sent=0.3, tox_hit=i % 9 == 0, emb=emb(i))
        out.append(dict(r, k=list(key), id=f"{key[2]}-{i}", _p=p, _o=i))
    return out


@pytest.fixture(scope="module")
def streams():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=384), rng.normal(size=384)

    def emb(base):
        def f(i):
            v = base + 0.9 * rng.normal(size=384)
            return v / np.linalg.norm(v)
        return f

    def shifted(i):
        return emb(a if i < 450 else b)(i)

    v1 = signals(V1, 0, 1300, shifted)  # reference, then a shift at turn 450 (drift looks, ADWIN, an alert)
    v2 = signals(V2, 0, 600, emb(b), p=1)  # a new version: reservoir builder, version-change report, its own pin
    return v1, v2


def run(state, batches):
    out = []
    for batch in batches:
        o = state.process(as_signals(batch))
        out.append({
            "alerts": [(a.kind, a.alert_id, a.summary, a.status) for a in o["alerts"]],
            "reports": [(r.to_dict(), n) for r, n in o["reports"]],
            "windows": list(o["windows"]),
            "pinned": [ref.ref_id for ref in o["pinned"]],
        })
    return out


def chunks(recs, size=60):
    return [recs[i:i + size] for i in range(0, len(recs), size)]


def test_round_trip_of_a_realistic_state_is_exact_and_behaves_identically(streams):
    v1, v2 = streams
    state = new_state()
    run(state, chunks(v1[:600]) + chunks(v2[:150]))  # V1: pinned, mid-shift, live window; V2: mid-reservoir
    assert state.drift.reference(V1) is not None and state.drift.reference(V2) is None
    assert state.drift._states[as_key(V2)].baseline is not None

    blobs = {k: state.snapshot(k) for k in (V1, V2)}
    for k, blob in blobs.items():
        doc = json.loads(blob)  # plain JSON, versioned
        assert doc["v"] == 1 and doc["key"] == list(k)
        assert b"\x80" not in blob and not any(w in blob for w in (b"pickle", b"__reduce__"))
    d1 = json.loads(blobs[V1])["drift"]
    assert d1["ref"]["format"] == 1 and d1["ref"]["bandwidth_sq"] > 0 and d1["ref"]["nulls"]  # thresholds kept
    assert d1["adwin"]["window"]["rows"] and d1["looks"] > 0 and d1["buf"]["emb"]["dtype"] == "<f2"
    assert json.loads(blobs[V2])["drift"]["builder"]["rng"]["state"].startswith("0x")

    again = new_state()
    for k, blob in blobs.items():
        again.restore(k, blob.decode())  # the column is a String: stored and read back as text
        assert again.snapshot(k) == blob  # every field came back, bit for bit

    # the same further input gives the same decisions, alerts, windows, counters and next snapshots
    rest = chunks([r for pair in zip(v1[600:1200], v2[150:] + [None] * 600) for r in pair if r is not None])
    first, second = run(state, rest), run(again, rest)
    assert first == second
    flat = [x for o in first for x in o["alerts"]]
    assert any(kind == "embedding_drift" for kind, *_ in flat)
    assert any(r["kind"] == "version_change" for o in first for r, _ in o["reports"])
    assert any(o["pinned"] for o in first)  # V2's reservoir (and its random generator) went on exactly
    for k in (V1, V2):
        assert again.rates.turns[k] == state.rates.turns[k]
        assert again.drift._states[as_key(k)].looks == state.drift._states[as_key(k)].looks
        assert again.snapshot(k) == state.snapshot(k)


class Evil:
    """A pickle that writes a file when it is unpickled (stands for any code)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def legacy_row(path) -> str:
    """A row as convmon < 2 wrote them (base64 pickle of the state dict), carrying a payload."""
    state = {"drift": Evil(str(path)), "rates": (None, None), "windows": (None, None), "applied": None, "recent": []}
    return base64.b64encode(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)).decode()


def test_stored_rows_are_parsed_never_executed_bad_ones_skipped_and_counted(client, tmp_path, streams, caplog):
    v1, _ = streams
    target, control = tmp_path / "pwned", tmp_path / "control"
    pickle.loads(base64.b64decode(legacy_row(control)))  # the payload is live: unpickling it runs it
    assert control.exists()

    good = new_state()
    good.process(as_signals(v1[:120]))
    valid = json.loads(good.snapshot(V1))
    bad_types = {**valid, "rates": {**valid["rates"], "turns": "many"}}  # the drift part alone is fine
    bad_shape = json.loads(json.dumps(valid))
    bad_shape["drift"]["builder"]["items"]["shape"] = [120, 385]
    bad_adwin = json.loads(json.dumps(valid))
    bad_adwin["rates"]["tracks"]["toxicity"]["adwin"]["clock"] = 0  # would make river divide by zero
    bad_sample = json.loads(json.dumps(valid))
    bad_sample["drift"]["builder"]["n_seen"] = 1000  # 120 sampled items cannot be a reservoir of 1000 turns
    keys = {name: ("app", "m", name, "assistant") for name in
            ("pickle", "raw_pickle", "not_json", "list", "v2", "no_v", "types", "shape", "adwin", "sample", "other",
             "ok")}

    def doc(d, name):  # a document stored under its own row's key
        return json.dumps({**d, "key": list(keys[name])})

    rows = {
        "pickle": legacy_row(target),
        "raw_pickle": pickle.dumps(Evil(str(target)), protocol=0).decode("latin-1"),  # text pickle: not JSON
        "not_json": '{"v": 1, "key": [',
        "list": "[1, 2, 3]",
        "v2": doc({**valid, "v": 2}, "v2"),
        "no_v": doc({k: v for k, v in valid.items() if k != "v"}, "no_v"),
        "types": doc(bad_types, "types"),
        "shape": doc(bad_shape, "shape"),
        "adwin": doc(bad_adwin, "adwin"),
        "sample": doc(bad_sample, "sample"),
        "other": json.dumps(valid),  # V1's state stored under another key
        "ok": doc(valid, "ok"),
    }
    migrate(client)
    client.insert("model_state_snapshots", [[*keys[n], 0, 1, raw] for n, raw in rows.items()],
                  column_names=["app", "model_name", "model_version", "role", "taken_at", "turns", "state"])

    metrics, state = Metrics(), new_state()
    caplog.set_level(logging.DEBUG)
    stored = client.query("SELECT app, model_name, model_version, role, state FROM model_state_snapshots FINAL")
    restored = {k[2]: restore_stored(state, tuple(k), raw, metrics) for *k, raw in stored.result_rows}

    assert not target.exists()  # nothing from the store was executed
    assert restored == {name: name == "ok" for name in rows}
    count = {r: metrics.registry.get_sample_value("convmon_snapshot_rejected_total", {"reason": r}) for r in REASONS}
    assert count == {"legacy_pickle": 1, "not_json": 3, "version": 2, "key_mismatch": 1, "invalid": 4}
    # a rejected row changes nothing (not even its valid parts); the valid one resumes the key
    assert set(state.rates.turns) == {keys["ok"]} and state.rates.turns[keys["ok"]] == 120
    assert [k.model_version for k in state.drift.keys()] == ["ok"]
    # logged: the model-version key and the reason, never the row's contents
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "app|m|pickle|assistant (legacy_pickle)" in logged and "app|m|types|assistant (invalid)" in logged
    for raw in rows.values():
        assert raw[:40] not in logged
    assert "pwned" not in logged and "many" not in logged


def test_adwin_is_rebuilt_exactly_and_checked():
    from river import drift

    rng = np.random.default_rng(3)
    xs = [float(rng.random() < (0.05 if i < 2500 else 0.3)) for i in range(5000)]
    a = drift.ADWIN(delta=0.002)
    for x in xs[:2600]:
        a.update(x)
    snap = json.loads(json.dumps(adwin_codec.to_snapshot(a)))
    b, exact = adwin_codec.from_snapshot(snap)
    assert exact and b.width == a.width and b.estimation == a.estimation
    for x in xs[2600:]:
        a.update(x)
        b.update(x)
        assert (a.drift_detected, a.estimation, a.variance) == (b.drift_detected, b.estimation, b.variance)

    w = snap["window"]
    broken = [
        {**snap, "clock": 0},
        {**snap, "max_buckets": 10**9},
        {**snap, "delta": "0.002"},
        {**snap, "window": {**w, "width": w["width"] + 1}},  # width must match the histogram
        {**snap, "window": {**w, "rows": w["rows"] + [{"totals": [], "variances": []}]}},  # an empty top row
        {**snap, "window": {**w, "rows": [{"totals": [1.0] * 50, "variances": [0.0] * 50}]}},  # over max_buckets
        {**snap, "window": {**w, "tick": True}},
    ]
    for s in broken:
        with pytest.raises(SnapshotError) as e:
            adwin_codec.from_snapshot(s)
        assert e.value.reason == "invalid"


def test_an_unknown_river_layout_restores_fresh_detectors_and_keeps_the_rest(streams, monkeypatch):
    """If river's ADWIN state ever changes layout, snapshots keep only the detectors' parameters: a restore
    re-creates them (the drift one primed from the reference, as at pinning) and keeps everything else."""
    v1, _ = streams
    state = new_state()
    state.process(as_signals(v1[:500]))
    monkeypatch.setattr(adwin_codec, "layout_ok", lambda: False)
    doc = json.loads(state.snapshot(V1))
    assert doc["drift"]["adwin"]["window"] is None and doc["drift"]["adwin"]["clock"] == 8
    again = new_state()
    again.restore(V1, json.dumps(doc))
    st, st0 = again.drift._states[as_key(V1)], state.drift._states[as_key(V1)]
    assert st.adwin.width == len(st0.ref.loo_distances())  # re-primed with the reference's no-drift level
    assert (st.turns, st.live, st.looks, st.ref.ref_id) == (st0.turns, st0.live, st0.looks, st0.ref.ref_id)
    assert again.rates.turns[V1] == 500 and again.rates.tracks[V1]["toxicity"].det.width == 0
    again.process(as_signals(v1[500:700]))  # and it runs on
    assert again.rates.turns[V1] == 700


def test_mutated_snapshots_are_rejected_cleanly_or_run_on(streams):
    """Wrong types, values and missing fields anywhere in a snapshot: SnapshotError (a skipped row), or a
    state that keeps working, never another exception later in the worker."""
    import copy
    import random

    v1, _ = streams
    docs = []
    for n in (150, 420):  # before and after the reference is pinned
        s = new_state()
        s.process(as_signals(v1[:n]))
        docs.append(json.loads(s.snapshot(V1)))

    def paths(x, p=()):
        yield p
        items = x.items() if isinstance(x, dict) else enumerate(x[:2]) if isinstance(x, list) else ()
        for k, v in items:
            yield from paths(v, (*p, k))

    values = [None, True, -1, 1.5, float("nan"), float("inf"), 10**30, "x", [], {}, [1, 2]]
    where = [(i, p) for i, d in enumerate(docs) for p in paths(d) if p and "b64" not in p]
    rnd, outcomes = random.Random(0), {"restored": 0, "rejected": 0}
    for _ in range(80):
        i, p = rnd.choice(where)
        d = copy.deepcopy(docs[i])
        parent = d
        for k in p[:-1]:
            parent = parent[k]
        if isinstance(parent, dict) and rnd.random() < 0.2:
            del parent[p[-1]]
        else:
            parent[p[-1]] = rnd.choice(values)
        state = new_state()
        try:
            state.restore(V1, json.dumps(d))
        except SnapshotError:
            outcomes["rejected"] += 1
            continue
        outcomes["restored"] += 1
        state.process(as_signals(v1[420:480]))
        state.snapshot(V1)
    assert outcomes["rejected"] > 40 and outcomes["restored"] > 5, outcomes
