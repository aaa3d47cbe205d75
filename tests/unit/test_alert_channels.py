"""On-call channels and the dispatcher against local HTTP receivers (127.0.0.1 only).

The receivers stand in for Slack, PagerDuty and a webhook consumer: they validate every body
against the JSON Schemas recorded from the vendors' docs (tests/fixtures/channel_schemas) and,
for the webhook, check the HMAC signature over the raw bytes, answering 400 when either fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator, Optional

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from jsonschema import Draft202012Validator

from convmon.alerting.channels import (AlertmanagerChannel, PagerDutyChannel, SlackChannel, WebhookChannel,
                                       build_channels)
from convmon.alerting.channels.alertmanager import alertmanager_alert
from convmon.alerting.channels.pagerduty import pagerduty_event
from convmon.alerting.channels.slack import slack_payload
from convmon.alerting.channels.webhook import (SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify, verify_request,
                                              webhook_payload)
from convmon.alerting.delivery import Dispatcher
from convmon.alerting.model import Alert, DeliveryError, Notification

pytestmark = pytest.mark.timeout(60)

SCHEMAS = Path(__file__).resolve().parents[1] / "fixtures" / "channel_schemas"
ROUTING_KEY = "R0UT1NGKEYsecret0123456789abcdef"  # 32 chars, like a real integration key
HMAC_SECRET = "whsec-test-shared-secret"
SLACK_PATH = "/services/T0000/B0000/SLACKTOKENsecret"


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def notification(key: str = "drift:app1:m:1", status: str = "firing", count: int = 1, kind: str = "embedding_drift",
                 severity: str = "warning", summary: str = "embedding drift on m:1 (psi 0.31)",
                 **kw: Any) -> Notification:
    alert = Alert(kind=kind, severity=severity, summary=summary, dedup_key=key, app="app1", model_name="m",
                  model_version="1", status=status, labels={"team": "ml", "env": "test"}, **kw)
    first = alert.ts - timedelta(minutes=5)
    return Notification(alert=alert, count=count, first_ts=first, status=status)


class Receiver:
    """A stand-in vendor endpoint: scripted failures first, then schema/signature validation."""

    def __init__(self, schema: Optional[str] = None, *, fail: tuple[int, ...] = (), ok_status: int = 200,
                 secret: Optional[str] = None, hang: bool = False):
        self.validator = validator(schema) if schema else None
        self.fail = list(fail)
        self.ok_status = ok_status
        self.secret = secret
        self.hang = hang
        self.released = asyncio.Event()
        self.attempts: list[bytes] = []
        self.accepted: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.rejections: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.attempts.append(raw)
        self.headers.append(dict(request.headers))
        if self.hang:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.released.wait(), 10)
            return web.Response(status=504)
        if self.fail:
            return web.Response(status=self.fail.pop(0), text="service unavailable")
        problems = []
        body = json.loads(raw)
        if self.validator is not None:
            problems += [f"{list(e.absolute_path)}: {e.message}" for e in self.validator.iter_errors(body)]
        if self.secret is not None:
            if not verify_request(self.secret, raw, request.headers):
                problems.append("bad signature or stale timestamp")
        if problems:
            self.rejections.extend(problems)
            return web.json_response({"status": "invalid event", "errors": problems}, status=400)
        self.accepted.append(body)
        return web.Response(status=self.ok_status, text="ok")


@contextlib.asynccontextmanager
async def serve(receiver: Receiver, path: str = "/hook") -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post(path, receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url(path))
    finally:
        receiver.released.set()
        await server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def client_log(caplog) -> str:
    """What the client side logged (the stand-in vendors' own access logs name their paths)."""
    vendor = ("aiohttp.access", "aiohttp.server")
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(vendor))


def fast_dispatcher(channels, **kw) -> Dispatcher:
    return Dispatcher(channels, backoff_base_s=0.01, backoff_cap_s=0.05, **kw)


# -- payload shapes against the recorded schemas ---------------------------------------------


def test_payloads_match_recorded_schemas():
    fire, resolve = notification(count=7), notification(status="resolved", count=7)
    for n in (fire, resolve):
        validator("slack").validate(slack_payload(n))
        validator("pagerduty").validate(pagerduty_event(n, ROUTING_KEY))
    long = notification(summary="x" * 5000, severity="critical")
    event = pagerduty_event(long, ROUTING_KEY)
    validator("pagerduty").validate(event)
    assert len(event["payload"]["summary"]) == 1024
    assert event["payload"]["severity"] == "critical"
    assert pagerduty_event(notification(severity="info"), ROUTING_KEY)["payload"]["severity"] == "info"


def test_slack_message_content():
    p = slack_payload(notification(count=7, summary="a <b> & c"))
    text = json.dumps(p)
    for needle in ("embedding_drift", "warning", "app1", "*Model*\\nm", "*Version*\\n1", "*Count*\\n7", "FIRING",
                   "a &lt;b&gt; &amp; c"):
        assert needle in text, needle
    assert all(b["type"] == "section" for b in p["blocks"])
    assert p["blocks"][0]["text"]["type"] == "mrkdwn"
    assert all(f["type"] == "mrkdwn" for f in p["blocks"][1]["fields"])
    r = slack_payload(notification(status="resolved"))
    assert "RESOLVED" in r["text"] and "resolved" in r["blocks"][0]["text"]["text"]


def test_pagerduty_resolve_is_minimal():
    event = pagerduty_event(notification(status="resolved"), ROUTING_KEY)
    assert event == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "drift:app1:m:1"}
    long_key = "k" * 400
    fire, res = (pagerduty_event(notification(key=long_key, status=s), ROUTING_KEY) for s in ("firing", "resolved"))
    assert fire["dedup_key"] == res["dedup_key"] and len(fire["dedup_key"]) <= 255


def test_alertmanager_labels_identical_for_fire_and_resolve():
    fire = alertmanager_alert(notification(count=1))
    later = alertmanager_alert(notification(count=20, summary="worse now"))
    res = alertmanager_alert(notification(status="resolved", count=20))
    assert fire["labels"] == later["labels"] == res["labels"]
    assert fire["labels"] == {"alertname": "embedding_drift", "severity": "warning", "app": "app1", "model_name": "m",
                              "model_version": "1", "dedup_key": "drift:app1:m:1", "team": "ml", "env": "test"}
    assert "endsAt" not in fire and res["endsAt"] >= res["startsAt"]
    assert fire["annotations"]["summary"] and later["annotations"]["count"] == "20"


# -- channels over HTTP ------------------------------------------------------------------------


def test_alertmanager_posts_a_list_to_api_v2_alerts():
    async def go():
        rx = Receiver()
        async with serve(rx, "/am/api/v2/alerts") as url:
            ch = AlertmanagerChannel("am", url.removesuffix("/api/v2/alerts") + "/")
            await ch.deliver(notification())
            await ch.close()
        return rx

    (body,) = asyncio.run(go()).accepted
    assert isinstance(body, list) and len(body) == 1 and body[0]["labels"]["alertname"] == "embedding_drift"


def test_webhook_signed_and_valid():
    async def go():
        rx = Receiver("webhook", secret=HMAC_SECRET)
        async with serve(rx) as url:
            ch = WebhookChannel("hook", url, HMAC_SECRET)
            await ch.deliver(notification(count=3))
            await ch.deliver(notification(status="resolved", count=3))
            with pytest.raises(DeliveryError) as e:  # a receiver with another secret refuses it
                rx.secret = "other-secret"
                await ch.deliver(notification())
            await ch.close()
        return rx, e.value

    rx, err = asyncio.run(go())
    assert [b["status"] for b in rx.accepted] == ["firing", "resolved"]
    assert rx.accepted[0]["count"] == 3 and rx.accepted[0]["alert"]["kind"] == "embedding_drift"
    assert rx.headers[0][SIGNATURE_HEADER].startswith("v1=")
    assert err.retryable is False and "bad signature" in str(err) and HMAC_SECRET not in str(err)


def test_webhook_signature_covers_the_timestamp_so_a_captured_request_cannot_be_replayed():
    """Security review finding 9: the signature covered only the body, so a captured request could be
    re-sent at any time with a fresh X-Convmon-Timestamp."""
    body, sent = b'{"version":1,"status":"firing"}', 1_800_000_000
    sig = sign(HMAC_SECRET, body, sent)
    assert verify(HMAC_SECRET, body, sig, sent, now=sent + 10)
    assert not verify(HMAC_SECRET, body, sig, sent, now=sent + 301)  # replayed after the window
    assert not verify(HMAC_SECRET, body, sig, sent + 600, now=sent + 600)  # fresh timestamp, old signature
    assert not verify(HMAC_SECRET, body + b" ", sig, sent, now=sent)  # body changed
    assert not verify(HMAC_SECRET, body, sig, "not-a-number", now=sent)
    assert verify_request(HMAC_SECRET, body, {SIGNATURE_HEADER: sig, TIMESTAMP_HEADER: str(sent)}, now=sent)


def test_slack_and_pagerduty_accept_our_payloads():
    async def go():
        slack, pd = Receiver("slack"), Receiver("pagerduty", ok_status=202)
        async with serve(slack, SLACK_PATH) as s_url, serve(pd, "/v2/enqueue") as p_url:
            channels = [SlackChannel("slack", s_url), PagerDutyChannel("pd", ROUTING_KEY, url=p_url)]
            d = fast_dispatcher(channels)
            d.start()
            for n in (notification(count=1), notification(count=2), notification(status="resolved", count=2)):
                d.submit(n)
            assert await d.drain(10)
            await d.stop()
        return slack, pd, d.stats()

    slack, pd, stats = asyncio.run(go())
    assert slack.rejections == [] and pd.rejections == []
    assert len(slack.accepted) == 3 and len(pd.accepted) == 3
    assert [e["event_action"] for e in pd.accepted] == ["trigger", "trigger", "resolve"]
    assert stats["pd"]["delivered"] == 3 and stats["pd"]["failed_attempts"] == 0


# -- dispatcher: retries, non-retryable errors, isolation, overflow -----------------------------


def test_retries_503_then_delivers_exactly_once(caplog):
    caplog.set_level(logging.DEBUG)

    async def go():
        pd = Receiver("pagerduty", fail=(503, 503, 503), ok_status=202)
        async with serve(pd, "/v2/enqueue") as url:
            d = fast_dispatcher([PagerDutyChannel("pd-oncall", ROUTING_KEY, url=url)])
            d.start()
            d.submit(notification())
            assert await d.drain(10)
            stats = d.stats()["pd-oncall"]
            await d.stop()
        return pd, stats

    pd, stats = asyncio.run(go())
    assert len(pd.attempts) == 4 and len(pd.accepted) == 1  # 3 × 503, then exactly one delivery
    assert stats["delivered"] == 1 and stats["failed_attempts"] == 3 and stats["pending"] == 0
    assert stats["failed"] == 0 and stats["oldest_s"] == 0.0
    assert "503" in stats["last_error"] and ROUTING_KEY not in stats["last_error"]
    logged = client_log(caplog)
    assert "pd-oncall" in logged
    assert ROUTING_KEY not in logged and "/v2/enqueue" not in logged and "127.0.0.1" not in logged


def test_400_is_not_retried(caplog):
    async def go():
        rx = Receiver("webhook", fail=(400,))
        async with serve(rx) as url:
            d = fast_dispatcher([WebhookChannel("hook", url, HMAC_SECRET)])
            d.start()
            d.submit(notification())
            assert await d.drain(10)
            await asyncio.sleep(0.2)  # would be ample time for a retry
            stats = d.stats()["hook"]
            await d.stop()
        return rx, stats

    rx, stats = asyncio.run(go())
    assert len(rx.attempts) == 1 and rx.accepted == []
    assert stats == {"delivered": 0, "failed_attempts": 1, "failed": 1, "pending": 0, "oldest_s": 0.0,
                     "last_error": "HTTP 400: service unavailable"}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "hook" in errors[0].getMessage() and "not retryable" in errors[0].getMessage()


def test_channel_down_blocks_neither_submit_nor_other_channels(caplog):
    caplog.set_level(logging.DEBUG)

    async def go():
        hook, hung = Receiver("webhook", secret=HMAC_SECRET), Receiver(hang=True)
        async with serve(hook) as hook_url, serve(hung, SLACK_PATH) as hung_url:
            down_url = f"http://127.0.0.1:{closed_port()}{SLACK_PATH}"
            d = fast_dispatcher([SlackChannel("slack-down", down_url),
                                 SlackChannel("slack-hung", hung_url, timeout_s=0.3),
                                 WebhookChannel("hook", hook_url, HMAC_SECRET)])
            d.start()
            t0 = time.perf_counter()
            for i in range(5):
                d.submit(notification(key=f"k{i}"))
            submit_s = time.perf_counter() - t0
            await wait_until(lambda: len(hook.accepted) == 5)
            await wait_until(lambda: d.stats()["slack-hung"]["failed_attempts"] >= 2)
            drained = await d.drain(0.2)
            stats = d.stats()
            await d.stop()
        return hook, stats, submit_s, drained

    hook, stats, submit_s, drained = asyncio.run(go())
    assert submit_s < 0.1
    assert [b["dedup_key"] for b in hook.accepted] == [f"k{i}" for i in range(5)]
    assert stats["hook"]["delivered"] == 5 and stats["hook"]["pending"] == 0
    for name in ("slack-down", "slack-hung"):
        assert stats[name]["delivered"] == 0 and stats[name]["pending"] == 5 and stats[name]["failed_attempts"] >= 1
    assert "timed out" in stats["slack-hung"]["last_error"]
    assert drained is False
    assert "SLACKTOKEN" not in client_log(caplog) and "SLACKTOKEN" not in json.dumps(stats)


class Recorder:
    """An in-memory channel."""

    def __init__(self, name: str = "mem"):
        self.name = name
        self.got: list[Notification] = []

    async def deliver(self, notification: Notification) -> None:
        self.got.append(notification)


def test_a_full_queue_holds_the_caller_back_and_drops_nothing():
    """The outbox's delivery agent waits for room instead of losing pages (security finding 3: the old
    queue dropped the oldest of 1,500)."""
    class Gate(Recorder):
        def __init__(self):
            super().__init__()
            self.open = asyncio.Event()

        async def deliver(self, notification):
            await self.open.wait()
            await super().deliver(notification)

    async def go():
        ch = Gate()
        d = Dispatcher([ch], queue_size=3)
        d.start()
        done: list[tuple[str, str, str]] = []
        waited, stats = [], []
        loop = asyncio.get_running_loop()
        loop.call_later(0.15, lambda: stats.append(d.stats()["mem"]))  # while the caller is held back
        loop.call_later(0.3, ch.open.set)  # the channel comes back
        for i in range(7):
            t0 = time.monotonic()
            await d.wait_for_room()
            waited.append(time.monotonic() - t0)
            d.submit(notification(key=f"k{i}"), on_done=lambda name, outcome, i=i: done.append((name, f"k{i}", outcome)))
        assert await d.drain(5)
        await d.stop()
        return ch, done, waited, stats[0]

    ch, done, waited, stats = asyncio.run(go())
    assert [n.dedup_key for n in ch.got] == [f"k{i}" for i in range(7)]  # all of them, in order
    assert done == [("mem", f"k{i}", "delivered") for i in range(7)]  # each acknowledged once, in order
    assert stats["pending"] == 3 and stats["oldest_s"] > 0  # the backlog is visible while the channel is stuck
    assert waited[3] >= 0.25  # the 4th waited until the channel took some


def test_on_done_reports_refused_notifications_too():
    """A notification the channel refuses for good (HTTP 400) is acknowledged as failed: its outbox record must
    not pin the partition for ever."""
    async def go():
        rx = Receiver("webhook", fail=(400,))
        async with serve(rx) as url:
            d = fast_dispatcher([WebhookChannel("hook", url, HMAC_SECRET)])
            d.start()
            got = []

            async def on_done(name, outcome):
                got.append((name, outcome))
            d.submit(notification(key="bad"), on_done=on_done)
            d.submit(notification(key="good"), on_done=on_done)
            assert await d.drain(10)
            await d.stop()
        return got, rx

    got, rx = asyncio.run(go())
    assert got == [("hook", "failed"), ("hook", "delivered")]
    assert [b["dedup_key"] for b in rx.accepted] == ["good"]


def test_unexpected_exception_does_not_kill_worker():
    class Flaky(Recorder):
        async def deliver(self, notification):
            if notification.dedup_key == "boom":
                raise RuntimeError("bug")
            await super().deliver(notification)

    async def go():
        ch = Flaky()
        d = fast_dispatcher([ch])
        d.start()
        d.submit(notification(key="boom"))
        d.submit(notification(key="fine"))
        assert await d.drain(5)
        await d.stop()
        return ch, d.stats()["mem"]

    ch, stats = asyncio.run(go())
    assert [n.dedup_key for n in ch.got] == ["fine"] and stats["failed"] == 1 and stats["delivered"] == 1


def test_backoff_is_exponential_capped_and_jittered():
    d = Dispatcher([], backoff_base_s=1, backoff_cap_s=8, jitter=0)
    assert [d.backoff_delay(i) for i in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert d.backoff_delay(1, retry_after=30) == 30
    j = Dispatcher([], backoff_base_s=1, backoff_cap_s=8, jitter=0.5, rng=random.Random(1))
    delays = [j.backoff_delay(3) for _ in range(50)]
    assert all(2 <= x <= 4 for x in delays) and len(set(delays)) > 1


# -- configuration -------------------------------------------------------------------------------


SECRETS = {"SLACK_URL": "https://hooks.slack.com/services/T/B/X", "PD_KEY": ROUTING_KEY,
           "HOOK_URL": "https://example.invalid/hook", "HOOK_SECRET": HMAC_SECRET}


def test_build_channels():
    chans = build_channels([
        {"type": "slack", "name": "slack-oncall", "url_env": "SLACK_URL"},
        {"type": "pagerduty", "routing_key_env": "PD_KEY", "source": "convmon-prod"},
        {"type": "webhook", "url_env": "HOOK_URL", "secret_env": "HOOK_SECRET", "timeout_s": 3},
        {"type": "alertmanager", "url": "http://127.0.0.1:9093", "generator_url": "http://grafana/d/x"},
    ], SECRETS)
    assert [type(c).__name__ for c in chans] == ["SlackChannel", "PagerDutyChannel", "WebhookChannel",
                                                "AlertmanagerChannel"]
    assert [c.name for c in chans] == ["slack-oncall", "pagerduty", "webhook", "alertmanager"]
    assert all(s not in repr(chans) for s in SECRETS.values())


@pytest.mark.parametrize("spec, message", [
    ({"type": "slack", "name": "s", "url_env": "CONVMON_SLACK_WEBHOOK_URL"}, "CONVMON_SLACK_WEBHOOK_URL"),
    ({"type": "pagerduty", "routing_key_env": "CONVMON_PD_KEY"}, "CONVMON_PD_KEY"),
    ({"type": "webhook", "url": "http://x/", "secret_env": "CONVMON_HOOK_SECRET"}, "CONVMON_HOOK_SECRET"),
    ({"type": "pagerduty"}, "routing_key_env"),
    ({"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"}, "url_env"),
    ({"type": "sms"}, "unknown type"),
    ({"type": "alertmanager", "url": "http://am", "urll": 1}, "unknown keys"),
    ({"type": "alertmanager", "url": "am:9093"}, r"http\(s\)://host"),
])
def test_build_channels_errors(spec, message, monkeypatch):
    monkeypatch.setenv("CONVMON_SLACK_WEBHOOK_URL", "https://from-os-environ")  # must not be consulted
    with pytest.raises(ValueError, match=message):
        build_channels([spec], {})


def test_build_channels_rejects_duplicate_names():
    with pytest.raises(ValueError, match="twice"):
        build_channels([{"type": "alertmanager", "url": "http://a"}, {"type": "alertmanager", "url": "http://b"}], {})


@pytest.mark.parametrize("kind,details,signal", [("toxic_turn", {}, "toxicity"),
                                                 ("policy_violation", {"signal": "climate_science"},
                                                  "policy:climate_science"),
                                                 ("sentiment_shift", {}, "sentiment_shift")])
def test_every_page_names_its_alert_id_and_the_command_that_labels_it(kind, details, signal):
    """Issue 19: on-call labels a page with the command it prints; the command's record is valid feedback."""
    from convmon.feedback.oncall import alert_label

    n = notification(kind=kind)
    n.alert.details = details
    a = n.alert
    command = f"convmon alerts label {a.alert_id} confirmed|false_alarm --signal {signal}"
    slack = json.dumps(slack_payload(n))
    pd = pagerduty_event(n, ROUTING_KEY)["payload"]["custom_details"]
    am = alertmanager_alert(n)["annotations"]
    hook = webhook_payload(n)
    validator("slack").validate(slack_payload(n))
    validator("webhook").validate(hook)
    assert command in slack and a.alert_id in slack
    assert pd["label_command"] == command and pd["alert_id"] == a.alert_id
    assert am["label_command"] == command and am["alert_id"] == a.alert_id
    assert hook["label_command"] == command and hook["alert"]["alert_id"] == a.alert_id
    assert alert_label(a.alert_id, "confirmed", signal).signal == signal
