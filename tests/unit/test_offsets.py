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
