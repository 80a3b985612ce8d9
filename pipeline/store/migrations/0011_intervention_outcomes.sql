-- Intervention outcomes (docs/ari.md, Outcomes): once a closed episode's after window is
-- measured, its last version says whether the intervention worked, with the figures, and
-- the tokens it measurably saved beside the estimate. Earlier versions and rows leave them NULL.
ALTER TABLE ari_interventions ADD COLUMN IF NOT EXISTS outcome LowCardinality(Nullable(String));
ALTER TABLE ari_interventions ADD COLUMN IF NOT EXISTS outcome_details Nullable(String);
ALTER TABLE ari_interventions ADD COLUMN IF NOT EXISTS tokens_saved_measured Nullable(Int64);
