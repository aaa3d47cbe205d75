"""Alerts end to end: real broker, real worker, real model scores, a webhook receiver standing in for on-call.

A restart of the worker in the middle of a conversation and in the middle of a toxic burst
keeps the conversation state (the shift after the restart is detected against the turns
before it) and the incident state (the burst stays one page), and duplicates no page.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from convmon.produce import TurnPublisher

from .test_pipeline import collect, wait_for_topic

pytestmark = pytest.mark.e2e

CALM_USER = ["Hi! Thanks so much for the quick reply, that's really helpful.",
             "Great, that worked perfectly. I appreciate your patience!"]
CALM_BOT = ["You're welcome! Happy to help with anything else.", "Glad it worked! Have a wonderful day."]
FURIOUS = "You are a useless, pathetic idiot. I am furious, this is the worst garbage service ever!"
TOXIC = ["Shut up, you worthless moron, nobody wants your stupid answers.",
         "You're a pathetic idiot and I hate talking to you, you useless piece of garbage."]


class Receiver:
    """A local HTTP endpoint standing in for on-call (webhook): records every POSTed JSON body.
    `port` fixes the port; `start=False` leaves it down (nothing listening) until start()."""

    def __init__(self, port: int = 0, start: bool = True):
        self.posts: list[dict] = []
        self.port = port
        self.server = None
        if start:
            self.start()

    def start(self) -> None:
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def pages(self, kind: str) -> list[dict]:
        return [p for p in self.posts if p["alert"]["kind"] == kind and p["status"] == "firing"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alerts_handled(port: int, kind: str, duplicates: bool = True) -> float:
    """Alerts of `kind` the worker's alerts agent has processed, from its /metrics (optionally not
    counting re-handled duplicates)."""
    import re
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return 0.0
    found = re.findall(rf'convmon_alerts_total({{[^}}]*kind="{kind}"[^}}]*}}) ([0-9.]+)', text)
    return sum(float(v) for labels, v in found if duplicates or 'delivery="duplicate"' not in labels)


def toxic_alerts_raised(e2e, turns: set[tuple[str, int]], at_least: int, timeout: float) -> int:
    """Firing toxic_turn alerts on chat.alerts for the given (conversation, turn) pairs, once at least
    `at_least` of them have been raised (and the rest of that batch has had a second to arrive)."""
    ids: set[str] = set()
    c = e2e.consumer(e2e.topics["alerts"])

    def take(timeout_ms: int) -> None:
        for msgs in c.poll(timeout_ms=timeout_ms).values():
            for a in (json.loads(m.value) for m in msgs):
                if a["kind"] == "toxic_turn" and a["status"] == "firing" and \
                        (a["conversation_id"], a["turn_index"]) in turns:
                    ids.add(a["alert_id"])

    deadline = time.monotonic() + timeout
    try:
        while len(ids) < at_least and time.monotonic() < deadline:
            take(500)
        time.sleep(1)
        take(1000)
    finally:
        c.close()
    assert len(ids) >= at_least, f"only {len(ids)} toxic_turn alerts raised after the restart"
    return len(ids)


def metric(port: int, name: str) -> float:
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def turn(conv: str, i: int, role: str, text: str) -> dict:
    return {"event_id": str(uuid.uuid4()), "conversation_id": conv, "turn_index": i, "role": role, "text": text,
            "ts": "2026-11-28T12:00:00Z", "app": "support-bot",
            "model": {"provider": "openai", "name": "gpt-4o-mini", "version": "2024-07-18"}}


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_restart_keeps_conversation_incident_and_model_state_and_pages_once(e2e, stop):
    """A worker stopped (SIGTERM) or killed without warning (SIGKILL) between two halves of the same
    conversations: the second worker detects the shift against the turns before the stop, keeps the
    toxic burst one incident, delivers no page twice, and its per-model-version state counts every
    turn exactly once."""
    rx = Receiver()
    e2e.env["CONVMON_ALERTING__CHANNELS"] = json.dumps(
        [{"type": "webhook", "name": "hook", "url": rx.url, "secret_env": "CONVMON_TEST_WEBHOOK_SECRET"}])
    e2e.env["CONVMON_TEST_WEBHOOK_SECRET"] = "s3cret-for-tests"
    tag = uuid.uuid4().hex[:6]
    shift_conv, burst_conv = f"shift-{tag}", f"burst-{tag}"

    before = [turn(shift_conv, 0, "user", CALM_USER[0]), turn(shift_conv, 1, "assistant", CALM_BOT[0]),
              turn(shift_conv, 2, "user", CALM_USER[1]), turn(shift_conv, 3, "assistant", CALM_BOT[1])]
    before += [turn(burst_conv, i, "user", TOXIC[i % 2]) for i in range(10)]
    after = [turn(shift_conv, 4, "user", FURIOUS)] + [turn(burst_conv, i, "user", TOXIC[i % 2]) for i in range(10, 20)]

    first = e2e.worker("first")
    wait_for_topic(e2e, e2e.topics["scores"])
    with TurnPublisher(e2e.bootstrap, e2e.topics["turns"]) as pub:
        for t in before:
            pub.publish(t)
    seen, _ = collect(e2e, {t["event_id"] for t in before}, 0, timeout=120, workers=[first])
    deadline = time.monotonic() + 30
    while not rx.pages("toxic_turn") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(rx.pages("toxic_turn")) == 1, first.tail()
    if stop == "sigterm":
        rc, _ = first.terminate(timeout=60)
        assert rc == 0, first.tail()
    else:
        time.sleep(3)  # offsets committed (every 1 s), table changes flushed
        first.proc.kill()
        first.proc.wait(30)

    port = free_port()
    e2e.env["CONVMON_WORKER__METRICS_PORT"] = str(port)
    second = e2e.worker("second")
    with TurnPublisher(e2e.bootstrap, e2e.topics["turns"]) as pub:
        for t in after:
            pub.publish(t)
    collect(e2e, {t["event_id"] for t in before + after}, 0, timeout=120, workers=[second])
    # Wait until the second worker's agents are done: its alerts agent has stored a decision (notified or
    # suppressed, not a re-handled duplicate) for every toxic_turn alert raised on a turn after the restart,
    # and the model-state agent has taken every turn it was given.
    after_turns = {(e2e.ps(t["conversation_id"]), t["turn_index"]) for t in after}
    raised = toxic_alerts_raised(e2e, after_turns, at_least=10, timeout=90)
    deadline = time.monotonic() + 90
    now = (0.0, 0.0)
    applied = 'convmon_state_turns_total{outcome="applied"}'  # counted once the batch's snapshot is stored
    while time.monotonic() < deadline:
        now = (alerts_handled(port, "toxic_turn", duplicates=False), metric(port, applied))
        if now[0] >= raised and now[1] >= len(after):
            break
        time.sleep(0.3)
    assert now[0] >= raised and now[1] >= len(after), (now, raised, second.tail())
    deadline = time.monotonic() + 30
    while not rx.pages("sentiment_shift") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # let any (wrong) extra page arrive before counting
    rc, _ = second.terminate(timeout=60)
    assert rc == 0, second.tail()

    shift_pages = rx.pages("sentiment_shift")
    assert len(shift_pages) == 1, [p["alert"]["summary"] for p in rx.posts]
    assert shift_pages[0]["alert"]["conversation_id"] == e2e.ps(shift_conv) and shift_pages[0]["alert"]["turn_index"] == 4
    assert shift_conv not in json.dumps(rx.posts)  # pages carry the pseudonym only
    burst_pages = [p for p in rx.pages("toxic_turn") if p["alert"]["conversation_id"] == e2e.ps(burst_conv)]
    assert len(burst_pages) == 1  # 20 toxic turns across a restart: one incident, one page
    keys = [(p["dedup_key"], p["status"]) for p in rx.posts]
    assert len(keys) == len(set(keys)), "a page was delivered twice"

    # per-model-version state (windows, rate detectors, drift window) went through a snapshot (at the first
    # shutdown, or the last one before the kill) and was restored by the second worker, which re-read the
    # signals after it: its counter covers the turns of both runs, each once
    user_turns = sum(1 for t in before + after if t["role"] == "user")
    snap = e2e.query("SELECT turns FROM model_state_snapshots FINAL WHERE app = 'support-bot' AND role = 'user'")
    assert snap == [{"turns": user_turns}], snap

    rows = e2e.query("SELECT delivery, count() AS n FROM alerts FINAL "
                     f"WHERE conversation_id = '{e2e.ps(burst_conv)}' AND kind = 'toxic_turn' GROUP BY delivery ORDER BY delivery")
    assert rows == [{"delivery": "notified", "n": 1}, {"delivery": "suppressed", "n": 19}]


def test_worker_serves_prometheus_metrics(e2e):
    import urllib.request

    port = free_port()
    e2e.env["CONVMON_WORKER__METRICS_PORT"] = str(port)
    w = e2e.worker()
    wait_for_topic(e2e, e2e.topics["scores"])
    turns = [turn(f"m-{i}", 0, "user", "hello there, how do I reset my password?") for i in range(30)]
    with TurnPublisher(e2e.bootstrap, e2e.topics["turns"]) as pub:
        for t in turns:
            pub.publish(t)
        pub.publish_raw(b"{not json", key=b"bad")
    collect(e2e, {t["event_id"] for t in turns}, 1, timeout=90, workers=[w])
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'convmon_turns_total{outcome="scored"} 30.0' in text
    assert 'convmon_dlq_total{reason="invalid_json"} 1.0' in text
    assert "convmon_scoring_seconds_per_turn_bucket" in text and "convmon_consumer_lag{" in text
    assert w.terminate(timeout=60)[0] == 0
