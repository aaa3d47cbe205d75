"""The `convmon` command."""

from __future__ import annotations

import json
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
        except Exception as e:  # SettingsError names fields, never values; mask URLs in anything else
            from .redact import mask_text

            raise click.ClickException(f"invalid configuration: {mask_text(str(e))}") from None
    return ctx.obj


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
    turns = []
    try:
        for lineno, t in read_jsonl(file):
            try:
                turns.append(complete(t))
            except (ContractError, AttributeError, TypeError) as e:
                detail = e if isinstance(e, ContractError) else "not a JSON object"
                raise click.ClickException(f"{file}:{lineno}: {detail}") from None
    except ContractError as e:
        raise click.ClickException(str(e)) from None
    if not turns:
        raise click.ClickException(f"{file} holds no turns (one JSON object per line): nothing was published")
    try:
        pub = TurnPublisher.from_settings(settings.kafka, topic or settings.topics.turns)
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


@main.command()
@click.argument("ids", nargs=-1, required=True)
@click.pass_context
def pseudonym(ctx: click.Context, ids: tuple[str, ...]) -> None:
    """Print the pseudonym stored for each conversation id or user ref (to look one up in ClickHouse,
    Grafana or an alert). Uses the workers' key: privacy.pseudonym_key, else <var>/pseudonym.key."""
    from .privacy import Protector, pseudonym as keyed

    key = Protector.from_settings(_settings(ctx)).key
    for raw in ids:
        click.echo(f"{raw}\t{keyed(key, raw)}")


# --- feedback: on-call labels, precision, calibration ---------------------------------------------
def _duration(value: str) -> float:
    """'90s', '30m', '1h', '7d' → seconds."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value or "")
    if not m:
        raise click.BadParameter(f"expected a duration such as 30m, 1h or 7d, got {value!r}")
    return float(m[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]


@main.group()
def alerts() -> None:
    """On-call: recent incidents, and labels on them (published to chat.feedback)."""


@alerts.command("list")
@click.option("--since", default="1h", show_default=True, help="how far back, e.g. 30m, 1h, 7d")
@click.option("--kind", "kinds", multiple=True, help="only these alert kinds (repeatable)")
@click.option("--all", "all_", is_flag=True, help="also the alerts folded into an open incident, and resolutions")
@click.pass_context
def alerts_list(ctx: click.Context, since: str, kinds: tuple[str, ...], all_: bool) -> None:
    """Recent incidents from the alerts table: the alerts that paged (notified), newest first."""
    client = _connect(_settings(ctx))
    rows = client.query(
        "SELECT alert_id, ts, kind, severity, app, model_version, delivery, summary FROM alerts FINAL "
        "WHERE ts >= now64(3) - toIntervalSecond({since:UInt64}) AND (length({kinds:Array(String)}) = 0 "
        "OR has({kinds:Array(String)}, kind)) AND ({all:UInt8} = 1 OR delivery = 'notified') ORDER BY ts DESC LIMIT 500",
        parameters={"since": int(_duration(since)), "kinds": list(kinds), "all": int(all_)}).result_rows
    for alert_id, ts, kind, severity, app, version, delivery, summary in rows:
        click.echo(f"{alert_id}  {ts:%Y-%m-%d %H:%M:%S}  {kind:<18} {severity:<8} {app} {version}"
                   f"{'' if delivery == 'notified' else f' ({delivery})'}  {summary}")
    click.echo(f"{len(rows)} alert(s); label one: convmon alerts label ALERT_ID confirmed|false_alarm [--note TEXT]",
               err=True)


@alerts.command("label")
@click.argument("alert_id")
@click.argument("verdict", type=click.Choice(["confirmed", "false_alarm"]))
@click.option("--signal", default=None, help="what is labelled (the page names it); default: from the stored alert")
@click.option("--note", default=None, help="free text (stored with PII and secrets redacted)")
@click.option("--reporter", default=None, help="who labels (stored as a pseudonym); default: your login name")
@click.pass_context
def alerts_label(ctx: click.Context, alert_id: str, verdict: str, signal: str | None, note: str | None,
                 reporter: str | None) -> None:
    """Label an alert confirmed or false_alarm: publishes a feedback record to chat.feedback."""
    import getpass
    import uuid as _uuid

    from pydantic import ValidationError

    from .feedback.oncall import alert_label, alert_signal
    from .ingest import format_errors

    settings = _settings(ctx)
    try:
        alert_id = str(_uuid.UUID(alert_id))
    except ValueError:
        raise click.BadParameter("ALERT_ID is the alert's UUID, as its page and `convmon alerts list` show it") from None
    if signal is None:
        rows = _connect(settings).query("SELECT kind, details FROM alerts FINAL WHERE alert_id = {a:UUID} LIMIT 1",
                                        parameters={"a": alert_id}).result_rows
        if not rows:
            raise click.ClickException(f"no alert {alert_id} in ClickHouse: give --signal (the page names it)")
        signal = alert_signal(rows[0][0], json.loads(rows[0][1] or "{}"))
        if signal is None:
            raise click.ClickException(f"a {rows[0][0]} alert is convmon's own and takes no label")
    try:
        record = alert_label(alert_id, verdict, signal, reporter or getpass.getuser(), note)
    except ValidationError as e:
        raise click.ClickException(f"not a valid feedback record: {format_errors(e)}") from None
    key, value = record.encode()
    from .produce import TurnPublisher

    try:
        pub = TurnPublisher.from_settings(settings.kafka, settings.topics.feedback)
    except Exception as e:
        raise click.ClickException(f"cannot reach Kafka at {settings.kafka.bootstrap} ({type(e).__name__})") from None
    with pub:
        pub.publish_raw(value, key).get(timeout=30)
    click.echo(f"labelled alert {alert_id} {verdict} ({signal}): feedback {record.feedback_id} on {pub.topic}")


@main.command()
@click.option("--app", default="", help="one app (default: all)")
@click.option("--since", default="7d", show_default=True, help="labels given in this window, e.g. 7d, 24h")
@click.option("--json", "as_json", is_flag=True, help="JSON lines")
@click.pass_context
def precision(ctx: click.Context, app: str, since: str, as_json: bool) -> None:
    """Precision of each signal per app and model version, from the labels: labelled count, precision with a
    Wilson 95% interval, misses reported."""
    from dataclasses import asdict

    from .feedback.precision import format_rows, precision as measure

    rows = measure(_connect(_settings(ctx)), app=app, since_s=_duration(since))
    if as_json:
        for r in rows:
            click.echo(json.dumps(asdict(r)))
        return
    click.echo("\n".join(format_rows(rows)) if rows else f"no labels in the last {since}")


@main.command()
@click.option("--app", required=True, help="the app to calibrate")
@click.option("--budget", type=float, default=None,
              help="false alerts per 1,000 of the app's turns to stay within (default: feedback.budget_per_1000)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="the rules.toml override snippet (default: <var>/calibrate-<app>.toml)")
@click.option("--rules-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the current rules file with the proposal merged in, for review (never the live one)")
@click.pass_context
def calibrate(ctx: click.Context, app: str, budget: float | None, out: Path | None, rules_out: Path | None) -> None:
    """Propose per-app thresholds from the labels and the scores the app's turns get. Nothing is applied: it
    writes a rules.toml snippet for a person to review."""
    from .alerting.rules import RuleSet
    from .feedback import calibrate as cal

    settings = _settings(ctx)
    fb = settings.feedback
    budget = fb.budget_per_1000 if budget is None else budget
    proposals = cal.calibrate(_connect(settings), app, budget, fb.min_labels, fb.window_days * 86400)
    if not proposals:
        raise click.ClickException(f"no labels of a thresholded signal (toxicity, jailbreak, policy:<id>) for app "
                                   f"{app!r}: nothing to calibrate")
    for p in proposals:
        if p.threshold is None:
            click.echo(f"{p.signal:<26} nothing proposed: {p.reason}")
        else:
            click.echo(f"{p.signal:<26} threshold {p.threshold:.4f}: expected false alerts {p.expected_false_per_1000:g} "
                       f"per 1,000 turns (budget {budget:g}), recall {p.recall:.3f} on {p.positives} labelled positives "
                       f"({p.labels} flagged labels, {p.turns} turns)")
    rules = RuleSet.load(settings.alerting.rules_file)
    out = out or settings.var / f"calibrate-{app.replace('/', '_')}.toml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(cal.snippet(proposals, app, budget, rules))
    click.echo(f"wrote {out}: proposed, not applied; review it before putting it in your rules file")
    if rules_out:
        from .alerting.rules import default_rules_text

        current = Path(settings.alerting.rules_file).read_text() if settings.alerting.rules_file else default_rules_text()
        rules_out.write_text(cal.insert_overrides(current, cal.override_blocks(proposals, app, rules)))
        click.echo(f"wrote {rules_out}: the current rules with the proposal merged in (not applied)")


@main.group()
def feedback() -> None:
    """Labels on what convmon flagged (chat.feedback)."""


@feedback.command("export")
@click.option("--out", type=click.File("w", encoding="utf-8"), default="-", show_default=True)
@click.option("--app", default="", help="one app (default: all)")
@click.option("--since", default=None, help="labels given in this window (default: feedback.window_days)")
@click.pass_context
def feedback_export(ctx: click.Context, out, app: str, since: str | None) -> None:
    """Labelled turns as JSONL for training: redacted text, signal, verdict, scores, suite version."""
    from .feedback.export import export

    settings = _settings(ctx)
    since_s = _duration(since) if since else settings.feedback.window_days * 86400
    n = export(_connect(settings), out, since_s, app)
    click.echo(f"exported {n} labelled turn(s)", err=True)


# --- demo ---------------------------------------------------------------------------------------
@main.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file to write (default: <var>/report.html)")
@click.pass_context
def report(ctx: click.Context, out: Path | None) -> None:
    """Write one self-contained HTML page of what convmon saw: traffic, toxicity and sentiment by model
    version, embedding drift, alerts, conversations with shifts. Same SQL as the Grafana panels; works
    offline (no Grafana needed)."""
    settings = _settings(ctx)
    from .report import build

    out = out or settings.var / "report.html"
    counts = build(_connect(settings), out)
    empty = [t for t, n in counts.items() if not n]
    click.echo(f"wrote {out} ({out.stat().st_size // 1024} KiB): {len(counts) - len(empty)} of {len(counts)} "
               f"sections with data" + (f"; no data yet for: {', '.join(empty)}" if empty else ""))


@main.command()
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="turns to replay (default: the bundled sample conversations)")
@click.option("--timeout", type=float, default=180.0, show_default=True)
@click.pass_context
def demo(ctx: click.Context, file: Path | None, timeout: float) -> None:
    """Replay sample conversations through the live pipeline and print what convmon found."""
    from convmon_dev.demo import run_demo

    sys.exit(run_demo(_settings(ctx), file, timeout))


# --- models -------------------------------------------------------------------------------------
def _models_dir(settings: Settings) -> Path:
    from .scoring.suite import default_model_dir

    return Path(settings.scoring.models_dir or default_model_dir())


@main.group()
def models() -> None:
    """The ONNX model suite: prepare data, train, build, verify, evaluate."""


@models.command("data")
@click.option("--mirrors", type=click.Path(file_okay=False, path_type=Path), default=Path("/work/.mirror"),
              show_default=True, help="folder of bare git mirrors, one per public repository (owner+name/)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path.home() / ".cache" / "convmon" / "public-data", show_default=True,
              help="where the prepared sets go; `--out models/data/public` refreshes the committed copy")
def models_data(mirrors: Path, out: Path) -> None:
    """Rebuild the public labelled sets from pinned repositories (dev-time; see models/data/public/DATA_CARD.md)."""
    from convmon_dev.modelsuite.public.prepare import prepare

    counts = prepare(out, mirrors, log=lambda msg: click.echo(msg, err=True))
    for task in sorted({c["task"] for c in counts.values()}):
        parts = [f"{sid} ({c['role']}) {c['rows']}" for sid, c in sorted(counts.items()) if c["task"] == task]
        click.echo(f"{task:<10} " + ", ".join(parts))


@models.command("train")
@click.option("--dir", "models_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="models folder (default: the packaged models/)")
@click.option("--epochs", type=int, default=None, help="training epochs (default from TrainConfig)")
@click.option("--seed", type=int, default=None,
              help="seed of the draws, shuffles and head initialisation (default from TrainConfig: the shipped suite's); "
                   "train the same data with other seeds to see how much a result varies from run to run")
@click.pass_context
def models_train(ctx: click.Context, models_dir: Path | None, epochs: int | None, seed: int | None) -> None:
    """Fine-tune the encoder's top layers and the heads on models/data (torch; `make train-deps`). Slow: see README."""
    from dataclasses import replace

    from convmon_dev.modelsuite.train import TrainConfig, train

    d = models_dir or _models_dir(_settings(ctx))
    given = {k: v for k, v in (("epochs", epochs), ("seed", seed)) if v is not None}
    cfg = replace(TrainConfig(), **given)
    info = train(d, cfg, log=lambda msg: click.echo(msg, err=True))
    click.echo(f"trained in {info['seconds'] / 60:.1f} min, kept epoch {info['kept_epoch']} → {d}/trained/ "
               f"(now run `convmon models build`)")


@models.command("build")
@click.option("--dir", "models_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="models folder (default: the packaged models/)")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench/models-eval.json"),
              show_default=True, help="where the cross-source evaluation report goes")
@click.pass_context
def models_build(ctx: click.Context, models_dir: Path | None, report: Path) -> None:
    """Rebuild models/suite.onnx, manifest and card from the pinned inputs (torch-free; `make models`)."""
    from convmon_dev.modelsuite.build import build
    from convmon_dev.modelsuite.card import TARGETS

    d = models_dir or _models_dir(_settings(ctx))
    m = build(d, log=lambda msg: click.echo(msg, err=True))
    ev = m["metrics"]["eval"]
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({
        "command": "convmon models build",
        "suite_version": m["suite"]["version"],
        "protocol": "public sources are either training sources (their ~15% dev split picks epochs and thresholds) "
                    "or evaluation-only sources (never trained or tuned on); hand-written dev sets are evaluation-only",
        "targets": {t: {"metric": k, "goal": g} for t, (k, g) in TARGETS.items()},
        "thresholds": {**m["suite"]["thresholds"], **m["suite"]["policy_thresholds"]},
        "eval": ev,
        "int8_vs_fp32": m["int8_vs_fp32"],
    }, indent=2) + "\n")
    click.echo(f"built {m['suite']['version']} in {m['build']['seconds']}s → {d}; report → {report}")
    for name, r in ev.items():
        metric, goal = TARGETS.get(r["task"], ("auc", None))
        value = r.get("macro_f1" if r["task"] == "sentiment" else "auc")
        target = f" (target ≥ {goal}: {'met' if value is not None and value >= goal else 'NOT met'})" \
            if name.startswith("public:") and goal else ""
        click.echo(f"  {name:<28} {'macro-F1' if r['task'] == 'sentiment' else 'AUC'} {value}{target}")
    a = m["int8_vs_fp32"]
    click.echo(f"  int8 vs fp32: embedding cosine mean {a['embedding_cosine_mean']}, min {a['embedding_cosine_min']}")


@models.command("verify")
@click.option("--dir", "models_dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.pass_context
def models_verify(ctx: click.Context, models_dir: Path | None) -> None:
    """Check the model files and training data against models/manifest.json."""
    from convmon_dev.modelsuite.build import verify

    d = models_dir or _models_dir(_settings(ctx))
    problems = verify(d)
    if problems:
        for p in problems:
            click.echo(f"✗ {p}", err=True)
        raise SystemExit(1)
    click.echo(f"✓ {d}/manifest.json matches every model file and training set")


@models.command("eval")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="full reports as JSON")
@click.pass_context
def models_eval(ctx: click.Context, data_dir: Path, as_json: bool) -> None:
    """Metrics of the shipped suite on labelled JSONL sets under DATA_DIR (task from the path)."""
    from convmon_dev.modelsuite.evaluate import evaluate_dir
    from .scoring.suite import SuiteModel

    settings = _settings(ctx)
    results = evaluate_dir(SuiteModel(_models_dir(settings), threads=2), data_dir)
    if not results:
        raise click.ClickException(f"no labelled sets found under {data_dir} (expected e.g. toxicity/dev.jsonl)")
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    for name, r in results.items():
        if r["task"] == "sentiment":
            click.echo(f"{name:<45} sentiment  n={r['n']:<5} macro-F1 {r['macro_f1']:.3f}  accuracy {r['accuracy']:.3f}")
        else:
            c = r["confusion"]
            extra = f"  FPR quotes/rebuttals {r['fpr_quote_rebut']:.3f}" if "fpr_quote_rebut" in r else ""
            click.echo(f"{name:<45} {r['task']:<10} n={r['n']:<5} AUC {r['auc']:.3f}  F1@{r['threshold']:.2f} "
                       f"{r['f1']:.3f}  tp={c['tp']} fp={c['fp']} fn={c['fn']} tn={c['tn']}{extra}")


# --- score ----------------------------------------------------------------------------------------
@main.command()
@click.argument("text", required=False)
@click.option("--file", "file", type=click.File("r", encoding="utf-8"), default=None,
              help="JSONL input, one object with `text` per line ('-' for stdin)")
@click.option("--json", "as_json", is_flag=True,
              help="JSON lines out (always with --file): each input object unchanged, the scores under `convmon`")
@click.pass_context
def score(ctx: click.Context, text: str | None, file, as_json: bool) -> None:
    """Score text without Kafka: `convmon score "some text"` or `convmon score --file IN.jsonl --json`."""
    from .scoring.offline import OfflineScorer

    if (text is None) == (file is None):
        raise click.UsageError("give either TEXT or --file")
    scorer = OfflineScorer(threads=2)
    if text is not None:
        (row,) = scorer.score([{"text": text}])
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:  # for people: each signal with its threshold and decision (--json for machines)
            click.echo("\n".join(scorer.verdicts(row)))
        return

    def records():
        for n, line in enumerate(file, 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise click.ClickException(f"line {n}: not JSON ({e.msg})") from None
                if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                    raise click.ClickException(f"line {n}: expected an object with a string `text`")
                yield obj

    for row in scorer.score_stream(records()):
        click.echo(json.dumps(row, ensure_ascii=False))


# --- bench ----------------------------------------------------------------------------------------
@main.group()
def bench() -> None:
    """Benchmarks that write committed reports under bench/."""


@bench.command("models")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench/models-report.json"),
              show_default=True)
@click.option("--seconds", type=float, default=3.0, show_default=True, help="time per measurement")
@click.option("--threads", type=int, default=1, show_default=True, help="onnxruntime intra-op threads")
@click.option("--previous", default=None, metavar="COMMIT",
              help="also time the suite shipped at this git commit, in the same run (e.g. 7bfb2af)")
@click.pass_context
def bench_models(ctx: click.Context, out: Path, seconds: float, threads: int, previous: str | None) -> None:
    """Suite vs bare encoder vs fp32 vs one-model-per-check (and a previous suite), short, long and very long turns."""
    from convmon_dev.modelsuite.bench import run_bench

    report = run_bench(_models_dir(_settings(ctx)), seconds=seconds, threads=threads,
                       log=lambda m: click.echo(m, err=True), previous=previous)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(report["summary"])
    click.echo(f"report written to {out}")


@bench.command("e2e")
@click.option("--turns", "n", type=int, default=4000, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench/e2e-report.json"),
              show_default=True)
@click.option("--profile", "profile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also sample the worker with py-spy during the throughput run: collapsed stacks to this file, "
                   "a summary next to it (.json) and in the report")
@click.pass_context
def bench_e2e(ctx: click.Context, n: int, out: Path, profile: Path | None) -> None:
    """Kafka → worker → ClickHouse + alerts on the local broker: throughput, latencies, and the bare
    encoder's ceiling measured in the same run."""
    from convmon_dev.e2e_bench import run_e2e_bench, summary

    report = run_e2e_bench(_settings(ctx), n, log=lambda m: click.echo(m, err=True), profile=profile)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(summary(report))
    click.echo(f"report written to {out}")


@bench.command("chaos")
@click.option("--seed", type=int, default=20, show_default=True, help="the kills' timing and targets, the data")
@click.option("--turns", "n", type=int, default=40_000, show_default=True)
@click.option("--workers", type=int, default=3, show_default=True)
@click.option("--chaos-seconds", type=float, default=180.0, show_default=True,
              help="how long kills go on (a broker restart falls in the middle)")
@click.option("--idle-seconds", type=float, default=180.0, show_default=True,
              help="how long the finished group must stay quiet (no stall, no rejoin)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench/chaos-report.json"),
              show_default=True)
@click.pass_context
def bench_chaos(ctx: click.Context, seed: int, n: int, workers: int, chaos_seconds: float, idle_seconds: float,
                out: Path) -> None:
    """Workers in one group on the local broker under random SIGKILLs and a broker restart: nothing lost, nothing
    doubled, the DLQ complete, every incident paged once, then an idle group with no stall and no rejoin."""
    from convmon_dev.chaos import ChaosPlan, run_chaos, summary

    plan = ChaosPlan(seed=seed, turns=n, workers=workers, chaos_s=chaos_seconds, idle_s=idle_seconds,
                     incidents=100)
    report = run_chaos(plan, _settings(ctx).kafka.bootstrap, log=lambda m: click.echo(m, err=True))
    report["command"] = (f"convmon bench chaos --seed {seed} --turns {n} --workers {workers} "
                         f"--chaos-seconds {chaos_seconds:g} --idle-seconds {idle_seconds:g}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(summary(report))
    click.echo(f"report written to {out}")
    if not report["ok"]:
        raise SystemExit(1)


@bench.command("false-pages")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench/false-pages.json"),
              show_default=True)
@click.option("--threads", type=int, default=2, show_default=True, help="onnxruntime intra-op threads")
@click.pass_context
def bench_false_pages(ctx: click.Context, out: Path, threads: int) -> None:
    """Pages the default rules would send on held-out benign real chat, per 1,000 turns: overall, per signal,
    per role and length."""
    from convmon_dev.false_pages import run, summary
    from convmon_dev.modelsuite import card

    models_dir = _models_dir(_settings(ctx))
    report = run(models_dir, log=lambda m: click.echo(m, err=True), threads=threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    click.echo(summary(report))
    click.echo(f"report written to {out}")
    manifest = json.loads((models_dir / "manifest.json").read_text())
    if manifest.get("metrics"):  # a card needs the build's evaluation
        click.echo(f"model card updated: {card.write(models_dir, manifest, report)}")


@bench.command("gil")
@click.option("--turns", "n", type=int, default=1000, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench/gil-report.json"),
              show_default=True)
def bench_gil(n: int, out: Path) -> None:
    """The encoder alone, next to a busy Python thread, and in a child process next to it (why scoring runs in a child)."""
    from convmon_dev.gil_bench import run_gil_bench

    report = run_gil_bench(n, log=lambda m: click.echo(m, err=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    r = report["turns_per_s"]
    click.echo(f"alone {r['alone']} turns/s; in-process next to a busy thread {r['in_process_busy_thread']}; "
               f"child process next to it {r['child_process_busy_thread']}")
    click.echo(f"report written to {out}")


# --- grafana --------------------------------------------------------------------------------------
@main.group()
def grafana() -> None:
    """Grafana: push the datasource and dashboards over the HTTP API."""


@grafana.command("provision")
@click.pass_context
def grafana_provision(ctx: click.Context) -> None:
    """Create/update the ClickHouse datasource and the convmon dashboards in Grafana (settings: [grafana])."""
    from .grafana import GrafanaError, provision

    try:
        n = provision(_settings(ctx).grafana, log=lambda m: click.echo(m, err=True))
    except GrafanaError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"provisioned the datasource and {n} dashboards")


# --- config ---------------------------------------------------------------------------------------
@main.group()
def config() -> None:
    """Show and check the effective configuration."""


@config.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Report unsafe settings (raw text storage, plaintext transports, secrets in config, …); exit 1 if any."""
    from .config_check import check

    findings = check(_settings(ctx))
    for f in findings:
        click.echo(str(f))
    unsafe = sum(f.level == "unsafe" for f in findings)
    click.echo(f"{unsafe} unsafe setting(s), {len(findings) - unsafe} note(s)" if findings else "no unsafe settings found")
    sys.exit(1 if unsafe else 0)


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective settings as JSON (secrets, URL passwords and secret URL parameters masked)."""
    click.echo(json.dumps(_settings(ctx).effective(), indent=2, ensure_ascii=False))


if __name__ == "__main__":  # pragma: no cover
    main()
