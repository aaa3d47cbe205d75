"""docker-compose.yml cannot run here (no Docker engine): check its structure instead."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env_file():
    return dict(l.split("=", 1) for l in (ROOT / ".env").read_text().splitlines() if l and not l.startswith("#"))


def test_services_dependencies_and_healthchecks():
    c = _compose()
    services = c["services"]
    assert {"kafka", "clickhouse", "migrate", "worker", "grafana", "alertmanager"} <= set(services)
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} needs a healthcheck"
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert (ROOT / services["migrate"]["build"]["dockerfile"]).is_file()


def test_ports_bind_to_loopback_and_variables_are_defined():
    text = (ROOT / "docker-compose.yml").read_text()
    env = _env_file()
    for svc in _compose()["services"].values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
    for var in set(re.findall(r"\$\{([A-Z_]+)(?::-[^}]*)?\}", text)):
        assert var in env or f"${{{var}:-" in text, f"{var} is neither in .env nor defaulted"


def test_worker_environment_is_valid_convmon_settings(monkeypatch):
    from convmon.config import Settings

    env = _compose()["services"]["worker"]["environment"]
    for k, v in env.items():
        monkeypatch.setenv(k, re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)))
    s = Settings()
    assert s.kafka.bootstrap == "kafka:29092" and s.clickhouse.url == "http://clickhouse:8123"


def test_mounted_files_exist_and_worker_pages_alertmanager():
    services = _compose()["services"]
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), f"{name} mounts missing {src}"
    channels = __import__("json").loads(services["worker"]["environment"]["CONVMON_ALERTING__CHANNELS"])
    assert channels == [{"type": "alertmanager", "url": "http://alertmanager:9093"}]
    am = yaml.safe_load((ROOT / "infra/alertmanager/alertmanager.yml").read_text())
    assert am["route"]["receiver"] in {r["name"] for r in am["receivers"]}


def test_grafana_reads_clickhouse_as_its_own_readonly_user():
    """Security review finding 2: Grafana logged in as the worker's user, so it could INSERT (and write a
    crafted model-state snapshot). It now has its own user, created readonly with SELECT grants only."""
    services = _compose()["services"]
    worker_user = services["worker"]["environment"]["CONVMON_CLICKHOUSE__USERNAME"]
    grafana_user = services["grafana"]["environment"]["CLICKHOUSE_USER"]
    assert grafana_user != worker_user
    assert services["clickhouse"]["environment"]["GRAFANA_CLICKHOUSE_USER"] == grafana_user
    assert "./infra/clickhouse/initdb:/docker-entrypoint-initdb.d:ro" in services["clickhouse"]["volumes"]
    script = (ROOT / "infra/clickhouse/initdb/10-grafana-reader.sh").read_text()
    statements = [s.strip() for s in script.split("<<SQL", 1)[1].split("\nSQL", 1)[0].split(";") if s.strip()]
    assert "readonly = 1" in statements[0]
    grants = statements[1:]
    assert grants and all(re.fullmatch(r"GRANT SELECT ON convmon\.\w+ TO \S+", g) for g in grants), grants
    assert not any("model_state_snapshots" in g or "convmon.*" in g for g in grants)
    provisioned = yaml.safe_load((ROOT / "infra/grafana/provisioning/datasources/clickhouse.yaml").read_text())
    assert provisioned["datasources"][0]["jsonData"]["username"] == "${CLICKHOUSE_USER}"
