"""Shared fixtures.

chdb allows one database path per process: every test in this process that needs
ClickHouse uses the same embedded path, each in its own database (`store` fixture).
Worker processes started by end-to-end tests get their own paths.
"""

import uuid

import pytest

from convmon.config import Settings
from convmon.store.clickhouse import close, connect


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory):
    return tmp_path_factory.mktemp("chdb") / "clickhouse"


@pytest.fixture
def settings(chdb_path, tmp_path) -> Settings:
    db = f"t_{uuid.uuid4().hex[:10]}"
    return Settings(var=tmp_path / "var", clickhouse_url=f"chdb://{chdb_path}", clickhouse={"database": db})


@pytest.fixture
def client(settings):
    c = connect(settings.clickhouse)
    yield c
    close(c)
