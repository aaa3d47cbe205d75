"""Alert latency per hop (alerting/hops.py): the timing helpers, the hooks in the alert stage and the outbox
delivery, the histogram in /metrics, and the bench's quantiles read back from it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from types import SimpleNamespace

import pytest

from convmon.alerting import outbox
from convmon.alerting.hops import AlertHops, alert_origins, event_time, record_time, record_times
from convmon.alerting.model import Notification
from convmon.alerting.rules import RuleSet, turn_alerts
from convmon.alerting.stage import AlertStage
from convmon.wire import encode_alert
from tests.unit.test_alert_rules import THRESHOLDS, scored
from tests.unit.test_alert_stage import raw, toxic_alerts
from tests.unit.test_outbox import _alert


class Seen:
    """Collects (hop, seconds) observations."""

    def __init__(self):
        self.got: list[tuple[str, float]] = []

    def __call__(self, hop: str, seconds: float) -> None:
        self.got.append((hop, round(seconds, 6)))


def _event(partition: int, offset: int, timestamp):
    return SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset, timestamp=timestamp))


@pytest.mark.parametrize("ts, ms, expected", [
    (1700000000.25, False, 1700000000.25),  # Faust: seconds
    (1700000000250, True, 1700000000.25),  # aiokafka: milliseconds
    (None, False, None), (None, True, None), (-1, True, None), (0, False, None), ("1700000000", False, None),
    (True, False, None), (float("nan"), False, None), (float("inf"), True, None),
])
def test_record_time_reads_seconds_or_milliseconds_and_none_where_there_is_no_timestamp(ts, ms, expected):
    assert record_time(ts, ms=ms) == expected


def test_event_time_tolerates_events_without_a_message_or_timestamp():
    assert event_time(_event(0, 1, 1700000000.5)) == 1700000000.5
    assert event_time(_event(0, 1, None)) is None
    assert event_time(SimpleNamespace()) is None


def test_a_span_without_a_start_observes_nothing_and_a_negative_one_counts_as_zero():
    seen = Seen()
    hops = AlertHops(seen)
    assert hops.span("score", None, 10.0) is None
    assert hops.span("score", 10.5, 10.0) == 0.0  # producer's clock ahead of this one
    assert hops.span("score", 9.75, 10.0) == 0.25
    assert seen.got == [("score", 0.0), ("score", 0.25)]


def test_score_is_observed_for_each_alert_record_whose_turn_has_a_timestamp():
    seen = Seen()
    AlertHops(seen).scored([99.5, None, 99.0], acked=100.0)
    assert seen.got == [("score", 0.5), ("score", 1.0)]


def test_each_page_gets_its_topic_time_and_the_decision_time_even_without_a_record_timestamp():
    seen = Seen()
    AlertHops(seen).decided([99.9, None], taken=100.0, acked=100.02)
    assert seen.got == [("alerts_topic", 0.1), ("decide", 0.02), ("decide", 0.02)]


def test_outbox_hops_delivered_observes_both_failed_only_the_topic_and_no_timestamp_neither():
    seen = Seen()
    clock = iter([100.3, 100.4])
    hops = AlertHops(seen, now=lambda: next(clock))
    done = hops.taken_from_outbox(99_950, taken=100.0)  # record time 99.95 s
    done("delivered")
    assert seen.got == [("outbox_topic", 0.05), ("deliver", 0.3)]
    hops.taken_from_outbox(99_990, taken=100.0)("failed")
    assert seen.got[2:] == [("outbox_topic", 0.01)]
    assert hops.taken_from_outbox(None, taken=100.0) is None and hops.taken_from_outbox(-1, taken=100.0) is None
    assert len(seen.got) == 3


def test_an_alert_record_is_traced_to_the_kafka_time_of_the_turn_that_raised_it():
    turns = [dataclasses.replace(s, partition=2, offset=40 + i) for i, s in enumerate(scored(4, toxicity=0.99))]
    alerts = turn_alerts(RuleSet.load(), turns, THRESHOLDS, {})
    assert len(alerts) >= 2
    events = [_event(2, 40 + i, 1000.0 + i) for i in range(4)]
    values = [encode_alert(a)[1] for a in alerts]
    expected = [1000.0 + a.turn_index for a in alerts]  # make_turns: turn i is the batch's i-th record
    stranger = dataclasses.replace(alerts[0], conversation_id="elsewhere")
    values += [encode_alert(stranger)[1], b"\xff not json", json.dumps([1, 2]).encode()]
    assert alert_origins(values, turns, record_times(events)) == expected + [None, None, None]


def test_a_turn_without_a_timestamp_gives_no_origin():
    turns = [dataclasses.replace(s, partition=0, offset=i) for i, s in enumerate(scored(1, toxicity=0.99))]
    (alert,) = turn_alerts(RuleSet.load(), turns, THRESHOLDS, {})[:1]
    assert alert_origins([encode_alert(alert)[1]], turns, record_times([_event(0, 0, None)])) == [None]


def test_the_stage_names_the_records_that_page_firing_not_the_folded_the_resolutions_or_unrouted():
    stage = AlertStage(RuleSet.load(), ["slack", "webhook"], retention_s=86400)
    table: dict = {}
    first = toxic_alerts(3, key="a")
    out = stage.process(raw(first + toxic_alerts(1, key="b")), table.get, now=1000)
    assert out.pages == [0, 3]  # the first of incident a pages (to two channels: still one page), b's pages
    table.update((k, s) for _, k, s in out.changes)
    resolved = dataclasses.replace(first[0], status="resolved", alert_id="6b0f0b0e-1111-4222-8333-444455556666")
    out = stage.process(raw([resolved]), table.get, now=1001)
    assert len(out.outbox) == 2 and out.pages == []  # the resolution goes out, but it is not a page
    nowhere = AlertStage(RuleSet.load(), [], retention_s=86400)
    assert nowhere.process(raw(toxic_alerts(1, key="c")), {}.get, now=1000).pages == []


class _Consumer:
    def __init__(self, *a, **kw):
        pass

    def assignment(self):
        return set()

    def pause(self, *tps):
        raise AssertionError("nothing should be paused")


class _Channel:
    name = "hook"

    def __init__(self, refuse: set):
        self.refuse, self.got = refuse, []

    async def deliver(self, n):
        from convmon.alerting.model import DeliveryError

        if n.dedup_key in self.refuse:
            raise DeliveryError("400", retryable=False)
        self.got.append(n.dedup_key)


def test_the_outbox_delivery_times_firing_pages_and_commits_every_record():
    from aiokafka.structs import TopicPartition

    from convmon.alerting.delivery import Dispatcher
    from convmon.alerting.outbox_delivery import OutboxDelivery

    seen = Seen()
    tp = TopicPartition("outbox.hook", 0)

    def record(offset, key, status="firing", timestamp=99_900):
        body = outbox.encode(Notification(_alert(dedup_key=key), 1, None, status))
        return SimpleNamespace(offset=offset, value=body, timestamp=timestamp)

    async def go():
        channel = _Channel(refuse={"refused"})
        d = Dispatcher([channel])
        od = OutboxDelivery(_Consumer, {"hook": tp.topic}, {"hook": d}, hops=AlertHops(seen, now=lambda: 100.25))
        d.start()
        od._hand_over(tp, [record(0, "page"), record(1, "resolution", status="resolved"),
                           record(2, "no-timestamp", timestamp=None), record(3, "refused")], taken=100.0)
        await d.drain(5)
        await d.stop()
        return od, channel

    od, channel = asyncio.run(go())
    assert channel.got == ["page", "resolution", "no-timestamp"]
    assert od.positions.due() == {tp: 4}  # every record finished, timed or not
    # the page: 0.1 s in the outbox topic, 0.25 s to deliver; the refused page: its topic time only
    assert seen.got == [("outbox_topic", 0.1), ("outbox_topic", 0.1), ("deliver", 0.25)]


def test_the_worker_exports_every_hop_and_the_bench_reads_its_quantiles_back():
    from prometheus_client import generate_latest

    from convmon.metrics import Metrics
    from convmon_dev.e2e_bench import alert_hops, parse_metrics

    m = Metrics()
    empty = alert_hops(parse_metrics(generate_latest(m.registry).decode()))
    assert set(empty) == {"score", "alerts_topic", "decide", "outbox_topic", "deliver"}  # exported from 0
    assert empty["score"] == {"n": 0, "mean": None, "p50": None, "p99": None, "over_last_bucket": 0}
    values = [0.012] * 50 + [0.4] * 49 + [3.3]  # p50 in (0.01, 0.02], p99 in (0.3, 0.4]
    for v in values:
        m.observe_hop("score", v)
    m.observe_hop("deliver", 20.0)  # beyond the last bucket
    got = alert_hops(parse_metrics(generate_latest(m.registry).decode()))
    assert got["score"]["n"] == 100 and got["score"]["mean"] == pytest.approx(sum(values) / 100, abs=1e-4)
    assert 0.01 < got["score"]["p50"] <= 0.02 and 0.3 < got["score"]["p99"] <= 0.4
    assert got["score"]["over_last_bucket"] == 0
    assert got["deliver"]["p99"] == 10.0 and got["deliver"]["over_last_bucket"] == 1  # a lower bound, and said so
    assert got["decide"]["n"] == 0


def test_the_summary_marks_a_quantile_beyond_the_last_bucket_as_a_lower_bound():
    from convmon_dev.e2e_bench import hops_line

    hops = {"score": {"n": 100, "p50": 10.0, "p99": 10.0, "over_last_bucket": 60},
            "deliver": {"n": 100, "p50": 0.02, "p99": 10.0, "over_last_bucket": 2},
            "decide": {"n": 0, "p50": None, "p99": None, "over_last_bucket": 0}}
    assert hops_line(hops) == "score ≥10.000/≥10.000  deliver 0.020/≥10.000  decide -/-"


INF = math.inf


@pytest.mark.parametrize("buckets, q, expected", [
    ([(0.1, 10), (0.5, 60), (1.0, 100), (INF, 100)], 0.5, 0.1 + 0.4 * 40 / 50),
    ([(0.1, 10), (0.5, 60), (1.0, 100), (INF, 100)], 0.99, 0.5 + 0.5 * 39 / 40),
    ([(0.1, 10), (0.5, 60), (1.0, 100), (INF, 100)], 0.05, 0.05),  # the lowest bucket starts at 0
    ([(0.1, 10), (0.5, 10), (1.0, 20), (INF, 20)], 0.75, 0.75),  # an empty bucket is skipped
    ([(0.1, 1), (1.0, 1), (INF, 10)], 0.99, 1.0),  # in +Inf: the highest finite bound
    ([(INF, 10), (1.0, 5), (0.1, 0)], 0.5, 1.0),  # unsorted input
    ([(0.1, 0), (INF, 0)], 0.5, None),  # nothing observed
    ([], 0.5, None),
    ([(0.1, 3), (1.0, 5)], 0.5, None),  # no +Inf bucket: not a whole histogram
])
def test_quantiles_are_interpolated_inside_the_bucket_that_holds_them(buckets, q, expected):
    from convmon_dev.e2e_bench import histogram_quantile

    got = histogram_quantile(buckets, q)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_a_quantile_outside_0_to_1_is_an_error():
    from convmon_dev.e2e_bench import histogram_quantile

    with pytest.raises(ValueError):
        histogram_quantile([(1.0, 1), (INF, 1)], 99)


def test_histogram_buckets_are_grouped_by_label_and_other_metrics_ignored():
    from convmon_dev.e2e_bench import histogram_buckets, parse_metrics

    text = "\n".join([
        "# HELP x_seconds x", "# TYPE x_seconds histogram",
        'x_seconds_bucket{hop="b",le="1.0"} 2.0', 'x_seconds_bucket{hop="a",le="+Inf"} 3.0',
        'x_seconds_bucket{hop="a",le="0.5"} 1.0', 'x_seconds_count{hop="a"} 3.0',
        'y_seconds_bucket{hop="a",le="0.5"} 7.0', 'x_seconds_bucket{hop="b",le="+Inf"} 2.0'])
    assert histogram_buckets(parse_metrics(text), "x_seconds", "hop") == {
        "a": [(0.5, 1.0), (INF, 3.0)], "b": [(1.0, 2.0), (INF, 2.0)]}
