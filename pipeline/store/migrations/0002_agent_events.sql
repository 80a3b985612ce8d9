-- Discrete agent events (errors, conflicts, task completions).
CREATE TABLE IF NOT EXISTS agent_events
(
    tenant       LowCardinality(String),
    id           UInt64,
    agent_id     String,
    event_type   LowCardinality(String),
    details      Nullable(String),
    metadata     String,
    recorded_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(recorded_at)
ORDER BY (tenant, agent_id, recorded_at, id)
TTL toDateTime(recorded_at) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;
