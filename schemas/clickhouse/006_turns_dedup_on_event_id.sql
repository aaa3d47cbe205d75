-- convmon migration 006: `turns` is deduplicated on what a retry keeps identical.
-- 001 sorted (and so deduplicated) on (app, model_name, model_version, toStartOfHour(ts), event_id) in
-- monthly partitions of ts: a re-sent turn whose ts differed across an hour (or a month) was stored
-- twice. The key is now the turn's identity only; ReplacingMergeTree collapses rows within a
-- partition, so the table has one partition (no ts-derived partition key) and keeps the newest
-- insert of each event_id. Reads by time within a model version scan that version's turns: the
-- dashboards read window_stats for time series, turns for drill-down.
-- Rebuilt in place: copy, swap (EXCHANGE is atomic), drop the old table.
-- Same columns as `turns` (AS turns copies them, with their defaults and comments); new engine keys.
CREATE TABLE IF NOT EXISTS turns_by_event_id AS turns
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (app, model_name, model_version, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
INSERT INTO turns_by_event_id SELECT * FROM turns;
EXCHANGE TABLES turns AND turns_by_event_id;
DROP TABLE IF EXISTS turns_by_event_id;
