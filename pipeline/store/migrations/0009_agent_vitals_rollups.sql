-- Agent vitals rollups (GET /api/agents/{id}/metrics, docs/metrics.md), built like the
-- application metrics' (migration 0005): one AggregatingMergeTree per granularity, each
-- filled from agent_vitals by its own view. A vitals row becomes one point per metric,
-- named as alert rules name them (pipeline/alerts/evaluate.vital_points): the five
-- reference metrics, tokenUsagePercent = 100 * consumption / limit, and every numeric
-- top-level value of the metadata (custom metrics), except a key named like a built-in.
--
-- A rollup can't take a point back out of a sum, so a vitals record re-read after a
-- crash must not be inserted twice: agent_vitals now records which Kafka record each
-- row came from and agent_vitals_landed the highest landed offset per partition, which
-- the sink skips up to (as for app.metrics). Rows from before this migration get the
-- partition 4294967295 (no real partition); they are rolled up once, below.
ALTER TABLE agent_vitals ADD COLUMN IF NOT EXISTS kafka_partition UInt32 DEFAULT 4294967295;
ALTER TABLE agent_vitals ADD COLUMN IF NOT EXISTS kafka_offset UInt64 DEFAULT 0;

CREATE TABLE IF NOT EXISTS agent_vitals_landed
(
    partition UInt32,
    offset    UInt64
)
ENGINE = ReplacingMergeTree(offset)
ORDER BY partition
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS agent_vitals_landed_mv TO agent_vitals_landed AS
SELECT kafka_partition AS partition, max(kafka_offset) AS offset
FROM agent_vitals
WHERE kafka_partition != 4294967295
GROUP BY kafka_partition;

CREATE TABLE IF NOT EXISTS agent_vitals_1m
(
    tenant     LowCardinality(String),
    agent_id   String,
    metric     LowCardinality(String),
    bucket     DateTime('UTC'),
    count      SimpleAggregateFunction(sum, UInt64),
    sum        SimpleAggregateFunction(sum, Float64),
    min        SimpleAggregateFunction(min, Float64),
    max        SimpleAggregateFunction(max, Float64),
    quantiles  AggregateFunction(quantilesExactInclusive(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, agent_id, metric, bucket)
TTL bucket + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS agent_vitals_1m_mv TO agent_vitals_1m AS
SELECT tenant, agent_id, toLowCardinality(point.1) AS metric, toStartOfMinute(recorded_at) AS bucket,
       CAST(count(), 'SimpleAggregateFunction(sum, UInt64)') AS count,
       CAST(sum(point.2), 'SimpleAggregateFunction(sum, Float64)') AS sum,
       CAST(min(point.2), 'SimpleAggregateFunction(min, Float64)') AS min,
       CAST(max(point.2), 'SimpleAggregateFunction(max, Float64)') AS max,
       quantilesExactInclusiveState(0.5, 0.95, 0.99)(point.2) AS quantiles
FROM agent_vitals 
ARRAY JOIN arrayConcat(
    [('tokenConsumption', toFloat64(token_consumption)), ('hallucinationRate', hallucination_rate),
     ('loopCount', toFloat64(loop_frequency)), ('conflictCount', toFloat64(directive_conflicts)),
     ('tokenUsagePercent', 100 * token_consumption / token_limit)],
    arrayMap(kv -> (kv.1, toFloat64(kv.2)), arrayFilter(
        kv -> JSONType(kv.2) IN ('Int64', 'UInt64', 'Double')
              AND kv.1 NOT IN ('tokenConsumption', 'hallucinationRate', 'loopCount', 'conflictCount', 'tokenUsagePercent'),
        JSONExtractKeysAndValuesRaw(metadata)))) AS point
GROUP BY tenant, agent_id, metric, bucket;

CREATE TABLE IF NOT EXISTS agent_vitals_5m
(
    tenant     LowCardinality(String),
    agent_id   String,
    metric     LowCardinality(String),
    bucket     DateTime('UTC'),
    count      SimpleAggregateFunction(sum, UInt64),
    sum        SimpleAggregateFunction(sum, Float64),
    min        SimpleAggregateFunction(min, Float64),
    max        SimpleAggregateFunction(max, Float64),
    quantiles  AggregateFunction(quantilesExactInclusive(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, agent_id, metric, bucket)
TTL bucket + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS agent_vitals_5m_mv TO agent_vitals_5m AS
SELECT tenant, agent_id, toLowCardinality(point.1) AS metric, toStartOfFiveMinutes(recorded_at) AS bucket,
       CAST(count(), 'SimpleAggregateFunction(sum, UInt64)') AS count,
       CAST(sum(point.2), 'SimpleAggregateFunction(sum, Float64)') AS sum,
       CAST(min(point.2), 'SimpleAggregateFunction(min, Float64)') AS min,
       CAST(max(point.2), 'SimpleAggregateFunction(max, Float64)') AS max,
       quantilesExactInclusiveState(0.5, 0.95, 0.99)(point.2) AS quantiles
FROM agent_vitals 
ARRAY JOIN arrayConcat(
    [('tokenConsumption', toFloat64(token_consumption)), ('hallucinationRate', hallucination_rate),
     ('loopCount', toFloat64(loop_frequency)), ('conflictCount', toFloat64(directive_conflicts)),
     ('tokenUsagePercent', 100 * token_consumption / token_limit)],
    arrayMap(kv -> (kv.1, toFloat64(kv.2)), arrayFilter(
        kv -> JSONType(kv.2) IN ('Int64', 'UInt64', 'Double')
              AND kv.1 NOT IN ('tokenConsumption', 'hallucinationRate', 'loopCount', 'conflictCount', 'tokenUsagePercent'),
        JSONExtractKeysAndValuesRaw(metadata)))) AS point
GROUP BY tenant, agent_id, metric, bucket;

CREATE TABLE IF NOT EXISTS agent_vitals_1h
(
    tenant     LowCardinality(String),
    agent_id   String,
    metric     LowCardinality(String),
    bucket     DateTime('UTC'),
    count      SimpleAggregateFunction(sum, UInt64),
    sum        SimpleAggregateFunction(sum, Float64),
    min        SimpleAggregateFunction(min, Float64),
    max        SimpleAggregateFunction(max, Float64),
    quantiles  AggregateFunction(quantilesExactInclusive(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, agent_id, metric, bucket)
TTL bucket + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS agent_vitals_1h_mv TO agent_vitals_1h AS
SELECT tenant, agent_id, toLowCardinality(point.1) AS metric, toStartOfHour(recorded_at) AS bucket,
       CAST(count(), 'SimpleAggregateFunction(sum, UInt64)') AS count,
       CAST(sum(point.2), 'SimpleAggregateFunction(sum, Float64)') AS sum,
       CAST(min(point.2), 'SimpleAggregateFunction(min, Float64)') AS min,
       CAST(max(point.2), 'SimpleAggregateFunction(max, Float64)') AS max,
       quantilesExactInclusiveState(0.5, 0.95, 0.99)(point.2) AS quantiles
FROM agent_vitals 
ARRAY JOIN arrayConcat(
    [('tokenConsumption', toFloat64(token_consumption)), ('hallucinationRate', hallucination_rate),
     ('loopCount', toFloat64(loop_frequency)), ('conflictCount', toFloat64(directive_conflicts)),
     ('tokenUsagePercent', 100 * token_consumption / token_limit)],
    arrayMap(kv -> (kv.1, toFloat64(kv.2)), arrayFilter(
        kv -> JSONType(kv.2) IN ('Int64', 'UInt64', 'Double')
              AND kv.1 NOT IN ('tokenConsumption', 'hallucinationRate', 'loopCount', 'conflictCount', 'tokenUsagePercent'),
        JSONExtractKeysAndValuesRaw(metadata)))) AS point
GROUP BY tenant, agent_id, metric, bucket;

CREATE TABLE IF NOT EXISTS agent_vitals_1d
(
    tenant     LowCardinality(String),
    agent_id   String,
    metric     LowCardinality(String),
    bucket     DateTime('UTC'),
    count      SimpleAggregateFunction(sum, UInt64),
    sum        SimpleAggregateFunction(sum, Float64),
    min        SimpleAggregateFunction(min, Float64),
    max        SimpleAggregateFunction(max, Float64),
    quantiles  AggregateFunction(quantilesExactInclusive(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(bucket)
ORDER BY (tenant, agent_id, metric, bucket)
TTL bucket + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS agent_vitals_1d_mv TO agent_vitals_1d AS
SELECT tenant, agent_id, toLowCardinality(point.1) AS metric, toStartOfDay(recorded_at) AS bucket,
       CAST(count(), 'SimpleAggregateFunction(sum, UInt64)') AS count,
       CAST(sum(point.2), 'SimpleAggregateFunction(sum, Float64)') AS sum,
       CAST(min(point.2), 'SimpleAggregateFunction(min, Float64)') AS min,
       CAST(max(point.2), 'SimpleAggregateFunction(max, Float64)') AS max,
       quantilesExactInclusiveState(0.5, 0.95, 0.99)(point.2) AS quantiles
FROM agent_vitals 
ARRAY JOIN arrayConcat(
    [('tokenConsumption', toFloat64(token_consumption)), ('hallucinationRate', hallucination_rate),
     ('loopCount', toFloat64(loop_frequency)), ('conflictCount', toFloat64(directive_conflicts)),
     ('tokenUsagePercent', 100 * token_consumption / token_limit)],
    arrayMap(kv -> (kv.1, toFloat64(kv.2)), arrayFilter(
        kv -> JSONType(kv.2) IN ('Int64', 'UInt64', 'Double')
              AND kv.1 NOT IN ('tokenConsumption', 'hallucinationRate', 'loopCount', 'conflictCount', 'tokenUsagePercent'),
        JSONExtractKeysAndValuesRaw(metadata)))) AS point
GROUP BY tenant, agent_id, metric, bucket;

-- Roll up the rows from before this migration, once: the token makes a repeat of this
-- statement (a crash before the migration was recorded) a no-op instead of a double.

INSERT INTO agent_vitals_1m SETTINGS insert_deduplication_token = '0009_agent_vitals_1m'
SELECT tenant, agent_id, toLowCardinality(point.1) AS metric, toStartOfMinute(recorded_at) AS bucket,
       CAST(count(), 'SimpleAggregateFunction(sum, UInt64)') AS count,
       CAST(sum(point.2), 'SimpleAggregateFunction(sum, Float64)') AS sum,
       CAST(min(point.2), 'SimpleAggregateFunction(min, Float64)') AS min,
       CAST(max(point.2), 'SimpleAggregateFunction(max, Float64)') AS max,
       quantilesExactInclusiveState(0.5, 0.95, 0.99)(point.2) AS quantiles
FROM agent_vitals FINAL
ARRAY JOIN arrayConcat(
    [('tokenConsumption', toFloat64(token_consumption)), ('hallucinationRate', hallucination_rate),
     ('loopCount', toFloat64(loop_frequency)), ('conflictCount', toFloat64(directive_conflicts)),
     ('tokenUsagePercent', 100 * token_consumption / token_limit)],
    arrayMap(kv -> (kv.1, toFloat64(kv.2)), arrayFilter(
        kv -> JSONType(kv.2) IN ('Int64', 'UInt64', 'Double')
              AND kv.1 NOT IN ('tokenConsumption', 'hallucinationRate', 'loopCount', 'conflictCount', 'tokenUsagePercent'),
        JSONExtractKeysAndValuesRaw(metadata)))) AS point
WHERE kafka_partition = 4294967295
GROUP BY tenant, agent_id, metric, bucket;

INSERT INTO agent_vitals_5m SETTINGS insert_deduplication_token = '0009_agent_vitals_5m'
SELECT tenant, agent_id, toLowCardinality(point.1) AS metric, toStartOfFiveMinutes(recorded_at) AS bucket,
       CAST(count(), 'SimpleAggregateFunction(sum, UInt64)') AS count,
       CAST(sum(point.2), 'SimpleAggregateFunction(sum, Float64)') AS sum,
       CAST(min(point.2), 'SimpleAggregateFunction(min, Float64)') AS min,
       CAST(max(point.2), 'SimpleAggregateFunction(max, Float64)') AS max,
       quantilesExactInclusiveState(0.5, 0.95, 0.99)(point.2) AS quantiles
FROM agent_vitals FINAL
ARRAY JOIN arrayConcat(
    [('tokenConsumption', toFloat64(token_consumption)), ('hallucinationRate', hallucination_rate),
     ('loopCount', toFloat64(loop_frequency)), ('conflictCount', toFloat64(directive_conflicts)),
     ('tokenUsagePercent', 100 * token_consumption / token_limit)],
    arrayMap(kv -> (kv.1, toFloat64(kv.2)), arrayFilter(
        kv -> JSONType(kv.2) IN ('Int64', 'UInt64', 'Double')
              AND kv.1 NOT IN ('tokenConsumption', 'hallucinationRate', 'loopCount', 'conflictCount', 'tokenUsagePercent'),
        JSONExtractKeysAndValuesRaw(metadata)))) AS point
WHERE kafka_partition = 4294967295
GROUP BY tenant, agent_id, metric, bucket;

INSERT INTO agent_vitals_1h SETTINGS insert_deduplication_token = '0009_agent_vitals_1h'
SELECT tenant, agent_id, toLowCardinality(point.1) AS metric, toStartOfHour(recorded_at) AS bucket,
       CAST(count(), 'SimpleAggregateFunction(sum, UInt64)') AS count,
       CAST(sum(point.2), 'SimpleAggregateFunction(sum, Float64)') AS sum,
       CAST(min(point.2), 'SimpleAggregateFunction(min, Float64)') AS min,
       CAST(max(point.2), 'SimpleAggregateFunction(max, Float64)') AS max,
       quantilesExactInclusiveState(0.5, 0.95, 0.99)(point.2) AS quantiles
FROM agent_vitals FINAL
ARRAY JOIN arrayConcat(
    [('tokenConsumption', toFloat64(token_consumption)), ('hallucinationRate', hallucination_rate),
     ('loopCount', toFloat64(loop_frequency)), ('conflictCount', toFloat64(directive_conflicts)),
     ('tokenUsagePercent', 100 * token_consumption / token_limit)],
    arrayMap(kv -> (kv.1, toFloat64(kv.2)), arrayFilter(
        kv -> JSONType(kv.2) IN ('Int64', 'UInt64', 'Double')
              AND kv.1 NOT IN ('tokenConsumption', 'hallucinationRate', 'loopCount', 'conflictCount', 'tokenUsagePercent'),
        JSONExtractKeysAndValuesRaw(metadata)))) AS point
WHERE kafka_partition = 4294967295
GROUP BY tenant, agent_id, metric, bucket;

INSERT INTO agent_vitals_1d SETTINGS insert_deduplication_token = '0009_agent_vitals_1d'
SELECT tenant, agent_id, toLowCardinality(point.1) AS metric, toStartOfDay(recorded_at) AS bucket,
       CAST(count(), 'SimpleAggregateFunction(sum, UInt64)') AS count,
       CAST(sum(point.2), 'SimpleAggregateFunction(sum, Float64)') AS sum,
       CAST(min(point.2), 'SimpleAggregateFunction(min, Float64)') AS min,
       CAST(max(point.2), 'SimpleAggregateFunction(max, Float64)') AS max,
       quantilesExactInclusiveState(0.5, 0.95, 0.99)(point.2) AS quantiles
FROM agent_vitals FINAL
ARRAY JOIN arrayConcat(
    [('tokenConsumption', toFloat64(token_consumption)), ('hallucinationRate', hallucination_rate),
     ('loopCount', toFloat64(loop_frequency)), ('conflictCount', toFloat64(directive_conflicts)),
     ('tokenUsagePercent', 100 * token_consumption / token_limit)],
    arrayMap(kv -> (kv.1, toFloat64(kv.2)), arrayFilter(
        kv -> JSONType(kv.2) IN ('Int64', 'UInt64', 'Double')
              AND kv.1 NOT IN ('tokenConsumption', 'hallucinationRate', 'loopCount', 'conflictCount', 'tokenUsagePercent'),
        JSONExtractKeysAndValuesRaw(metadata)))) AS point
WHERE kafka_partition = 4294967295
GROUP BY tenant, agent_id, metric, bucket;

-- The agents overview shows token usage against the limit: agent_latest keeps the limit
-- too. Its view is re-created to carry the column, and every agent's newest row written
-- again with it (same id: it replaces the old row, so running this twice changes nothing).
ALTER TABLE agent_latest ADD COLUMN IF NOT EXISTS token_limit UInt64 DEFAULT 0;

DROP VIEW IF EXISTS agent_latest_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS agent_latest_mv TO agent_latest AS
SELECT tenant, agent_id, id, token_consumption, hallucination_rate, loop_frequency,
       directive_conflicts, overall_health, recorded_at, token_limit
FROM agent_vitals;

INSERT INTO agent_latest
SELECT tenant, agent_id, max(id), argMax(token_consumption, id), argMax(hallucination_rate, id),
       argMax(loop_frequency, id), argMax(directive_conflicts, id), argMax(overall_health, id),
       argMax(recorded_at, id), argMax(token_limit, id)
FROM agent_vitals FINAL
GROUP BY tenant, agent_id;
