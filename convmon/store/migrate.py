"""Versioned, idempotent migrations from schemas/clickhouse/NNN_name.sql.

Each file is applied once, in order, and recorded in `schema_migrations`. Statements are
`CREATE … IF NOT EXISTS` style, so re-running a half-applied file is safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client
from ..resources import data_path

_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree ORDER BY version
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """Statements end with `;` at the end of a line (a `;` inside a line, e.g. in a COMMENT, is kept)."""
        body = "\n".join(line for line in self.sql.splitlines() if not line.strip().startswith("--"))
        return [s.strip() for s in re.split(r";[ \t]*$", body, flags=re.M) if s.strip()]


def available() -> list[Migration]:
    folder = data_path("schemas/clickhouse")
    found = []
    for entry in folder.iterdir():
        m = _FILE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in schemas/clickhouse: {versions}")
    return found


def applied(client: Client) -> set[int]:
    client.command(_LEDGER)
    return {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}


def migrate(client: Client) -> list[Migration]:
    """Apply pending migrations; return the ones applied now."""
    done = applied(client)
    new = []
    for m in available():
        if m.version in done:
            continue
        for stmt in m.statements():
            client.command(stmt)
        client.insert("schema_migrations", [[m.version, m.name]], column_names=["version", "name"])
        new.append(m)
    return new
