"""AlertmanagerChannel against a real Prometheus Alertmanager (Debian's prometheus-alertmanager).

An "embedding_drift" episode is 20 firing notifications with one dedup_key sent through the
Dispatcher and the AlertmanagerChannel over ~3 s. Alertmanager must fold them into one alert and
send exactly one grouped firing notification to its webhook receiver, then one resolved
notification after the resolve. Everything listens on 127.0.0.1; no Kafka needed.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from convmon.alerting.channels.alertmanager import AlertmanagerChannel, alert_labels
from convmon.alerting.delivery import Dispatcher
from convmon.alerting.model import Alert, Notification

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
GROUP_BY = ("alertname", "app", "model_name", "model_version")

pytestmark = [
    pytest.mark.timeout(40),

]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebhookSink:
    """Alertmanager's webhook receiver: records every POSTed body."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.posts.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alertmanager"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def group(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        return [p for p in list(self.posts) if p.get("groupLabels") == labels]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


CONFIG = """\
route:
  receiver: convmon-test
  group_by: [{group_by}]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: convmon-test
    webhook_configs:
      - url: "{url}"
        send_resolved: true
"""


@pytest.fixture
def alertmanager(tmp_path) -> Iterator[tuple[str, WebhookSink]]:
    sink = WebhookSink()
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG.format(group_by=", ".join(f"'{g}'" for g in GROUP_BY), url=sink.url))
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, f"alertmanager exited:\n{(tmp_path / 'alertmanager.log').read_text()}"
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "alertmanager not ready after 15 s"
            time.sleep(0.1)
        yield base, sink
    finally:
        proc.kill()
        proc.wait(10)
        log.close()
        sink.close()


def drift(status: str, count: int, first_ts: datetime) -> Notification:
    alert = Alert(kind="embedding_drift", severity="warning", dedup_key="embedding_drift:chat-app:gpt-x:2024-06",
                  summary=f"embedding drift on gpt-x 2024-06 (window {count})", app="chat-app", model_name="gpt-x",
                  model_version="2024-06", status=status, details={"psi": 0.3 + count / 100})
    return Notification(alert=alert, count=count, first_ts=first_ts, status=status)


async def wait_for(cond, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for Alertmanager's webhook"
        await asyncio.sleep(0.1)


def test_episode_is_one_grouped_notification_then_resolved(alertmanager):
    base, sink = alertmanager
    group = {"alertname": "embedding_drift", "app": "chat-app", "model_name": "gpt-x", "model_version": "2024-06"}

    async def episode() -> dict[str, Any]:
        d = Dispatcher([AlertmanagerChannel("alertmanager", base)], backoff_base_s=0.1, backoff_cap_s=1)
        d.start()
        try:
            first = datetime.now(timezone.utc)
            for i in range(1, 21):  # 20 firing notifications over ~3 s
                d.submit(drift("firing", i, first))
                await asyncio.sleep(0.15)
            assert await d.drain(5)
            await wait_for(lambda: sink.group(group), 10)
            await asyncio.sleep(2.5)  # > group_interval: a second firing notification would show up now
            firing = sink.group(group)
            d.submit(drift("resolved", 20, first))
            assert await d.drain(5)
            await wait_for(lambda: any(p["status"] == "resolved" for p in sink.group(group)), 10)
            return {"firing": firing, "all": sink.group(group), "stats": d.stats()["alertmanager"]}
        finally:
            await d.stop()

    r = asyncio.run(episode())
    assert r["stats"]["delivered"] == 21 and r["stats"]["failed_attempts"] == 0

    firing = r["firing"]
    assert len(firing) == 1, f"expected one grouped notification, got {len(firing)}"
    assert firing[0]["status"] == "firing" and len(firing[0]["alerts"]) == 1
    am_alert = firing[0]["alerts"][0]
    assert am_alert["status"] == "firing"
    assert am_alert["labels"] == alert_labels(drift("firing", 1, datetime.now(timezone.utc)))
    assert am_alert["annotations"]["summary"].startswith("embedding drift on gpt-x")

    after = r["all"][1:]
    assert [p["status"] for p in after] == ["resolved"], [p["status"] for p in after]
    resolved = after[0]
    assert len(resolved["alerts"]) == 1 and resolved["alerts"][0]["status"] == "resolved"
    assert resolved["alerts"][0]["labels"] == am_alert["labels"]
