-- convmon migration 006: `turns` is deduplicated on what a retry keeps identical.
-- 001 sorted (and so deduplicated) on (app, model_name, model_version, toStartOfHour(ts), event_id) in
-- monthly partitions of ts: a re-sent turn whose ts differed across an hour (or a month) was stored
-- twice. The key is now the turn's identity only; ReplacingMergeTree collapses rows within a
-- partition, so the table has one partition (no ts-derived partition key) and keeps the newest
-- insert of each event_id. Reads by time within a model version scan that version's turns: the
-- dashboards read window_stats for time series, turns for drill-down.
-- Rebuilt in place: copy, swap (EXCHANGE is atomic), drop the old table.
CREATE TABLE IF NOT EXISTS turns_by_event_id
(
    event_id            UUID,
    conversation_id     String,
    turn_index          UInt32,
    role                LowCardinality(String),
    ts                  DateTime64(3, 'UTC'),
    app                 LowCardinality(String),
    model_provider      LowCardinality(String),
    model_name          LowCardinality(String),
    model_version       LowCardinality(String),
    prompt_template_id  LowCardinality(String) DEFAULT '',
    prompt_version      LowCardinality(String) DEFAULT '',
    user_ref            String DEFAULT '',
    metadata            String DEFAULT '' COMMENT 'JSON',
    text_chars          UInt32,
    text_redacted       String COMMENT 'normalised text with PII/secrets replaced by [TYPE] placeholders',
    text_raw            Nullable(String) COMMENT 'only when privacy.store_raw_text is enabled',
    pii                 Array(LowCardinality(String)),
    pii_count           UInt16,
    toxicity            Nullable(Float32),
    sentiment           Nullable(Float32),
    sentiment_label     LowCardinality(Nullable(String)),
    jailbreak           Nullable(Float32),
    policy_scores       Map(LowCardinality(String), Float32),
    policy_hits         Array(LowCardinality(String)),
    scorer_version      LowCardinality(String),
    scored_at           DateTime64(3, 'UTC'),
    ingested_at         DateTime64(3, 'UTC') DEFAULT now64(3),
    kafka_partition     UInt32,
    kafka_offset        UInt64
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (app, model_name, model_version, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
INSERT INTO turns_by_event_id SELECT * FROM turns;
EXCHANGE TABLES turns AND turns_by_event_id;
DROP TABLE IF EXISTS turns_by_event_id;
