"""`convmon grafana provision` against a local HTTP server that records Grafana API calls.

No Grafana server can run here (no Docker, no Debian package); this checks the calls and
payloads against Grafana's documented HTTP API, not a live Grafana.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from convmon.config import GrafanaSettings
from convmon.grafana import GrafanaError, provision


@pytest.fixture
def grafana():
    calls = []
    state = {"datasource_exists": True}

    class H(BaseHTTPRequestHandler):
        def _reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(n)) if n else None
            calls.append((self.command, self.path, self.headers.get("Authorization"), body))
            if self.headers.get("Authorization") != "Bearer tok":
                return self._reply(401, {"message": "Unauthorized"})
            if self.path == "/api/folders":
                return self._reply(409, {"message": "folder exists"})
            if self.command == "POST" and self.path == "/api/datasources":
                return self._reply(409 if state["datasource_exists"] else 200, {"message": "ok"})
            if self.command == "PUT" and self.path.startswith("/api/datasources/uid/"):
                return self._reply(200, {"message": "updated"})
            if self.path == "/api/dashboards/db":
                return self._reply(200, {"status": "success", "url": f"/d/{body['dashboard']['uid']}"})
            return self._reply(404, {"message": "not found"})

        do_POST = do_PUT = _handle

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", calls
    server.shutdown()


def test_provision_creates_folder_updates_datasource_and_pushes_every_dashboard(grafana):
    url, calls = grafana
    n = provision(GrafanaSettings(url=url, token="tok", clickhouse_password="pw"), log=lambda m: None)
    assert n == 3
    paths = [(m, p) for m, p, _, _ in calls]
    assert paths[:3] == [("POST", "/api/folders"), ("POST", "/api/datasources"),
                         ("PUT", "/api/datasources/uid/convmon-clickhouse")]
    ds = calls[1][3]
    assert ds["type"] == "grafana-clickhouse-datasource" and ds["secureJsonData"] == {"password": "pw"}
    dash = [b for m, p, _, b in calls if p == "/api/dashboards/db"]
    assert {d["dashboard"]["uid"] for d in dash} == {"convmon-overview", "convmon-drift", "convmon-conversations"}
    assert all(d["overwrite"] and d["dashboard"]["id"] is None and d["folderUid"] == "convmon" for d in dash)


def test_provision_reports_auth_and_connection_errors(grafana):
    url, _ = grafana
    with pytest.raises(GrafanaError, match="HTTP 401"):
        provision(GrafanaSettings(url=url, token="wrong"), log=lambda m: None)
    with pytest.raises(GrafanaError, match="cannot reach Grafana"):
        provision(GrafanaSettings(url="http://127.0.0.1:1", token="tok"), log=lambda m: None)
