-- convmon migration 001: one row per scored chat turn.
-- Deduplicated on event_id: Kafka delivery is at-least-once, so the same turn can be inserted
-- twice (a restart, a retried batch). ReplacingMergeTree collapses rows with the same sorting
-- key (every key column is derived from the event itself, so a re-delivery has the same key),
-- and identical retried inserts are dropped at once through insert_deduplication_token.
-- Read it deduplicated: SELECT ... FROM turns FINAL, or count(DISTINCT event_id).
-- Cluster variant: see schemas/clickhouse/cluster/README.md (ReplicatedReplacingMergeTree + Distributed).
CREATE TABLE IF NOT EXISTS turns
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
PARTITION BY toYYYYMM(ts)
ORDER BY (app, model_name, model_version, toStartOfHour(ts), event_id)
SETTINGS non_replicated_deduplication_window = 1000;
