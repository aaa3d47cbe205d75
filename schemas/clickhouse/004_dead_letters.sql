-- convmon migration 004: one row per dead-lettered record (its reason and where it came from, never its
-- content: the bytes themselves stay in the chat.turns.dlq topic). Feeds the DLQ-rate panel.
CREATE TABLE IF NOT EXISTS dead_letters
(
    ts          DateTime64(3, 'UTC'),
    reason      LowCardinality(String),
    source      String COMMENT 'topic/partition@offset',
    size_bytes  UInt32
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (source, reason);
