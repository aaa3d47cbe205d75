"""The outbox record format, routing of decided notifications, and the channel-backlog alert."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from convmon.alerting.stage import targets
from convmon.alerting.backlog import BacklogWatch
from convmon.alerting import outbox
from convmon.alerting.incidents import IncidentBook
from convmon.alerting.model import Alert, Notification
from convmon.alerting.rules import RuleSet


def _alert(**kw) -> Alert:
    base = dict(kind="toxic_turn", severity="warning", summary="toxic turn", dedup_key="toxic_turn|app=a|c=ps_1",
                app="a", model_name="m", model_version="v1", role="user", conversation_id="ps_1",
                details={"score": 0.97}, labels={"team": "ts"}, ts=datetime(2026, 11, 30, 12, tzinfo=timezone.utc),
                alert_id="4b0f0b0e-1111-4222-8333-444455556666")
    base.update(kw)
    return Alert(**base)


def test_a_notification_survives_the_outbox_record_unchanged():
    n = Notification(_alert(), count=3, first_ts=datetime(2026, 11, 30, 11, tzinfo=timezone.utc), status="firing")
    back = outbox.decode(outbox.encode(n))
    assert back == n
    assert back.notification_id == n.notification_id


def test_the_same_decision_has_the_same_id_and_another_decision_another():
    """A re-read alert decided again after a crash repeats the id, so a receiver can drop the repeat."""
    a = Notification(_alert(), 1, None, "firing")
    assert a.notification_id == Notification(_alert(), 1, None, "firing").notification_id
    assert a.notification_id != Notification(_alert(), 1, None, "resolved").notification_id
    assert a.notification_id != Notification(_alert(alert_id="another"), 1, None, "firing").notification_id
    assert a.notification_id != Notification(_alert(), 2, None, "firing").notification_id


@pytest.mark.parametrize("raw, why", [
    (b"not json", "unreadable"),
    (b'{"format": 2, "alert": {}}', "format 2"),
    (b'{"format": 1, "alert": {"kind": "x"}, "count": 1, "status": "firing"}', "unreadable"),
    (b'[1, 2]', "unreadable"),
])
def test_an_unreadable_record_is_a_clear_error(raw, why):
    with pytest.raises(outbox.BadRecord, match=why):
        outbox.decode(raw)


def test_channel_names_must_make_valid_topic_names():
    assert outbox.topic_names("convmon.outbox.", [{"type": "slack", "name": "oncall-1"}, {"type": "pagerduty"}]) == \
        {"oncall-1": "convmon.outbox.oncall-1", "pagerduty": "convmon.outbox.pagerduty"}
    with pytest.raises(ValueError, match="outbox topic"):
        outbox.topic_names("convmon.outbox.", [{"type": "slack", "name": "on call/eu"}])


def test_routing_follows_the_rule_and_a_backlog_alert_avoids_its_own_channel():
    chans = ["slack", "pd", "hook"]
    assert targets(_alert(), None, chans) == chans
    assert targets(_alert(), ("pd", "gone"), chans) == ["pd"]
    backlog = _alert(kind="channel_backlog", details={"channel": "slack"})
    assert targets(backlog, None, chans) == ["pd", "hook"]


def test_a_stuck_channel_raises_one_backlog_incident_that_resolves_when_it_clears():
    watch = BacklogWatch(after_s=300)
    young = {"slack": {"pending": 40, "oldest_s": 120.0}, "pd": {"pending": 0, "oldest_s": 0.0}}
    assert watch.check(young, now=1000) == []
    old = {"slack": {"pending": 1500, "oldest_s": 301.0, "last_error": "HTTP 503"}, "pd": {"pending": 0}}
    (fire,) = watch.check(old, now=1010)
    assert fire.kind == "channel_backlog" and fire.status == "firing" and fire.details["channel"] == "slack"
    assert "1500" in fire.summary and "HTTP 503" in fire.summary
    assert watch.check(old, now=1025) == []  # one incident, not one alert per check
    (res,) = watch.check({"slack": {"pending": 0, "oldest_s": 0.0}}, now=1100)
    assert res.status == "resolved" and res.dedup_key == fire.dedup_key

    # the incident book pages it once and resolves it
    book, now = IncidentBook(RuleSet.load()), 1010.0
    state, d1 = book.offer(None, fire, now)
    state, d2 = book.offer(state, fire, now + 15)
    state, d3 = book.offer(state, res, now + 90)
    assert (d1.delivery, d2.delivery, d3.delivery) == ("notified", "duplicate", "resolved")


def test_positions_commit_past_finished_records_only_and_ignore_a_moved_partition():
    from convmon.alerting.outbox_delivery import Positions

    p = Positions()
    p.finished("tp0", 0, generation=0)
    p.finished("tp0", 1, generation=0)
    p.finished("tp1", 7, generation=0)
    assert p.due() == {"tp0": 2, "tp1": 8}
    p.commit(p.due())
    assert p.due() == {}
    p.revoke(["tp1"])  # moved to another worker: a late completion must not commit for it
    p.finished("tp1", 9, generation=0)
    assert p.due() == {}
    p.finished("tp1", 9, generation=1)  # assigned back, new generation
    assert p.due() == {"tp1": 10}


def test_discard_withdraws_a_moved_partitions_pages_queued_and_in_flight():
    import asyncio

    from convmon.alerting.delivery import Dispatcher

    class Stuck:
        name = "stuck"

        def __init__(self):
            self.calls = 0

        async def deliver(self, n):
            self.calls += 1
            await asyncio.sleep(3600)

    async def go():
        ch = Stuck()
        d = Dispatcher([ch])
        d.start()
        done = []
        for i, tp in enumerate(["a", "b", "a", "b"]):
            d.submit(Notification(_alert(dedup_key=f"k{i}"), 1, None, "firing"), tag=tp,
                     on_done=lambda c, o, i=i: done.append(i))
        await asyncio.sleep(0.05)  # k0 (partition a) is in flight
        withdrawn = await d.discard(lambda tag: tag == "a")
        await asyncio.sleep(0.05)  # the worker moved on to k1
        stats = d.stats()["stuck"]
        await d.stop()
        return withdrawn, stats, done, ch.calls

    withdrawn, stats, done, calls = asyncio.run(go())
    assert withdrawn == 2 and stats["pending"] == 2 and done == []  # k0 and k2 gone, k1 and k3 left
    assert calls == 2  # k0's attempt was cancelled, then k1 was tried
