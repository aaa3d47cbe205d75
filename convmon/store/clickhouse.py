"""One ClickHouse client API for embedded (chdb://PATH) and server (http(s)://…) modes.

Embedded mode facts that shape this module: chdb allows one database path per process and
one process per path. The worker owns the path while it runs; other commands that open
it fail fast with `StoreLocked`, which tells the user what to do.
"""

from __future__ import annotations

import fcntl
import re
from pathlib import Path
from typing import Optional

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from ..config import ClickHouseSettings
from ..redact import mask_text, mask_url


class StoreError(RuntimeError):
    """A ClickHouse problem with a message meant for the user."""


class StoreLocked(StoreError):
    pass


_OPENED_HERE: set[Path] = set()  # chdb paths this process has open (its own lock is not a conflict)
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _chdb_path(url: str) -> Path:
    return Path(url[len("chdb://") :] or "var/clickhouse").expanduser().absolute()


def _locked_by_other_process(path: Path) -> bool:
    """ClickHouse holds an exclusive flock on <path>/status while a process has the path open."""
    status = path / "status"
    if not status.exists():
        return False
    with open(status, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def _store_locked(path: Path) -> StoreLocked:
    return StoreLocked(
        f"the embedded ClickHouse at {path} is in use by another process (normally a running "
        "`convmon worker`, which owns it: chdb allows one process per path). Stop the worker and retry, "
        "or point CONVMON_CLICKHOUSE_URL at a ClickHouse server so that several processes can share it."
    )


def connect(cfg: ClickHouseSettings, create_database: bool = True) -> Client:
    """Open a client on cfg.url with cfg.database selected (created when missing)."""
    if not _DB_NAME.match(cfg.database):
        raise StoreError(f"clickhouse.database {cfg.database!r} is not a plain identifier")
    if cfg.url.startswith("chdb://"):
        path = _chdb_path(cfg.url)
        path.mkdir(parents=True, exist_ok=True)
        if path not in _OPENED_HERE and _locked_by_other_process(path):
            raise _store_locked(path)
        try:
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
            _OPENED_HERE.add(path)
        except Exception as e:
            if _locked_by_other_process(path):  # another process took it between the check and the open
                raise _store_locked(path) from e
            raise StoreError(f"cannot open embedded ClickHouse at {path}: {_first_line(e)}") from e
        if create_database:
            client.command(f"CREATE DATABASE IF NOT EXISTS {cfg.database}")
        client.command(f"USE {cfg.database}")
        client.database = cfg.database
        return client
    if not re.match(r"^https?://", cfg.url):
        scheme = cfg.url.split("://", 1)[0] if "://" in cfg.url else "none"
        raise StoreError(f"clickhouse.url: expected chdb://PATH, http://HOST:PORT or https://HOST:PORT, got scheme "
                         f"{scheme[:20]!r} (value not shown: it may hold a password)")
    kwargs = {}
    if cfg.username:
        kwargs["username"] = cfg.username
    if cfg.password:
        kwargs["password"] = cfg.password.get_secret_value()
    try:
        admin = clickhouse_connect.get_client(dsn=cfg.url, **kwargs)
        if create_database:
            admin.command(f"CREATE DATABASE IF NOT EXISTS {cfg.database}")
        admin.close()
        return clickhouse_connect.get_client(dsn=cfg.url, database=cfg.database, **kwargs)
    except Exception as e:
        raise StoreError(f"cannot reach ClickHouse at {_safe_url(cfg.url)}: {type(e).__name__}: {_first_line(e)}") from e


def _safe_url(url: str) -> str:
    """The URL without credentials (password, secret query parameters), for messages and logs."""
    return mask_url(url)


def _first_line(e: BaseException) -> str:
    return mask_text((str(e).strip().splitlines() or [""])[0])[:300]


def close(client: Optional[Client]) -> None:
    if client is not None:
        try:
            client.close()
        except Exception:
            pass
