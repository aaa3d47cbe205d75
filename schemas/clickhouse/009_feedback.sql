-- convmon migration 009: labels from chat.feedback (schemas/feedback.schema.json), and the view that joins
-- each label with what convmon decided at the time.
-- One row per feedback_id: a re-delivered or re-published label replaces itself (ReplacingMergeTree on
-- feedback_id). Read it with FINAL. Ids are pseudonyms and the note is redacted (feedback/contract.py).
CREATE TABLE IF NOT EXISTS feedback
(
    feedback_id      UUID,
    ts               DateTime64(3, 'UTC'),
    event_id         Nullable(UUID),
    alert_id         Nullable(UUID),
    conversation_id  String COMMENT 'pseudonym; empty when the label names none',
    signal           LowCardinality(String) COMMENT 'toxicity | jailbreak | policy:<id> | sentiment_shift | an alert kind',
    verdict          LowCardinality(String) COMMENT 'confirmed | false_alarm | missed',
    source           LowCardinality(String) COMMENT 'oncall | end_user | reviewer',
    reporter         String COMMENT 'pseudonym, like user_ref',
    note             String COMMENT 'PII and secrets redacted',
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    recorded_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY feedback_id;

-- Each label with what convmon decided: the alert it names (kind, delivery, app, model version), and the
-- turn it names, directly or through a single-turn alert's details.event_id (scores, the scorer's hit
-- decision for the label's signal, model version, scorer_version). `flagged`: 1 when convmon raised the
-- alert or its scorer decided a hit for this signal, 0 when it decided no hit, NULL when unknown (a turn
-- not stored, a signal without a per-turn decision). `item`: what one label is about (the alert, else the
-- turn), so that a later label of the same item and signal replaces an earlier one (see precision.py).
CREATE VIEW IF NOT EXISTS feedback_labels AS
SELECT
    fa.feedback_id AS feedback_id, fa.ts AS ts, fa.signal AS signal, fa.verdict AS verdict, fa.source AS source,
    fa.reporter AS reporter, fa.note AS note, fa.alert_id AS alert_id, fa.turn_event_id AS event_id,
    toString(coalesce(fa.alert_id, fa.turn_event_id)) AS item,
    fa.alert_kind AS alert_kind, fa.alert_delivery AS alert_delivery,
    coalesce(t.app, fa.alert_app, '') AS app,
    coalesce(t.model_name, fa.alert_model_name, '') AS model_name,
    coalesce(t.model_version, fa.alert_model_version, '') AS model_version,
    coalesce(t.role, fa.alert_role, '') AS role,
    t.ts AS turn_ts, t.scorer_version AS scorer_version, t.text_redacted AS text_redacted,
    t.toxicity AS toxicity, t.sentiment AS sentiment, t.jailbreak AS jailbreak, t.policy_scores AS policy_scores,
    multiIf(fa.signal = 'toxicity', t.toxicity, fa.signal = 'jailbreak', t.jailbreak,
            startsWith(fa.signal, 'policy:') AND t.event_id IS NOT NULL, t.policy_scores[substring(fa.signal, 8)],
            NULL) AS score,
    multiIf(fa.alert_kind IS NOT NULL, toUInt8(1),
            fa.signal = 'toxicity', toUInt8(t.toxicity_hit), fa.signal = 'jailbreak', toUInt8(t.jailbreak_hit),
            startsWith(fa.signal, 'policy:') AND t.event_id IS NOT NULL, toUInt8(has(t.policy_hits, substring(fa.signal, 8))),
            NULL) AS flagged
FROM
(
    SELECT f.feedback_id AS feedback_id, f.ts AS ts, f.signal AS signal, f.verdict AS verdict, f.source AS source,
           f.reporter AS reporter, f.note AS note, f.alert_id AS alert_id,
           coalesce(f.event_id, toUUIDOrNull(JSONExtractString(a.details, 'event_id'))) AS turn_event_id,
           a.kind AS alert_kind, a.delivery AS alert_delivery, a.app AS alert_app, a.model_name AS alert_model_name,
           a.model_version AS alert_model_version, a.role AS alert_role
    FROM feedback AS f FINAL
    LEFT JOIN (SELECT alert_id, kind, delivery, app, model_name, model_version, role, details FROM alerts FINAL) AS a
        ON f.alert_id = a.alert_id
) AS fa
LEFT JOIN (SELECT event_id, ts, app, model_name, model_version, role, scorer_version, text_redacted, toxicity,
                  sentiment, jailbreak, policy_scores, policy_hits, toxicity_hit, jailbreak_hit FROM turns FINAL) AS t
    ON fa.turn_event_id = t.event_id
SETTINGS join_use_nulls = 1;
