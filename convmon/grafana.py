"""`convmon grafana provision`: push the datasource and dashboards to a running Grafana over its HTTP API.

For teams that do not use file provisioning (infra/grafana/provisioning). Uses the standard
library's HTTP client on purpose: three endpoints do not justify grafana-api (unmaintained
since 2020, declares Python ≤ 3.8) or grafana-client (replaces the environment's urllib3 with
urllib3-future on install). Endpoints: POST /api/folders, POST|PUT /api/datasources,
POST /api/dashboards/db (overwrite).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Callable, Optional

from .config import GrafanaSettings
from .redact import mask_text, mask_url
from .resources import data_path

DATASOURCE_UID = "convmon-clickhouse"
FOLDER_UID = "convmon"


class GrafanaError(RuntimeError):
    pass


def _request(base: str, token: Optional[str], method: str, path: str, body: Optional[dict]) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            payload = json.loads(e.read() or b"{}")
        except ValueError:
            payload = {}
        return e.code, payload
    except urllib.error.URLError as e:
        raise GrafanaError(f"cannot reach Grafana at {mask_url(base)}: {mask_text(str(e.reason))}") from None


def datasource_payload(cfg: GrafanaSettings) -> dict:
    body = {
        "name": "convmon ClickHouse", "uid": DATASOURCE_UID, "type": "grafana-clickhouse-datasource",
        "access": "proxy", "isDefault": True,
        "jsonData": {"host": cfg.clickhouse_host, "port": cfg.clickhouse_port, "protocol": cfg.clickhouse_protocol,
                     "defaultDatabase": cfg.clickhouse_database, "username": cfg.clickhouse_username},
    }
    if cfg.clickhouse_password:
        body["secureJsonData"] = {"password": cfg.clickhouse_password.get_secret_value()}
    return body


def dashboards() -> list[dict]:
    folder = data_path("infra/grafana/dashboards")
    return [json.loads(p.read_text("utf-8")) for p in sorted(folder.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".json")]


def provision(cfg: GrafanaSettings, log: Callable[[str], None] = print) -> int:
    token = cfg.token.get_secret_value() if cfg.token else None
    call = lambda method, path, body=None: _request(cfg.url, token, method, path, body)  # noqa: E731

    status, body = call("POST", "/api/folders", {"uid": FOLDER_UID, "title": "convmon"})
    if status not in (200, 409, 412):
        raise GrafanaError(f"creating folder failed: HTTP {status} {body.get('message', '')}")
    status, body = call("POST", "/api/datasources", datasource_payload(cfg))
    if status == 409:  # exists: update in place
        status, body = call("PUT", f"/api/datasources/uid/{DATASOURCE_UID}", datasource_payload(cfg))
    if status != 200:
        raise GrafanaError(f"datasource failed: HTTP {status} {body.get('message', '')}")
    log(f"datasource {DATASOURCE_UID}: ok")
    n = 0
    for d in dashboards():
        status, body = call("POST", "/api/dashboards/db",
                            {"dashboard": {**d, "id": None}, "folderUid": FOLDER_UID, "overwrite": True,
                             "message": "convmon grafana provision"})
        if status != 200:
            raise GrafanaError(f"dashboard {d['uid']} failed: HTTP {status} {body.get('message', '')}")
        log(f"dashboard {d['uid']}: {body.get('url', 'ok')}")
        n += 1
    return n
