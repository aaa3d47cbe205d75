"""Offset continuity: skipped records are noticed once and re-read; nothing loops."""

from convmon.offsets import Gap, OffsetContinuity


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


def test_a_hole_that_is_really_there_is_accepted_after_one_reread():
    """Transaction markers or deleted records leave real holes: re-read once, then move on."""
    c = OffsetContinuity()
    feed(c, "p0", range(0, 10))
    assert feed(c, "p0", [11, 12, 13]) == [Gap("p0", 10, 11)]  # 12, 13 were already fetched
    assert feed(c, "p0", [11, 12, 13, 14]) == []  # the re-read starts at 11: offset 10 does not exist
    assert feed(c, "p0", [15, 17]) == [Gap("p0", 16, 17)]  # and later gaps are still noticed


def test_a_gap_that_keeps_coming_back_is_reread_a_bounded_number_of_times():
    c = OffsetContinuity()
    feed(c, "p0", range(0, 10))
    reports = []
    for _ in range(6):  # every re-read drops the same records again
        reports += feed(c, "p0", [20])
        reports += feed(c, "p0", [5])  # re-read starts (offsets went back) ...
        feed(c, "p0", range(6, 10))  # ... and skips 10..19 once more
    assert reports == [Gap("p0", 10, 20)] * 3


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
    from convmon.offsets import StallWatch

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
    from convmon.offsets import StallWatch

    w = StallWatch(after_s=60)
    for t in range(0, 600, 20):  # ClickHouse down: a batch held for minutes, position still
        assert w.check({"p0": (94, 148, True), "p1": (5, 5, False)}, now=t) == []
    assert w.check({"p0": (94, 148, False)}, now=620) == []  # released: the clock starts now
    assert [a.kind for a in w.check({"p0": (94, 148, False)}, now=681)] == ["seek"]
    assert w.check({}, now=700) == [] and w.stalled == set()  # revoked: forgotten
