-- Every vitals snapshot, as the api accepted it. ReplacingMergeTree keyed by the record
-- id makes a re-delivered record (sink retry after a crash) collapse into one row;
-- readers use FINAL. recorded_at is epoch milliseconds in UTC.
CREATE TABLE IF NOT EXISTS agent_vitals
(
    tenant              LowCardinality(String),
    id                  UInt64,
    agent_id            String,
    agent_name          Nullable(String),
    token_consumption   UInt64,
    token_limit         UInt64,
    hallucination_rate  Float64,
    loop_frequency      UInt64,
    directive_conflicts UInt64,
    overall_health      LowCardinality(String),
    metadata            String,
    recorded_at         DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(recorded_at)
ORDER BY (tenant, agent_id, recorded_at, id)
TTL toDateTime(recorded_at) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;
