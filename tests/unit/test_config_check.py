import os

from click.testing import CliRunner

from convmon.cli import main
from convmon.config import Settings
from convmon.config_check import check


def levels(s):
    return {(f.level, f.setting) for f in check(s)}


def test_local_defaults_are_safe(tmp_path):
    s = Settings(var=tmp_path / "var")
    assert [f for f in check(s) if f.level == "unsafe"] == []
    assert ("note", "privacy.pseudonym_key") in levels(s)  # one machine: the generated key is enough, but said


def test_unsafe_settings_are_reported(tmp_path):
    secrets = tmp_path / "secrets.env"
    secrets.write_text("X=1\n")
    os.chmod(secrets, 0o644)
    s = Settings(
        var=tmp_path / "var", kafka_bootstrap="kafka.prod:9092", clickhouse_url="http://user:pw@ch.prod:8123",
        privacy={"store_raw_text": True}, topics={"dlq_retention_hours": None},
        clickhouse={"username": "convmon"}, grafana={"clickhouse_username": "convmon"},
        alerting={"channels": [{"type": "slack", "url": "https://hooks.slack.com/services/T/B/x"},
                               {"type": "webhook", "name": "w", "url": "https://example.com/h"}],
                  "secrets_file": str(secrets)},
    )
    found = levels(s)
    for setting in ("privacy.store_raw_text", "kafka.security_protocol", "clickhouse.url",
                    "alerting.channels[slack].url", "alerting.channels[w]", "alerting.secrets_file",
                    "topics.dlq_retention_hours", "grafana.clickhouse_username", "privacy.pseudonym_key"):
        assert ("unsafe", setting) in found, setting
    messages = " ".join(str(f) for f in check(s))
    assert "pw@" not in messages and "services/T/B/x" not in messages  # never echo secrets


def test_cli_exit_status(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k in list(os.environ):
        if k.startswith("CONVMON_"):
            monkeypatch.delenv(k)
    r = CliRunner().invoke(main, ["config", "check"])
    assert r.exit_code == 0 and "0 unsafe setting(s)" in r.output
    monkeypatch.setenv("CONVMON_PRIVACY__STORE_RAW_TEXT", "true")
    r = CliRunner().invoke(main, ["config", "check"])
    assert r.exit_code == 1 and "privacy.store_raw_text" in r.output
