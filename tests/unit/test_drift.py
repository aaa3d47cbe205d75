"""Embedding drift per model version (convmon.state.drift) on real suite embeddings.

Embeddings of models/data/drift/replies_style_{a,b}.jsonl (two reply styles for the same kinds of
questions) are computed once per module with the shipped model suite.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from convmon.scoring.suite import SuiteModel
from convmon.state.drift import (
    DriftConfig,
    DriftKey,
    DriftMonitor,
    Reference,
    look_alpha,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "models" / "data" / "drift"
KEY = DriftKey("support-bot", "gpt-x", "v1", "assistant")
SIGNALS = ("toxicity", "sentiment", "jailbreak")


def _texts(name):
    return [json.loads(line)["text"] for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def pools():
    model = SuiteModel(ROOT / "models", threads=2)
    out = {}
    for style in ("a", "b"):
        rows, emb = model.fields(_texts(f"replies_style_{style}.jsonl"))
        out[style] = (np.asarray(emb, np.float32), [{k: r[k] for k in SIGNALS} for r in rows])
    return out


def _feed(mon, key, pools, styles, rng):
    reports = []
    for t, style in enumerate(styles):
        emb, scores = pools[style]
        i = int(rng.integers(len(emb)))
        r = mon.update(key, emb[i], ts=float(t), scores=scores[i])
        if r is not None:
            reports.append(r)
    return reports


def test_data_files_are_two_styles_of_distinct_replies():
    a, b = _texts("replies_style_a.jsonl"), _texts("replies_style_b.jsonl")
    assert len(a) >= 300 and len(b) >= 300
    assert len(set(a)) == len(a) and len(set(b)) == len(b)
    # B is the verbose, hedged style
    assert np.median([len(t.split()) for t in b]) > 2.5 * np.median([len(t.split()) for t in a])


def test_style_switch_is_detected_within_two_steps(pools):
    cfg = DriftConfig(seed=0)
    switch, turns = 600, 900
    rng = np.random.default_rng(7)
    reports = _feed(DriftMonitor(cfg), KEY, pools, ["a" if t < switch else "b" for t in range(turns)], rng)
    assert not any(r.drifted for r in reports if r.turn_end < switch), "alert before the switch"
    first = next(r for r in reports if r.drifted)
    delay = first.turn_end - switch + 1
    assert delay <= 2 * cfg.step, delay
    assert first.new_alert and first.key == KEY
    assert all(first.statistics[s] > first.thresholds[s] for s in ("centroid", "mmd2"))
    # the drift is persistent: every later scheduled look whose window is all style B agrees
    assert all(r.drifted for r in reports if r.kind == "window" and r.turn_start >= switch)


def test_stable_stream_of_the_same_size_raises_no_alert(pools):
    rng = np.random.default_rng(7)
    reports = _feed(DriftMonitor(DriftConfig(seed=0)), KEY, pools, ["a"] * 900, rng)
    assert len(reports) >= 8  # looks every 50 turns after reference (300) + first window (200)
    assert not any(r.drifted for r in reports)


def test_reference_round_trip_is_exact_and_compact(pools):
    mon = DriftMonitor(DriftConfig(seed=3))
    rng = np.random.default_rng(3)
    _feed(mon, KEY, pools, ["a"] * 300, rng)
    ref = mon.reference(KEY)
    assert ref is not None and ref.n == 300
    blob = json.dumps(ref.to_dict())
    assert len(blob) < 1_000_000
    back = Reference.from_dict(json.loads(blob))
    assert back.key == KEY and back.ref_id == ref.ref_id and back.n_seen == 300
    assert np.array_equal(back.embeddings, ref.embeddings)
    assert back.score_stats == ref.score_stats
    window = pools["b"][0][:200]
    assert back.statistics(window) == ref.statistics(window)
    for m in (200, 50):
        assert back.thresholds(m, 1e-3) == ref.thresholds(m, 1e-3)
    # a restored monitor continues exactly like the original
    mon2 = DriftMonitor(DriftConfig(seed=3))
    mon2.load_reference(back)
    r1 = _feed(mon, KEY, pools, ["a"] * 100 + ["b"] * 200, np.random.default_rng(9))
    r2 = _feed(mon2, KEY, pools, ["a"] * 100 + ["b"] * 200, np.random.default_rng(9))
    assert [x.to_dict() for x in r1] == [x.to_dict() for x in r2]
    assert any(x.drifted for x in r1)


def test_thresholds_come_from_the_reference(pools):
    ea, eb = pools["a"][0], pools["b"][0]
    ref_a = Reference.build(KEY, ea[:300], window_sizes=(200,), n_boot=500)
    ref_a2 = Reference.build(KEY, ea[-300:], window_sizes=(200,), n_boot=500)
    ref_b = Reference.build(KEY, eb[:300], window_sizes=(200,), n_boot=500)
    t = [r.thresholds(200, 1e-3) for r in (ref_a, ref_a2, ref_b)]
    assert t[0] != t[1] and t[0] != t[2]  # another reference → other thresholds
    # the threshold is the bootstrap null's fitted tail, and it tightens with more data per window
    null = ref_a.null("centroid", 200)
    assert t[0]["centroid"] == pytest.approx(null.u + null.beta * np.log(0.1 / 1e-3))
    assert null.u <= null.q99_empirical <= t[0]["centroid"]
    assert ref_a.thresholds(50, 1e-3)["centroid"] > t[0]["centroid"]
    # repeated looks: later looks are tested at smaller levels (alpha spending sums to alpha)
    assert sum(look_alpha(0.01, k) for k in range(1, 10_000)) == pytest.approx(0.01, rel=1e-3)
    assert ref_a.thresholds(200, look_alpha(0.01, 20))["mmd2"] > ref_a.thresholds(200, look_alpha(0.01, 1))["mmd2"]
    # a held-out style-A window stays below the reference's own thresholds; a style-B one does not
    # the style files are ordered by topic (support first, cooking and animals last): the held-out
    # window is a random draw of the same style, not the file's tail (a topic shift the monitor flags)
    perm = np.random.default_rng(0).permutation(len(ea))
    ref_h = Reference.build(KEY, ea[perm[:250]], n_boot=500)
    held_out, other = ref_h.test(ea[perm[250:]], 0.01), ref_h.test(eb[:66], 0.01)
    assert not held_out[3] and other[3]


def test_version_change_compares_with_the_previous_versions_reference(pools):
    cfg = DriftConfig(seed=1)
    for new_style, expect in (("b", True), ("a", False)):
        mon = DriftMonitor(cfg)
        rng = np.random.default_rng(11)
        _feed(mon, KEY, pools, ["a"] * cfg.ref_turns, rng)
        v2 = KEY._replace(model_version="v2")
        reports = _feed(mon, v2, pools, [new_style] * cfg.window, rng)
        assert len(reports) == 1
        r = reports[0]
        assert r.kind == "version_change" and r.key == v2 and r.baseline_key == KEY and r.n == cfg.window
        assert r.drifted is expect
        assert set(r.signals) == set(SIGNALS)
        assert all(set(v) >= {"ref_mean", "window_mean", "diff", "z"} for v in r.signals.values())
        json.dumps(r.to_dict())
    # direct use with an explicit window and score dicts
    ref = mon.reference(KEY)
    emb_b, sc_b = pools["b"]
    rep = mon.version_change_report(ref, emb_b[:150], sc_b[:150])
    assert rep.drifted and rep.signals["jailbreak"]["n_window"] == 150


def test_state_is_bounded_and_the_reservoir_subsamples():
    cfg = DriftConfig(ref_turns=60, ref_size=20, window=20, step=10, confirm_turns=10, n_boot=200, max_keys=3)
    mon = DriftMonitor(cfg)
    rng = np.random.default_rng(0)
    for v in range(5):
        key = KEY._replace(model_version=f"v{v}")
        for _ in range(150):
            e = rng.normal(size=384).astype(np.float32)
            mon.update(key, e / np.linalg.norm(e))
    assert len(mon.keys()) == 3
    for k in mon.keys():
        st = mon._states[k]
        assert len(st.buf) <= cfg.window
        assert st.ref.n == cfg.ref_size and st.ref.n_seen == cfg.ref_turns
