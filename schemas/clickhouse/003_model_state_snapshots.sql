-- convmon migration 003: snapshots of per-model-version state (drift window, ADWIN detectors,
-- open minute windows), so a restarted worker, or the worker that takes over a partition,
-- resumes them. Written every `state.snapshot_every` turns of a key and at shutdown.
CREATE TABLE IF NOT EXISTS model_state_snapshots
(
    app            LowCardinality(String),
    model_name     LowCardinality(String),
    model_version  LowCardinality(String),
    role           LowCardinality(String),
    taken_at       DateTime64(3, 'UTC'),
    turns          UInt64,
    state          String COMMENT 'base64 pickle of convmon.agents.model_state.ModelState.snapshot(key), written and read only by convmon'
)
ENGINE = ReplacingMergeTree(taken_at)
ORDER BY (app, model_name, model_version, role);
