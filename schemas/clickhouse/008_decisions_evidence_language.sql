-- convmon migration 008: what each decision rests on (scoring/decisions.py, scoring/language.py).
-- turns: the detected language and whether the suite judges it (a language it was not trained on keeps
-- its scores but gets no hit), and per hit the redacted piece of text that decided it (offsets into
-- text_redacted). window_stats: how many turns of each minute the suite did not judge.
-- Rows written before this migration read '' / NULL / [] / 0.
ALTER TABLE turns ADD COLUMN IF NOT EXISTS language LowCardinality(String) AFTER jailbreak_hit;
ALTER TABLE turns ADD COLUMN IF NOT EXISTS language_supported Nullable(Bool) AFTER language;
ALTER TABLE turns ADD COLUMN IF NOT EXISTS evidence Array(Tuple(signal LowCardinality(String), score Float32, start UInt32, end UInt32, excerpt String)) AFTER language_supported;
ALTER TABLE window_stats ADD COLUMN IF NOT EXISTS unsupported_language_turns UInt32 AFTER drift_score;
