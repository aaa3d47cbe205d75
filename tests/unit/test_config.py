import pytest

from convmon.config import Settings


@pytest.fixture(autouse=True)
def _no_convmon_environment(monkeypatch):
    """These tests are about precedence: the developer's own CONVMON_* variables (a broker moved off 9092 with
    CONVMON_KAFKA_BOOTSTRAP, found by `make newcomer`) must not leak into them."""
    import os

    for k in list(os.environ):
        if k.startswith("CONVMON_"):
            monkeypatch.delenv(k)


def test_defaults_point_at_local_services(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k in list(__import__("os").environ):
        if k.startswith("CONVMON_"):
            monkeypatch.delenv(k)
    s = Settings()
    assert s.kafka.bootstrap == "127.0.0.1:9092"
    assert s.clickhouse.url == f"chdb://{tmp_path / 'var' / 'clickhouse'}"
    assert s.embedded_clickhouse and not s.privacy.store_raw_text


def test_file_then_environment(tmp_path, monkeypatch):
    cfg = tmp_path / "convmon.toml"
    cfg.write_text('kafka_bootstrap = "file:9092"\n[worker]\nbatch_size = 64\nmax_text_bytes = 1000\n'
                   '[clickhouse]\nurl = "http://ch:8123"\npassword = "s3cret"\n')
    monkeypatch.setenv("CONVMON_CONFIG", str(cfg))
    monkeypatch.setenv("CONVMON_WORKER__BATCH_SIZE", "128")
    s = Settings()
    assert s.kafka.bootstrap == "file:9092"
    assert s.worker.batch_size == 128 and s.worker.max_text_bytes == 1000  # env beats file, file beats default
    assert s.clickhouse.url == "http://ch:8123"
    monkeypatch.setenv("CONVMON_KAFKA_BOOTSTRAP", "env:9092")
    monkeypatch.setenv("CONVMON_CLICKHOUSE_URL", "chdb:///data/ch")
    s = Settings()
    assert s.kafka.bootstrap == "env:9092" and s.clickhouse.url == "chdb:///data/ch"
    assert "s3cret" not in s.model_dump_json() and "s3cret" not in repr(s)


def test_bad_values_fail_with_the_field_name(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVMON_WORKER__BATCH_SIZE", "0")
    with pytest.raises(ValueError, match="batch_size"):
        Settings()
    monkeypatch.delenv("CONVMON_WORKER__BATCH_SIZE")
    monkeypatch.setenv("CONVMON_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        Settings()
