-- Insights the worker derives (pipeline/insights.py): one row per insight id survives
-- merges, its highest version; reads use FINAL.
CREATE TABLE IF NOT EXISTS app_insights
(
    tenant         LowCardinality(String),
    id             String,
    application_id String,
    type           LowCardinality(String),
    severity       LowCardinality(String),
    title          String,
    description    String,
    recommendation String,
    timestamp      DateTime64(3, 'UTC'),
    version        Int64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, application_id, id)
TTL toDateTime(timestamp) + INTERVAL 400 DAY;
