-- Anomaly insights (pipeline/insights.py, docs/insights.md): an insight is now one episode
-- of one series, of an application or of an agent (agent_id set, application_id empty),
-- with what was seen, the expected band, the score, since when, until when and a likely
-- cause. Deployment insights and rows from before leave these NULL.
ALTER TABLE app_insights ADD COLUMN IF NOT EXISTS agent_id Nullable(String);
ALTER TABLE app_insights ADD COLUMN IF NOT EXISTS metric Nullable(String);
ALTER TABLE app_insights ADD COLUMN IF NOT EXISTS status LowCardinality(Nullable(String));
ALTER TABLE app_insights ADD COLUMN IF NOT EXISTS started_at Nullable(DateTime64(3, 'UTC'));
ALTER TABLE app_insights ADD COLUMN IF NOT EXISTS ended_at Nullable(DateTime64(3, 'UTC'));
ALTER TABLE app_insights ADD COLUMN IF NOT EXISTS observed Nullable(Float64);
ALTER TABLE app_insights ADD COLUMN IF NOT EXISTS expected Nullable(Float64);
ALTER TABLE app_insights ADD COLUMN IF NOT EXISTS expected_low Nullable(Float64);
ALTER TABLE app_insights ADD COLUMN IF NOT EXISTS expected_high Nullable(Float64);
ALTER TABLE app_insights ADD COLUMN IF NOT EXISTS score Nullable(Float64);
ALTER TABLE app_insights ADD COLUMN IF NOT EXISTS cause Nullable(String);
