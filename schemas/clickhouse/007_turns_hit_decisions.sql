-- convmon migration 007: the model suite's hit decisions, stored as the scorer made them (scoring/suite.py
-- FIELDS, ScoreField.hit): toxicity and jailbreak at or above the suite's calibrated thresholds. The
-- dashboards and ad-hoc queries count hits with the same decision as alerts, rates and windows.
-- Rows written before this migration read NULL (not scored with a decision).
ALTER TABLE turns ADD COLUMN IF NOT EXISTS toxicity_hit Nullable(Bool) AFTER policy_hits;
ALTER TABLE turns ADD COLUMN IF NOT EXISTS jailbreak_hit Nullable(Bool) AFTER toxicity_hit;
