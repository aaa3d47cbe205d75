"""Offset continuity: skipped records are noticed once and re-read; nothing loops."""

from convmon.stream.offsets import Gap, OffsetContinuity


def feed(c: OffsetContinuity, tp, offsets):
    return [g for o in offsets if (g := c.observe(tp, o)) is not None]


def test_contiguous_offsets_and_redeliveries_raise_nothing():
    c = OffsetContinuity()
    assert feed(c, "p0", range(100, 200)) == []
    assert feed(c, "p0", [150, 199, 199]) == []  # at-least-once redelivery is not a gap
    assert feed(c, "p0", [200, 201]) == []


def test_skipped_records_are_reported_once_then_reread():
    c = OffsetContinuity()
    assert feed(c, "p0", range(128, 150)) == []
    # the fetch loop dropped 150..450: the next record is 451
    assert feed(c, "p0", [451]) == [Gap("p0", 150, 451)]
    # records buffered past the gap keep arriving until the seek takes effect: no second report
    assert feed(c, "p0", range(452, 500)) == []
    # the re-read: 150.. and then 451.. again, all contiguous
    assert feed(c, "p0", range(150, 600)) == []
    assert feed(c, "p0", [600, 601]) == []


def test_a_hole_that_is_really_there_is_accepted_when_two_rereads_agree():
    """Transaction markers or deleted records leave real holes: re-read until two re-reads agree."""
    c = OffsetContinuity()
    feed(c, "p0", range(0, 10))
    assert feed(c, "p0", [11, 12, 13]) == [Gap("p0", 10, 11)]  # 12, 13 were already fetched
    assert feed(c, "p0", [11]) == [Gap("p0", 10, 11)]  # the re-read began past 10: once more
    assert feed(c, "p0", [12, 13]) == []
    assert feed(c, "p0", [11]) == [Gap("p0", 10, 11, accepted=True)]  # again at 11: offset 10 does not exist
    assert feed(c, "p0", [12, 13, 14]) == []
    assert feed(c, "p0", [15, 17]) == [Gap("p0", 16, 17)]  # and later gaps are still noticed


def test_a_reread_that_is_dropped_again_is_not_taken_for_a_hole():
    """The failure seen in CI: the re-read of 445..499 itself began late. Those records exist."""
    c = OffsetContinuity()
    feed(c, "p2", range(400, 445))
    assert feed(c, "p2", [500]) == [Gap("p2", 445, 500)]
    assert feed(c, "p2", [470]) == [Gap("p2", 445, 470)]  # re-read began at 470: 445..469 still owed
    assert feed(c, "p2", range(445, 600)) == []  # the next re-read gets them all


def test_a_seek_that_never_takes_effect_is_asked_again():
    from convmon.stream.offsets import RESYNC_PATIENCE

    c = OffsetContinuity()
    feed(c, "p0", range(0, 10))
    assert feed(c, "p0", [20]) == [Gap("p0", 10, 20)]
    later = feed(c, "p0", range(21, 21 + RESYNC_PATIENCE + 1))
    assert later == [Gap("p0", 10, 20 + RESYNC_PATIENCE + 1)]


def test_a_gap_that_keeps_coming_back_is_reread_a_bounded_number_of_times():
    c = OffsetContinuity()
    feed(c, "p0", range(0, 10))
    reports = []
    for _ in range(6):  # every re-read drops the same records again
        reports += feed(c, "p0", [20])
        reports += feed(c, "p0", [5])  # re-read starts (offsets went back) ...
        feed(c, "p0", range(6, 10))  # ... and skips 10..19 once more
    assert reports == [Gap("p0", 10, 20)] * 3 + [Gap("p0", 10, 20, accepted=True)]


def test_start_position_is_checked_against_the_committed_offset():
    c = OffsetContinuity()
    c.expect("p1", 128)
    assert c.observe("p1", 429) == Gap("p1", 128, 429)
    c.expect("p2", None)  # unknown start: the first record sets it
    assert c.observe("p2", 77) is None and c.observe("p2", 78) is None


def test_partitions_are_independent_and_a_new_generation_forgets():
    c = OffsetContinuity()
    c.new_generation(1)
    feed(c, "p0", range(0, 5))
    feed(c, "p1", range(50, 55))
    assert c.observe("p1", 57) == Gap("p1", 55, 57)
    assert c.observe("p0", 5) is None
    c.new_generation(2)
    assert not c.known("p0")
    assert c.observe("p1", 900) is None  # positions after a rebalance start fresh


def test_a_stalled_partition_is_re_read_then_the_group_rejoined_then_recovered():
    from convmon.stream.offsets import StallWatch

    w = StallWatch(after_s=60)
    assert w.check({"p0": (94, 148, False), "p1": (10, 10, False)}, now=0) == []
    assert w.check({"p0": (94, 148, False), "p1": (10, 12, False)}, now=30) == []
    (a,) = w.check({"p0": (94, 148, False), "p1": (12, 12, False)}, now=61)
    assert (a.tp, a.kind, a.position, a.highwater, a.stalled_s) == ("p0", "seek", 94, 148, 61)
    assert w.stalled == {"p0"}
    assert w.check({"p0": (94, 148, False)}, now=100) == []  # the next step waits another after_s
    (b,) = w.check({"p0": (94, 148, False)}, now=122)
    assert b.kind == "rejoin"
    (c,) = w.check({"p0": (120, 148, False)}, now=125)
    assert c.kind == "recovered" and w.stalled == set()


def test_a_partition_whose_records_are_in_processing_or_caught_up_is_not_stalled():
    from convmon.stream.offsets import StallWatch

    w = StallWatch(after_s=60)
    for t in range(0, 600, 20):  # ClickHouse down: a batch held for minutes, position still
        assert w.check({"p0": (94, 148, True), "p1": (5, 5, False)}, now=t) == []
    assert w.check({"p0": (94, 148, False)}, now=620) == []  # released: the clock starts now
    assert [a.kind for a in w.check({"p0": (94, 148, False)}, now=681)] == ["seek"]
    assert w.check({}, now=700) == [] and w.stalled == set()  # revoked: forgotten


def test_a_record_dropped_behind_the_commit_is_found_even_while_later_records_flow():
    """Read past, never processed, never acknowledged: the commit waits for it (stream/consumer.py)."""
    from convmon.stream.offsets import PartitionView, StallWatch

    w = StallWatch(after_s=60)
    for t, pos in zip(range(0, 61, 10), range(500, 1200, 100)):  # new turns keep coming and being scored
        acts = w.check({"p2": PartitionView(pos, pos + 10, True, committed=445, committed_in_hand=False)}, now=t)
    assert [(a.kind, a.tp) for a in acts] == [("seek", "p2")]
    (r,) = w.check({"p2": PartitionView(1300, 1300, True, committed=445, committed_in_hand=True)}, now=70)
    assert r.kind == "recovered"
    # a slow record at the committed offset (in processing) is not a stall
    for t in range(0, 300, 20):
        assert w.check({"p3": PartitionView(900, 900, True, committed=445, committed_in_hand=True)}, now=t) == []


def test_a_finished_partition_is_never_stalled_whatever_the_position_says():
    """Issue 20: after kills and a broker restart an idle, fully committed partition showed its position one past
    the high watermark (5904 of 5903, committed 5903) and the watchdog rejoined the group again and again."""
    from convmon.stream.offsets import PartitionView, StallWatch

    w = StallWatch(after_s=60)
    for t in range(0, 1200, 5):
        assert w.check({"turns/0": PartitionView(5904, 5903, False, committed=5903, committed_in_hand=False),
                        "alerts/0": PartitionView(503, 502, False, committed=502, committed_in_hand=False)}, now=t) == []
    assert w.stalled == set()
    # one record really owed below the high watermark is still found
    acts = []
    for t in range(0, 130, 5):
        acts += w.check({"turns/1": PartitionView(5904, 5904, False, committed=5903, committed_in_hand=False)}, now=t)
    assert [a.kind for a in acts] == ["seek", "rejoin"]


def test_rejoins_back_off_and_stay_within_the_hourly_budget():
    """A stall no rejoin cures: rejoins slow down exponentially and never exceed the budget per hour."""
    from convmon.stream.offsets import StallWatch

    w = StallWatch(after_s=60, max_rejoins_per_hour=4)
    times = []
    for t in range(0, 4 * 3600, 5):
        for a in w.check({"p0": (94, 148, False), "p1": (10, 20, False)}, now=t):
            if a.kind == "rejoin":
                times.append(t)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) >= 4 and gaps[:3] == sorted(gaps[:3]) and gaps[0] < gaps[2], times  # backing off
    assert all(sum(1 for u in times if t <= u < t + 3600) <= 4 for t in times), times  # the budget
    assert max(gaps) <= 3600 + 65, times  # still tries, at least once an hour


def test_a_stall_a_rejoin_does_not_cure_becomes_one_alert_then_resolves():
    """Issue 20: seek, rejoin, and if the partition is still stuck after_s later, one `escalate` (the worker raises
    a consumer_stalled alert) instead of a loop; the recovery says the stall had been escalated."""
    from convmon.stream.offsets import StallWatch

    w = StallWatch(after_s=60, max_rejoins_per_hour=4)
    acts = []
    for t in range(0, 1800, 5):
        acts += [(t, a.kind) for a in w.check({"p0": (94, 148, False)}, now=t)]
    kinds = [k for _, k in acts]
    assert kinds[:3] == ["seek", "rejoin", "escalate"], acts
    assert kinds.count("escalate") == 1 and acts[2][0] - acts[1][0] >= 60, acts  # after a rejoin had its chance
    (r,) = w.check({"p0": (148, 148, False)}, now=1800)
    assert r.kind == "recovered" and r.escalated
    # a stall cured by the seek is never escalated
    w2 = StallWatch(after_s=60)
    kinds = [a.kind for t in range(0, 125, 5) for a in w2.check({"p1": (10, 20, False)}, now=t)]
    (r,) = w2.check({"p1": (20, 20, False)}, now=130)
    assert kinds == ["seek", "rejoin"] and r.kind == "recovered" and not r.escalated


def test_with_the_rejoin_budget_spent_a_new_stall_is_escalated_without_waiting_for_a_rejoin():
    from convmon.stream.offsets import StallWatch

    w = StallWatch(after_s=60, max_rejoins_per_hour=1)
    kinds = [a.kind for t in range(0, 125, 5) for a in w.check({"p0": (94, 148, False)}, now=t)]
    assert kinds == ["seek", "rejoin"]
    w.check({"p0": (148, 148, False)}, now=130)  # cured
    kinds = [a.kind for t in range(135, 400, 5) for a in w.check({"p1": (5, 9, False)}, now=t)]
    assert kinds == ["seek", "escalate"]  # no rejoin left this hour: on-call hears of it instead


def test_partitions_stalled_together_share_one_rejoin_and_are_not_escalated_for_it():
    from convmon.stream.offsets import StallWatch

    w = StallWatch(after_s=60)
    acts = [(a.tp, a.kind) for t in range(0, 125, 5)
            for a in w.check({"p0": (94, 148, False), "p1": (10, 20, False)}, now=t)]
    assert sorted(k for _, k in acts) == ["rejoin", "seek", "seek"] and w.steps == {"p0": 2, "p1": 2}


def test_an_escalated_partition_moved_to_another_worker_is_released():
    from convmon.stream.offsets import StallWatch

    w = StallWatch(after_s=60, max_rejoins_per_hour=0)  # no rejoins at all: escalated after the seek
    kinds = [a.kind for t in range(0, 125, 5) for a in w.check({"p0": (94, 148, False)}, now=t)]
    assert kinds == ["seek", "escalate"]
    (r,) = w.check({}, now=130)
    assert (r.kind, r.tp, r.escalated) == ("released", "p0", True) and w.stalled == set()


def test_the_chaos_run_recognises_every_line_the_watchdog_logs():
    """The chaos run's idle check counts the watchdog's log lines: if their wording drifted apart, it would pass
    whatever happened."""
    from convmon.stream.watchdog import ESCALATE_LOG, REJOIN_LOG, STALL_LOG
    from convmon_dev.chaos import watchdog_events

    log = "\n".join(["[2026-12-06 21:36:12,621] [13618] [WARNING] " + STALL_LOG % ("t.turns/1", 4016, 4016, 4000, 15.2),
                     REJOIN_LOG % ("t.turns/1", 4016, 4017, 1, 4), ESCALATE_LOG % ("t.alerts/0", 5, 9, 75.0),
                     "partition t.turns/1 moves again (position 4017 of 4017)"])
    ev = watchdog_events(log)
    assert ev == {"stalls": ["t.turns/1 at 4016 of 4016, committed 4000, no progress for 15s"],
                  "rejoins": ["t.turns/1 still stalled at 4016 of 4017 after a re-read"],
                  "escalations": ["t.alerts/0 at 5 of 9 for 75s"]}


def test_no_stall_is_counted_while_the_group_rebalances_or_a_commit_waits_for_the_broker():
    """The chaos run: stall warnings 15 s into a rebalance and into a broker restart, both of which the group
    cures by itself. While the group settles, the clocks restart; a real stall afterwards is still found."""
    from convmon.stream.offsets import StallWatch

    w = StallWatch(after_s=15)
    assert not w.skip(False, now=0) and w.check({"turns/1": (6444, 6445, False)}, now=0) == []
    assert all(w.skip(True, now=t) for t in range(5, 40, 5))  # rebalancing (or a commit hanging) for 35 s
    assert not w.skip(False, now=40) and w.check({"turns/1": (6444, 6445, False)}, now=40) == []  # not 40 s stalled
    assert [a.kind for a in w.check({"turns/1": (6444, 6445, False)}, now=56)] == ["seek"]  # stuck after it


def test_a_group_that_never_stops_settling_is_watched_as_usual():
    from convmon.stream.offsets import StallWatch

    w = StallWatch(after_s=15)  # settling is honoured for at most 4 x 15 s in a row
    w.check({"turns/1": (10, 20, False)}, now=0)
    assert all(w.skip(True, now=t) for t in range(0, 60, 5))
    assert not w.skip(True, now=60)
    assert w.check({"turns/1": (10, 20, False)}, now=60) == []
    assert not w.skip(True, now=76) and [a.kind for a in w.check({"turns/1": (10, 20, False)}, now=76)] == ["seek"]


def _rereader_run(holds):
    """Drives stream/rereads.Rereader over a partition whose re-reads of offset 10 are dropped every time
    (the chaos run's turns/1 offset 7668): returns (seeks asked, gaps accepted, probes made)."""
    import asyncio
    from types import SimpleNamespace

    from convmon.stream.rereads import Rereader

    from faust.types import TP

    tp = TP("chat.turns", 1)
    seeks, accepted, probes = [], [], []

    class Consumer:
        _committed_offset = {tp: 0}

        async def seek(self, tp_, offset):
            seeks.append(offset)

        async def accept_gap(self, tp_, start, end):
            accepted.append((start, end))

    class Counter:
        def labels(self, *_):
            return self

        def inc(self, *_):
            pass

    app = SimpleNamespace(consumer_generation_id=1, consumer=Consumer())

    def probe(topic, partition, start, end):
        probes.append((topic, partition, start, end))
        return holds

    r = Rereader(app, SimpleNamespace(offset_gaps=Counter()), holds_records=probe)

    def batch(offsets):
        return [SimpleNamespace(message=SimpleNamespace(tp=tp, offset=o)) for o in offsets]

    async def go():
        await r.check(batch(range(0, 10)))
        for _ in range(6):  # every re-read begins at 11: offset 10 is dropped again and again
            await r.check(batch([11, 12]))
            await r.check(batch([5]))
            await r.check(batch(range(6, 10)))

    asyncio.run(go())
    return seeks, accepted, probes


def test_a_hole_the_broker_still_holds_records_in_is_read_again_not_committed_over():
    """Chaos run, 2026-12-07: the re-reads of turns/1 offset 7668 all began at 7669, the hole was accepted
    and the turn lost. Now the broker is asked first; while it holds the record, the offsets stay owed."""
    seeks, accepted, probes = _rereader_run(holds=True)
    assert accepted == []
    assert probes and probes[0] == ("chat.turns", 1, 10, 11)
    assert len(seeks) == 6 and set(seeks) == {10}  # every round asks for the re-read again


def test_a_hole_the_broker_confirms_is_committed_over_and_an_unanswered_check_keeps_it_owed():
    seeks, accepted, probes = _rereader_run(holds=False)
    assert accepted == [(10, 10)] and len(probes) == 1
    seeks, accepted, probes = _rereader_run(holds=None)  # the broker did not answer
    assert accepted == [] and len(seeks) == 6
