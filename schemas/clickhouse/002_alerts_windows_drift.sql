-- convmon migration 002: alerts, per-minute aggregates, drift reports and pinned drift baselines.

-- Every alert candidate, with what happened to it. One incident = one dedup_key; `delivery`
-- says whether this alert paged (notified), was folded into an open incident (suppressed), or
-- resolved it. alert_id is derived from the source event, so a re-delivered turn does not add a row.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id         UUID,
    ts               DateTime64(3, 'UTC'),
    kind             LowCardinality(String),
    severity         LowCardinality(String),
    status           LowCardinality(String),
    app              LowCardinality(String),
    model_name       LowCardinality(String),
    model_version    LowCardinality(String),
    role             LowCardinality(String),
    conversation_id  Nullable(String),
    turn_index       Nullable(UInt32),
    summary          String,
    details          String COMMENT 'JSON',
    labels           Map(LowCardinality(String), String),
    dedup_key        String,
    delivery         LowCardinality(String) COMMENT 'notified | suppressed | resolved',
    channels         Array(LowCardinality(String)),
    recorded_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(recorded_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (kind, toStartOfHour(ts), alert_id);

-- 1-minute tumbling windows per (app, model, version, role). Written once per closed window;
-- a restart that re-emits a window replaces the row with identical values.
CREATE TABLE IF NOT EXISTS window_stats
(
    window_start       DateTime('UTC'),
    app                LowCardinality(String),
    model_name         LowCardinality(String),
    model_version      LowCardinality(String),
    role               LowCardinality(String),
    turns              UInt32,
    toxicity_mean      Float32,
    toxicity_p95       Float32,
    sentiment_mean     Float32,
    jailbreak_hits     UInt32,
    policy_hits        UInt32,
    pii_turns          UInt32,
    drift_score        Nullable(Float32),
    written_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(written_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (app, model_name, model_version, role, window_start);

-- Embedding-drift statistics per evaluated window, and version-change reports.
CREATE TABLE IF NOT EXISTS drift_reports
(
    report_id          UUID,
    ts                 DateTime64(3, 'UTC'),
    kind               LowCardinality(String) COMMENT 'window | version_change',
    app                LowCardinality(String),
    model_name         LowCardinality(String),
    model_version      LowCardinality(String),
    role               LowCardinality(String),
    reference_version  LowCardinality(String),
    n_live             UInt32,
    n_reference        UInt32,
    centroid_distance  Float32,
    centroid_threshold Float32,
    mmd                Float32,
    mmd_threshold      Float32,
    drifted            UInt8,
    details            String COMMENT 'JSON',
    recorded_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(recorded_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (app, model_name, model_version, role, ts, report_id);

-- Pinned references (baselines) for embedding drift, one current row per key.
CREATE TABLE IF NOT EXISTS drift_baselines
(
    app            LowCardinality(String),
    model_name     LowCardinality(String),
    model_version  LowCardinality(String),
    role           LowCardinality(String),
    pinned_at      DateTime64(3, 'UTC'),
    n              UInt32,
    reference      String COMMENT 'JSON from convmon.state.drift.Reference.to_dict()',
    source         LowCardinality(String) COMMENT 'first_n | pinned | previous_version'
)
ENGINE = ReplacingMergeTree(pinned_at)
ORDER BY (app, model_name, model_version, role);
