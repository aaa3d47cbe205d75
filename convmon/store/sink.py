"""The worker's ClickHouse sink: owns the client, applies migrations, writes batches with retry.

All ClickHouse calls run on one dedicated thread (chdb is in-process and blocking), never on
the event loop. A failed write is retried with capped exponential back-off until it succeeds:
the caller does not acknowledge the Kafka records meanwhile, so offsets are never committed
past turns that are not stored, and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence

from clickhouse_connect.driver.client import Client

from ..config import Settings
from .clickhouse import close, connect
from .migrate import migrate
from .alerts import AlertStore
from .replays import ReplayGuard
from .tables import ROW_TYPES, RowStore
from .turns import TurnStore

log = logging.getLogger(__name__)


class StoreSink:
    def __init__(self, open_client: Callable[[], Client], insert_batch_rows: int = 10000, retry_max_s: float = 30.0):
        self._open_client = open_client
        self._insert_batch_rows = insert_batch_rows
        self._retry_max_s = retry_max_s
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="convmon-store")
        self._client: Optional[Client] = None
        self._stores: Optional[dict] = None
        self._replays = ReplayGuard()  # which partitions' turns may be stored already (outlives reconnects)
        self.failures = 0  # consecutive failed attempts, visible to metrics
        self.rows_written = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> "StoreSink":
        return cls(
            lambda: connect(settings.clickhouse),
            settings.clickhouse.insert_batch_rows,
            settings.worker.store_retry_max_s,
        )

    # -- blocking part, on the store thread ------------------------------------------------
    def _ensure_open(self) -> dict:
        if self._stores is None:
            client = self._open_client()
            migrate(client)
            self._client = client
            self._stores = {
                "turns": TurnStore(client, self._insert_batch_rows, self._replays),
                "alerts": AlertStore(client),
                **{t: RowStore(client, row_type) for t, row_type in ROW_TYPES.items()},
            }
        return self._stores

    def _write_blocking(self, rows: Sequence, table: str) -> int:
        return self._ensure_open()[table].write(rows)

    def _reset_blocking(self) -> None:
        close(self._client)
        self._client, self._stores = None, None

    # -- async API ----------------------------------------------------------------------------
    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        await self._run(self._ensure_open)

    async def write(self, rows: Sequence, table: Optional[str] = None) -> int:
        """Store `rows` in `table` (default: the typed rows' own table, store/tables.py; `turns` takes scored
        turns, `alerts` alert records); retries until ClickHouse accepts them (cancellation stops the retries)."""
        if not rows:
            return 0
        table = table or getattr(type(rows[0]), "TABLE", "turns")
        delay = 0.2
        while True:
            try:
                n = await self._run(self._write_blocking, rows, table)
                if self.failures:
                    log.warning("ClickHouse writes recovered after %d failed attempts", self.failures)
                self.failures = 0
                self.rows_written += n
                return n
            except Exception as e:
                self.failures += 1
                first = (str(e).strip().splitlines() or [""])[0][:200]
                log.warning(
                    "ClickHouse write of %d %s rows failed (attempt %d): %s: %s; retrying in %.1fs",
                    len(rows), table, self.failures, type(e).__name__, first, delay,
                )
                if self.failures % 5 == 0:  # a server that went away: reconnect
                    await self._run(self._reset_blocking)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)

    async def read(self, sql: str, parameters: Optional[dict] = None) -> list[tuple]:
        """Rows of a (parameterised) query: startup state such as pinned references and snapshots."""

        def q():
            self._ensure_open()
            return self._client.query(sql, parameters=parameters).result_rows

        return await self._run(q)

    async def close(self) -> None:
        await self._run(self._reset_blocking)
        self._executor.shutdown(wait=True)

    def close_blocking(self) -> None:
        self._reset_blocking()
        self._executor.shutdown(wait=True)
