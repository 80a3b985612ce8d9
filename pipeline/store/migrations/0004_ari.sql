-- ARI's derived records. One row per intervention and one per agent's status survive
-- merges: the highest version (id of the snapshot that produced it) wins, so every
-- re-delivery, restart or replay of the same derivation collapses into one row.
CREATE TABLE IF NOT EXISTS ari_interventions
(
    tenant          LowCardinality(String),
    agent_id        String,
    intervention_id String,
    protocol        UInt8,
    severity        LowCardinality(String),
    description     String,
    tokens_saved    Int64,
    details         String,
    opened_at       DateTime64(3, 'UTC'),
    closed_at       Nullable(DateTime64(3, 'UTC')),
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, agent_id, intervention_id)
TTL toDateTime(opened_at) + INTERVAL 400 DAY;

CREATE TABLE IF NOT EXISTS ari_status
(
    tenant      LowCardinality(String),
    agent_id    String,
    snapshots   UInt64,
    checkups    String,
    baseline    String,
    updated_at  DateTime64(3, 'UTC'),
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, agent_id);
