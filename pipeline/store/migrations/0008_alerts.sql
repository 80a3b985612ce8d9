-- Alerts (docs/alerts.md). Transitions and delivery attempts are kept like the other
-- records: one row per id survives merges (a re-derived transition has the same id),
-- reads use FINAL. alert_status keeps each rule's latest evaluation (highest version).
CREATE TABLE IF NOT EXISTS alert_transitions
(
    tenant         LowCardinality(String),
    id             String,
    rule_id        String,
    rule_name      String,
    scope          LowCardinality(String),
    subject_id     String,
    subject_name   Nullable(String),
    state          LowCardinality(String),
    previous_state LowCardinality(String),
    notify         LowCardinality(Nullable(String)),
    metric         String,
    aggregation    LowCardinality(String),
    operator       LowCardinality(String),
    threshold      Float64,
    eval_window    String,
    value          Nullable(Float64),
    started_at     DateTime64(3, 'UTC'),
    at             DateTime64(3, 'UTC'),
    actions        String,
    wall_at        DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (tenant, rule_id, id)
TTL toDateTime(at) + INTERVAL 400 DAY;

CREATE TABLE IF NOT EXISTS alert_status
(
    tenant       LowCardinality(String),
    rule_id      String,
    scope        LowCardinality(String),
    subject_id   String,
    state        LowCardinality(String),
    since        DateTime64(3, 'UTC'),
    value        Nullable(Float64),
    evaluated_at DateTime64(3, 'UTC'),
    version      Int64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, rule_id);

CREATE TABLE IF NOT EXISTS alert_deliveries
(
    tenant          LowCardinality(String),
    id              String,
    delivery_id     String,
    transition_id   String,
    rule_id         Nullable(String),
    scope           LowCardinality(String),
    subject_id      String,
    action_type     LowCardinality(String),
    target          String,
    attempt         UInt32,
    outcome         LowCardinality(String),
    error           Nullable(String),
    latency_ms      Int64,
    at              DateTime64(3, 'UTC'),
    next_attempt_at Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (tenant, transition_id, delivery_id, attempt)
TTL toDateTime(at) + INTERVAL 400 DAY;
