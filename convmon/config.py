"""The one typed settings object.

Sources, highest priority first: explicit keyword arguments, `CONVMON_*` environment
variables (nested fields with `__`, e.g. `CONVMON_WORKER__BATCH_SIZE`), the TOML file named
by `CONVMON_CONFIG` (default: ./convmon.toml when it exists), then the defaults below.
Nothing else in the package reads the environment or a config file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from .redact import describe_validation_error, mask_data


class InvalidSettingsError(ValueError):
    """Invalid settings. The message names each field and why, never the value (it may be a secret)."""

    def __init__(self, e: ValidationError):
        super().__init__(describe_validation_error(e, env_prefix="CONVMON_"))
        self._errors = e.errors(include_input=False, include_url=False, include_context=False)

    def errors(self) -> list[dict]:
        return self._errors


class _MaskedRepr:
    """repr()/str() with secrets masked (convmon.redact), so a logged settings object leaks nothing."""

    def __repr_args__(self):
        for k, v in super().__repr_args__():  # type: ignore[misc]
            yield k, (v if isinstance(v, BaseModel) else mask_data(v, k or ""))


class TopicSettings(_MaskedRepr, BaseModel):
    turns: str = "chat.turns"
    dlq: str = "chat.turns.dlq"
    scores: str = "chat.scores"
    alerts: str = "chat.alerts"
    feedback: str = Field("chat.feedback", description="labels from on-call, end users and reviewers on what convmon "
                          "flagged (schemas/feedback.schema.json)")
    signals: str = Field("convmon.signals", description="internal: per-turn signals keyed by model version")
    outbox_prefix: str = Field("convmon.outbox.", description="internal: each alert channel's outbox topic is this "
                               "prefix + the channel's name; decided notifications wait there until delivered")
    partitions: int = Field(4, ge=1, description="partitions for topics the worker creates")
    replication_factor: int = Field(1, ge=1)
    retention_hours: Optional[float] = Field(168, gt=0, description="retention of the topics the worker creates, "
                                             "except the DLQ (None = the broker's default)")
    dlq_retention_hours: Optional[float] = Field(72, gt=0, description="retention of the DLQ, which holds raw, "
                                                 "unredacted input (None = the broker's default, usually 7 days)")


class WorkerSettings(_MaskedRepr, BaseModel):
    app_id: str = Field("convmon", description="Faust app id = Kafka consumer group")
    batch_size: int = Field(512, ge=1, description="max turns per scoring micro-batch")
    batch_within_s: float = Field(0.05, gt=0, description="max wait to fill a micro-batch; below `batch_size` a "
                                  "batch is what arrived while the previous one was scored, so this wait is "
                                  "added to every page's latency (raise it to make fewer, larger ClickHouse "
                                  "inserts)")
    state_batch_within_s: float = Field(1.0, gt=0, description="max wait to fill a batch of the per-model-version "
                                        "state (drift, rates, minute windows): each batch snapshots the keys it "
                                        "changed and writes ClickHouse, none of it on a page's path, so it takes "
                                        "fewer, larger batches than scoring")
    max_text_bytes: int = Field(65536, ge=1, description="turns with longer text go to the DLQ")
    max_record_bytes: int = Field(1_048_576, ge=1024, description="records larger than this go to the DLQ")
    max_json_depth: int = Field(32, ge=2, description="deeper JSON goes to the DLQ")
    max_future_skew_s: float = Field(86400, ge=0, description="turns dated further ahead go to the DLQ")
    watermark_max_ahead_s: float = Field(0, ge=0, description="event time moves a model version's minute-window "
                                         "watermark at most this far past the wall clock (a turn dated later "
                                         "is counted, but does not make on-time turns late)")
    state_max_keys: int = Field(10_000, ge=1, description="model versions (app|model|version|role) whose state a "
                                "worker keeps in memory; the least recently used beyond this wait in ClickHouse")
    state_idle_ttl_s: float = Field(24 * 3600, gt=0, description="a model version idle this long leaves memory "
                                    "(its state stays in ClickHouse and is restored if it comes back)")
    window_idle_flush_s: float = Field(120, gt=0, description="a model version with no turns for this long (wall "
                                       "clock) has its open minute windows written")
    scoring_threads: int = Field(1, ge=1, description="threads for CPU-heavy scoring, off the event loop (the "
                                 "encoder's threads; with scoring.child_process the worker adds one thread that "
                                 "prepares the next batch while the child encodes)")
    stall_after_s: float = Field(60, gt=0, description="a partition with records waiting, none in processing, "
                                 "whose position has not moved for this long is stalled: logged, counted, "
                                 "re-read from its committed offset, then the consumer rejoins its group")
    shutdown_timeout_s: float = Field(30, gt=0)
    session_timeout_s: float = Field(30, ge=6, description="Kafka group session timeout: how soon a dead worker's "
                                                       "partitions move to the others")
    store_retry_max_s: float = Field(30, gt=0, description="cap of the back-off while ClickHouse refuses writes")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port on 127.0.0.1 (0 = off)")


class KafkaSettings(_MaskedRepr, BaseModel):
    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL")
    sasl_mechanism: Optional[str] = None
    sasl_username: Optional[str] = None
    sasl_password: Optional[SecretStr] = None
    ssl_cafile: Optional[Path] = None


class ClickHouseSettings(_MaskedRepr, BaseModel):
    url: str = ""  # filled from var when empty: chdb://<var>/clickhouse
    database: str = "convmon"
    username: Optional[str] = None
    password: Optional[SecretStr] = None
    insert_batch_rows: int = Field(10000, ge=1)


class ScoringSettings(_MaskedRepr, BaseModel):
    models: bool = Field(True, description="run the ONNX model suite (toxicity, sentiment, jailbreak, policies)")
    models_dir: Optional[Path] = Field(None, description="model suite folder (default: the packaged models/)")
    child_process: bool = Field(True, description="run the encoder in a child process of the worker, where it "
                                "never waits for the worker's GIL (see convmon/scoring/encoder_process.py)")


class AlertingSettings(_MaskedRepr, BaseModel):
    rules_file: Optional[Path] = Field(None, description="alert rules TOML (default: infra/alerting/rules.toml)")
    channels: list[dict] = Field(
        default_factory=list,
        description='on-call channels, e.g. {type="slack", name="oncall", url_env="CONVMON_SLACK_WEBHOOK_URL"}',
    )
    secrets_file: Optional[Path] = Field(None, description="KEY=VALUE file with channel secrets (env wins)")
    sweep_interval_s: float = Field(15, gt=0, description="how often quiet incidents are checked for resolution")
    incident_retention_s: float = Field(86400, gt=0, description="a resolved incident is forgotten this long after "
                                        "it resolved (never before its rule's cooldown_s); ClickHouse keeps its alerts")
    max_pending: int = Field(10_000, ge=1, description="notifications per channel a worker holds in memory while "
                             "the channel is down; more wait in the channel's outbox topic (none is dropped)")
    backlog_alert_after_s: float = Field(300, gt=0, description="a channel whose oldest undelivered notification is "
                                         "this old raises a channel_backlog alert through the other channels")


class DynamicsSettings(_MaskedRepr, BaseModel):
    ttl_s: float = Field(6 * 3600, gt=0, description="conversation state expires after this much inactivity")
    expire_check_s: float = Field(300, gt=0, description="how often expired conversations are swept")
    detector: dict = Field(default_factory=dict, description="ShiftConfig overrides (convmon/state/dynamics.py)")


class FeedbackSettings(_MaskedRepr, BaseModel):
    max_note_chars: int = Field(2000, ge=0, description="a feedback note longer than this is dead-lettered")
    min_labels: int = Field(30, ge=1, description="`convmon calibrate` proposes a threshold for a signal only with at "
                            "least this many confirmed / false_alarm / missed labels of it for the app")
    budget_per_1000: float = Field(1.0, ge=0, description="default false alerts per 1,000 turns that `convmon "
                                   "calibrate` aims to stay within (--budget)")
    window_days: float = Field(30, gt=0, description="how far back calibrate and export read labels and turns")


class GrafanaSettings(_MaskedRepr, BaseModel):
    url: str = "http://127.0.0.1:3000"
    token: Optional[SecretStr] = Field(None, description="Grafana service-account token (CONVMON_GRAFANA__TOKEN)")
    clickhouse_host: str = Field("clickhouse", description="ClickHouse host as Grafana reaches it")
    clickhouse_port: int = 8123
    clickhouse_protocol: str = "http"
    clickhouse_database: str = "convmon"
    clickhouse_username: str = Field("grafana", description="Grafana's own read-only ClickHouse user (SELECT on "
                                     "convmon's tables, readonly = 1; see infra/clickhouse/initdb/), never the worker's")
    clickhouse_password: Optional[SecretStr] = None


class PrivacySettings(_MaskedRepr, BaseModel):
    store_raw_text: bool = Field(False, description="opt-in: also store the unredacted text in ClickHouse")
    pseudonym_key: Optional[SecretStr] = Field(None, description="HMAC key for conversation_id/user_ref pseudonyms "
                                               "(CONVMON_PRIVACY__PSEUDONYM_KEY; the same on every worker). Unset: "
                                               "one is generated in <var>/pseudonym.key")
    metadata_raw_keys: list[str] = Field(default_factory=list, description="metadata keys stored as sent; every "
                                         "other metadata value goes through PII redaction")


class Settings(_MaskedRepr, BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONVMON_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    var: Path = Field(Path("var"), description="local state: embedded ClickHouse, Kafka data, logs (CONVMON_VAR)")
    kafka_bootstrap: Optional[str] = Field(None, description="shortcut for kafka.bootstrap")
    clickhouse_url: Optional[str] = Field(None, description="shortcut for clickhouse.url")
    log_level: str = "info"
    kafka: KafkaSettings = KafkaSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    topics: TopicSettings = TopicSettings()
    worker: WorkerSettings = WorkerSettings()
    scoring: ScoringSettings = ScoringSettings()
    alerting: AlertingSettings = AlertingSettings()
    dynamics: DynamicsSettings = DynamicsSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    grafana: GrafanaSettings = GrafanaSettings()
    privacy: PrivacySettings = PrivacySettings()

    def __init__(self, *args, **kwargs) -> None:
        # pydantic's own message quotes the input (`input_value=...`): report fields and reasons only.
        try:
            super().__init__(*args, **kwargs)
        except ValidationError as e:
            raise InvalidSettingsError(e) from None

    @field_validator("var")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().absolute()

    def model_post_init(self, __context) -> None:
        if self.kafka_bootstrap:
            self.kafka.bootstrap = self.kafka_bootstrap
        if self.clickhouse_url:
            self.clickhouse.url = self.clickhouse_url
        if not self.clickhouse.url:
            self.clickhouse.url = f"chdb://{self.var / 'clickhouse'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get("CONVMON_CONFIG", "convmon.toml")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if Path(path).is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        elif "CONVMON_CONFIG" in os.environ:
            raise FileNotFoundError(f"CONVMON_CONFIG names {path!r}, which does not exist")
        return tuple(sources)

    def secrets(self) -> dict[str, str]:
        """Channel secrets by variable name: the secrets file, overridden by the environment."""
        out: dict[str, str] = {}
        if self.alerting.secrets_file:
            for n, line in enumerate(Path(self.alerting.secrets_file).read_text().splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if "=" not in line:
                    raise ValueError(f"{self.alerting.secrets_file}:{n}: expected KEY=VALUE")
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip().strip('"').strip("'")
        out.update({k: v for k, v in os.environ.items() if k.startswith("CONVMON_") or k.endswith("_URL")})
        return out

    def masked(self) -> dict:
        """The settings as JSON-able data with every secret masked (convmon.redact): safe to print or log."""
        return mask_data(self)

    def effective(self) -> dict:
        """`masked()` as the worker uses it: the shortcuts folded into their nested settings and the
        built-in defaults named instead of null (what `convmon config show` prints)."""
        out = self.masked()
        out.pop("kafka_bootstrap", None)
        out.pop("clickhouse_url", None)
        if out["alerting"].get("rules_file") is None:
            out["alerting"]["rules_file"] = "(built in) infra/alerting/rules.toml"
        if out["scoring"].get("models_dir") is None:
            out["scoring"]["models_dir"] = "(built in) the packaged model suite (models/)"
        if out["privacy"].get("pseudonym_key") is None:
            out["privacy"]["pseudonym_key"] = f"(generated) {self.var / 'pseudonym.key'}"
        return out

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse.url.startswith("chdb://")


def load_settings(**overrides) -> Settings:
    return Settings(**overrides)
