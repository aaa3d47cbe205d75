"""Secrets never reach output: the masking function, `convmon config show`, settings errors."""

import json
import os

import pytest
from click.testing import CliRunner

from convmon.cli import main
from convmon.config import Settings, InvalidSettingsError
from convmon.redact import is_secret_name, mask_data, mask_text, mask_url

URLS = [
    # userinfo
    ("http://user:s3cret@ch.prod:8123", "http://user:***@ch.prod:8123"),
    ("https://user:s3cret@ch.prod:8443/?database=convmon", "https://user:***@ch.prod:8443/?database=convmon"),
    ("http://user:p@ss@h:8123/", "http://user:***@h:8123/"),  # a raw "@" in the password
    ("https://ghp_TOKEN@github.com/o/r.git", "https://***@github.com/o/r.git"),  # a lone userinfo is a token
    ("chdb://user:s3cret@/var/ch", "chdb://user:***@/var/ch"),
    ("http://user:@h:8123", "http://user:@h:8123"),  # nothing to hide
    # secret query / fragment parameters, any case
    ("https://hooks.example.com/alert?token=abc123", "https://hooks.example.com/alert?token=***"),
    ("https://h/x?Token=abc&team=ops", "https://h/x?Token=***&team=ops"),
    ("https://h/x?team=ops&API_KEY=k1&apiKey=k2&ApiKey=k3", "https://h/x?team=ops&API_KEY=***&apiKey=***&ApiKey=***"),
    ("https://s3.example.com/b/o?X-Amz-Signature=deadbeef&X-Amz-Expires=60",
     "https://s3.example.com/b/o?X-Amz-Signature=***&X-Amz-Expires=60"),
    ("https://blob.example.net/c?sv=2022&sig=AbC%2Bd&se=2030", "https://blob.example.net/c?sv=2022&sig=***&se=2030"),
    ("https://h/cb#access_token=zz&state=1", "https://h/cb#access_token=***&state=1"),
    ("https://h/?PASSWORD=x&pwd=y&passwd=z&secret=s&client_secret=c&auth=a&key=k",
     "https://h/?PASSWORD=***&pwd=***&passwd=***&secret=***&client_secret=***&auth=***&key=***"),
    ("http://u:pw@h/?access_token=t", "http://u:***@h/?access_token=***"),
    # Slack webhooks carry the secret in the path
    ("https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/services/***"),
]
UNCHANGED = [
    "chdb:///home/me/var/clickhouse",
    "http://127.0.0.1:8123",
    "https://ch.prod:8443/?database=convmon&compress=1",
    "https://h/search?keyword=a&author=b&signal=c&tokens=4&page=2",  # words, not substrings
    "https://h/?token=",  # empty value
    "127.0.0.1:9092,kafka2:9092",  # not a URL
    "",
]


@pytest.mark.parametrize("url,masked", URLS)
def test_mask_url(url, masked):
    assert mask_url(url) == masked
    assert mask_text(f"cannot reach {url} (refused)") == f"cannot reach {masked} (refused)"


@pytest.mark.parametrize("url", UNCHANGED)
def test_mask_url_leaves_urls_without_secrets_alone(url):
    assert mask_url(url) == url and mask_text(url) == url


def test_secret_names():
    for n in ("password", "sasl_password", "token", "routing_key", "apiKey", "X-Amz-Signature", "client_secret"):
        assert is_secret_name(n), n
    for n in ("url_env", "routing_key_env", "secret_env", "secrets_file", "url", "max_tokens", "sasl_mechanism",
              "keyword", "author", "signal"):
        assert not is_secret_name(n), n


def test_mask_data_walks_dicts_and_lists():
    data = {"channels": [{"type": "webhook", "url": "https://h/x?token=t0k", "url_env": "CONVMON_HOOK",
                          "routing_key": "rk", "secret_env": "CONVMON_SECRET", "timeout_s": 5}]}
    assert mask_data(data) == {"channels": [{"type": "webhook", "url": "https://h/x?token=***",
                                             "url_env": "CONVMON_HOOK", "routing_key": "***",
                                             "secret_env": "CONVMON_SECRET", "timeout_s": 5}]}


def _clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for k in list(os.environ):
        if k.startswith("CONVMON_"):
            monkeypatch.delenv(k)


def test_config_show_masks_every_secret(tmp_path, monkeypatch):
    _clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CONVMON_CLICKHOUSE_URL", "http://convmon:Ur1Pa55@ch.prod:8123/?password=QueryPa55")
    monkeypatch.setenv("CONVMON_CLICKHOUSE__PASSWORD", "FieldPa55")
    monkeypatch.setenv("CONVMON_KAFKA__SASL_PASSWORD", "SaslPa55")
    monkeypatch.setenv("CONVMON_GRAFANA__TOKEN", "GrafTok")
    monkeypatch.setenv("CONVMON_ALERTING__CHANNELS", json.dumps([
        {"type": "webhook", "name": "w", "url": "https://hooks.example.com/a?Token=HookTok&team=ops",
         "secret_env": "CONVMON_WEBHOOK_SECRET"},
        {"type": "pagerduty", "routing_key": "PdKey"},
    ]))
    r = CliRunner().invoke(main, ["config", "show"])
    assert r.exit_code == 0, r.output
    for secret in ("Ur1Pa55", "QueryPa55", "FieldPa55", "SaslPa55", "GrafTok", "HookTok", "PdKey"):
        assert secret not in r.output, secret
    shown = json.loads(r.output)
    assert shown["clickhouse"]["url"] == "http://convmon:***@ch.prod:8123/?password=***"
    assert shown["alerting"]["channels"][0]["url"] == "https://hooks.example.com/a?Token=***&team=ops"
    assert shown["alerting"]["channels"][0]["secret_env"] == "CONVMON_WEBHOOK_SECRET"  # a name, not a secret
    assert shown["kafka"]["sasl_password"] == "***" and shown["kafka"]["bootstrap"] == "127.0.0.1:9092"
    assert shown["worker"]["batch_size"] == 512 and shown["var"] == str(tmp_path / "var")
    # effective values only (issue 12): no null shortcuts beside the nested values, defaults named
    assert "clickhouse_url" not in shown and "kafka_bootstrap" not in shown
    assert "rules.toml" in shown["alerting"]["rules_file"] and shown["scoring"]["models_dir"]


def test_validation_errors_never_echo_the_value(tmp_path, monkeypatch):
    _clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CONVMON_CLICKHOUSE__PASSWORD", '{"not": "a string"} Pa55InJson')
    monkeypatch.setenv("CONVMON_CLICKHOUSE__INSERT_BATCH_ROWS", "Pa55word-typed-in-the-wrong-var")
    with pytest.raises(InvalidSettingsError) as exc:
        Settings()
    text = str(exc.value)
    assert "clickhouse.insert_batch_rows" in text and "CONVMON_CLICKHOUSE__INSERT_BATCH_ROWS" in text
    assert "Pa55word" not in text and "input_value" not in text
    assert all("input" not in e for e in exc.value.errors())
    assert exc.value.__cause__ is None and exc.value.__suppress_context__  # tracebacks do not show pydantic's

    r = CliRunner().invoke(main, ["config", "show"])
    assert r.exit_code == 1 and "invalid configuration" in r.output and "insert_batch_rows" in r.output
    assert "Pa55word" not in r.output


def test_validation_error_of_a_secret_field(tmp_path, monkeypatch):
    _clean_env(monkeypatch, tmp_path)
    with pytest.raises(InvalidSettingsError) as exc:
        Settings(kafka={"sasl_password": ["Sup3rSecret"]})  # wrong type: pydantic would quote it
    assert "kafka.sasl_password" in str(exc.value) and "Sup3rSecret" not in str(exc.value)
    cfg = tmp_path / "convmon.toml"
    cfg.write_text('[grafana]\ntoken = 12345678\nclickhouse_port = "TomlSecret"\n')
    monkeypatch.setenv("CONVMON_CONFIG", str(cfg))
    r = CliRunner().invoke(main, ["config", "check"])
    assert r.exit_code == 1 and "grafana.clickhouse_port" in r.output
    assert "TomlSecret" not in r.output and "12345678" not in r.output


def test_repr_of_settings_masks_secrets(tmp_path):
    s = Settings(var=tmp_path / "var", clickhouse_url="http://u:Ur1Pa55@h:8123/?token=QTok",
                 kafka={"sasl_password": "SaslPa55"}, alerting={"channels": [{"type": "webhook", "key": "K3y"}]})
    for text in (repr(s), str(s), repr(s.clickhouse), str(s.kafka), f"{s.alerting!r}"):
        assert not any(x in text for x in ("Ur1Pa55", "QTok", "SaslPa55", "K3y")), text
    assert "http://u:***@h:8123/?token=***" in repr(s.clickhouse) and "batch_size=512" in repr(s)
    assert s.clickhouse.url == "http://u:Ur1Pa55@h:8123/?token=QTok"  # only output is masked
