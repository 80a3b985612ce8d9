-- Deployments: one row per deployment survives merges, its highest revision
-- (0 pending, 1 in_progress, 2 outcome), whatever order the sink landed them in.
CREATE TABLE IF NOT EXISTS app_deployments
(
    tenant            LowCardinality(String),
    id                String,
    application_id    String,
    version           String,
    description       Nullable(String),
    changes           String,
    rollback_on_error Bool,
    health_check_url  Nullable(String),
    health_url        Nullable(String),
    status            LowCardinality(String),
    reason            Nullable(String),
    started_at        DateTime64(3, 'UTC'),
    completed_at      Nullable(DateTime64(3, 'UTC')),
    revision          UInt8
)
ENGINE = ReplacingMergeTree(revision)
ORDER BY (tenant, application_id, id);
