-- convmon migration 005: model_state_snapshots.state holds versioned JSON (convmon/state/snapshot.py,
-- {"v": 1, ...}) instead of a base64 pickle. Metadata only: the column stays String, no row is
-- rewritten. Rows written by earlier versions (base64 pickle) are never unpickled: a worker skips them
-- (counted in convmon_snapshot_rejected_total{reason="legacy_pickle"}) and the key's next snapshot
-- replaces them (ReplacingMergeTree on the key).
ALTER TABLE model_state_snapshots
    COMMENT COLUMN state 'versioned JSON ("v": 1) of convmon.state.snapshot.dump(): plain data, read as untrusted input, never pickle';
