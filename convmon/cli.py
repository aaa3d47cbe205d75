"""The `convmon` command."""

from __future__ import annotations

import json
import logging
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import click

from .config import Settings, load_settings


def _settings(ctx: click.Context) -> Settings:
    if ctx.obj is None:
        try:
            ctx.obj = load_settings()
        except Exception as e:
            raise click.ClickException(f"invalid configuration: {e}") from None
    return ctx.obj


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="convmon")
def main() -> None:
    """convmon — a streaming monitor for LLM chat.

    Configuration: ./convmon.toml (or the file named by CONVMON_CONFIG) and CONVMON_*
    environment variables, e.g. CONVMON_KAFKA_BOOTSTRAP, CONVMON_CLICKHOUSE_URL.
    """


# --- worker -----------------------------------------------------------------------------------
@main.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run the Faust worker: consume chat.turns, score, store, publish. Stops cleanly on SIGTERM/SIGINT."""
    settings = _settings(ctx)
    from .agents.worker import run

    run(settings)


# --- kafka ------------------------------------------------------------------------------------
@main.command()
@click.argument("action", type=click.Choice(["up", "down", "status", "logs"]))
@click.pass_context
def kafka(ctx: click.Context, action: str) -> None:
    """Manage the local Kafka broker (single-node KRaft on 127.0.0.1, data under var/kafka)."""
    from . import kafka_local

    rc = kafka_local.run(_settings(ctx), action).returncode
    sys.exit(rc)


# --- db ---------------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """ClickHouse: migrations and queries (embedded chdb:// by default, or a server)."""


def _connect(settings: Settings):
    from .store.clickhouse import StoreError, connect

    try:
        return connect(settings.clickhouse)
    except StoreError as e:
        raise click.ClickException(str(e)) from None


@db.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply pending schema migrations (idempotent)."""
    from .store.migrate import migrate as run_migrations

    client = _connect(_settings(ctx))
    applied = run_migrations(client)
    if applied:
        for m in applied:
            click.echo(f"applied {m.version:03d}_{m.name}")
    else:
        click.echo("schema is up to date")


def _jsonable(v):
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, (UUID, Decimal)):
        return str(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    raise TypeError(type(v).__name__)


def _tsv(v) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, (list, dict, tuple)):
        return json.dumps(v, default=_jsonable, ensure_ascii=False)
    s = v.isoformat() if isinstance(v, (datetime, date)) else str(v)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


@db.command()
@click.argument("sql")
@click.option("--json", "as_json", is_flag=True, help="print JSON lines instead of tab-separated rows")
@click.option("--header/--no-header", default=False, help="print column names first (TSV)")
@click.pass_context
def query(ctx: click.Context, sql: str, as_json: bool, header: bool) -> None:
    """Run SQL and print the rows (tab-separated, or JSON lines with --json)."""
    client = _connect(_settings(ctx))
    try:
        result = client.query(sql)
    except Exception as e:
        raise click.ClickException(f"query failed: {(str(e).strip().splitlines() or [''])[0][:500]}") from None
    cols = result.column_names
    if header and not as_json:
        click.echo("\t".join(cols))
    for row in result.result_rows:
        if as_json:
            click.echo(json.dumps(dict(zip(cols, row)), default=_jsonable, ensure_ascii=False))
        else:
            click.echo("\t".join(_tsv(v) for v in row))


# --- produce ------------------------------------------------------------------------------------
@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", type=float, default=None, help="turns per second (default: as fast as possible)")
@click.option("--topic", default=None, help="default: topics.turns (chat.turns)")
@click.pass_context
def produce(ctx: click.Context, file: Path, rate: float | None, topic: str | None) -> None:
    """Publish chat turns from a JSONL file to Kafka (event_id and ts filled where missing)."""
    from .produce import ContractError, TurnPublisher, complete, read_jsonl

    settings = _settings(ctx)
    try:
        turns = [complete(t) for _, t in read_jsonl(file)]
    except ContractError as e:
        raise click.ClickException(str(e)) from None
    except Exception as e:
        raise click.ClickException(f"{file}: {e}") from None
    try:
        pub = TurnPublisher(settings.kafka.bootstrap, topic or settings.topics.turns)
    except Exception as e:
        raise click.ClickException(
            f"cannot reach Kafka at {settings.kafka.bootstrap} ({type(e).__name__}). "
            "Start the local broker with `convmon kafka up` or set CONVMON_KAFKA_BOOTSTRAP."
        ) from None
    with click.progressbar(length=len(turns), label="publishing", file=sys.stderr) as bar, pub:
        last = [0]

        def progress(n: int) -> None:
            bar.update(n - last[0])
            last[0] = n

        n = pub.publish_many(turns, rate=rate, progress=progress)
    click.echo(f"published {n} turns to {pub.topic} at {settings.kafka.bootstrap}")


# --- demo ---------------------------------------------------------------------------------------
@main.command()
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="turns to replay (default: the bundled sample conversations)")
@click.option("--timeout", type=float, default=180.0, show_default=True)
@click.pass_context
def demo(ctx: click.Context, file: Path | None, timeout: float) -> None:
    """Replay sample conversations through the live pipeline and print what convmon found."""
    from .demo import run_demo

    sys.exit(run_demo(_settings(ctx), file, timeout))


# --- config ---------------------------------------------------------------------------------------
@main.group()
def config() -> None:
    """Show the effective configuration."""


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective settings as JSON (secrets masked)."""
    click.echo(_settings(ctx).model_dump_json(indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
