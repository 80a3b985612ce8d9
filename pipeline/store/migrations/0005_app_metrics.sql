-- Application metrics (/v1/applications/{id}/metrics), see docs/metrics.md.
--
-- app_metrics: every accepted point, one row each. The sink turns one Kafka record (a
-- request's batch) into many rows; (batch_id, idx) names a point uniquely, so the
-- ReplacingMergeTree collapses a point delivered twice. kafka_partition/kafka_offset say
-- which record of the app.metrics topic it came from (see app_metrics_landed).
CREATE TABLE IF NOT EXISTS app_metrics
(
    tenant          LowCardinality(String),
    application_id  String,
    metric          LowCardinality(String),
    timestamp       DateTime64(3, 'UTC'),
    value           Float64,
    batch_id        UInt64,
    idx             UInt32,
    kafka_partition UInt32,
    kafka_offset    UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (tenant, application_id, metric, timestamp, batch_id, idx)
TTL toDateTime(timestamp) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- The highest offset of each app.metrics partition whose rows are in app_metrics. Written
-- by the same INSERT as the rows (through the view), so "landed" can't run ahead of or lag
-- behind the rows. A restarted sink skips records at or below it: a batch re-read after a
-- crash between insert and commit is not counted twice by the rollups.
CREATE TABLE IF NOT EXISTS app_metrics_landed
(
    partition UInt32,
    offset    UInt64
)
ENGINE = ReplacingMergeTree(offset)
ORDER BY partition
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS app_metrics_landed_mv TO app_metrics_landed AS
SELECT kafka_partition AS partition, max(kafka_offset) AS offset
FROM app_metrics
GROUP BY kafka_partition;

-- Rollups, one per granularity, each filled from app_metrics by its own view (not chained,
-- so each is deduplicated on its own when an insert is retried). Per bucket: count, sum,
-- min, max as plain columns merged by sum/min/max, and an exact quantile state
-- (quantilesExactInclusive: linear interpolation between the two nearest ranks, as
-- numpy's default percentile). Buckets start at multiples of their length in UTC.
CREATE TABLE IF NOT EXISTS app_metrics_1m
(
    tenant          LowCardinality(String),
    application_id  String,
    metric          LowCardinality(String),
    bucket          DateTime('UTC'),
    count           SimpleAggregateFunction(sum, UInt64),
    sum             SimpleAggregateFunction(sum, Float64),
    min             SimpleAggregateFunction(min, Float64),
    max             SimpleAggregateFunction(max, Float64),
    quantiles       AggregateFunction(quantilesExactInclusive(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, application_id, metric, bucket)
TTL bucket + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS app_metrics_1m_mv TO app_metrics_1m AS
SELECT tenant, application_id, metric, toStartOfMinute(timestamp) AS bucket,
       CAST(count(), 'SimpleAggregateFunction(sum, UInt64)') AS count,
       CAST(sum(value), 'SimpleAggregateFunction(sum, Float64)') AS sum,
       CAST(min(value), 'SimpleAggregateFunction(min, Float64)') AS min,
       CAST(max(value), 'SimpleAggregateFunction(max, Float64)') AS max,
       quantilesExactInclusiveState(0.5, 0.95, 0.99)(value) AS quantiles
FROM app_metrics
GROUP BY tenant, application_id, metric, bucket;

CREATE TABLE IF NOT EXISTS app_metrics_5m
(
    tenant          LowCardinality(String),
    application_id  String,
    metric          LowCardinality(String),
    bucket          DateTime('UTC'),
    count           SimpleAggregateFunction(sum, UInt64),
    sum             SimpleAggregateFunction(sum, Float64),
    min             SimpleAggregateFunction(min, Float64),
    max             SimpleAggregateFunction(max, Float64),
    quantiles       AggregateFunction(quantilesExactInclusive(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, application_id, metric, bucket)
TTL bucket + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS app_metrics_5m_mv TO app_metrics_5m AS
SELECT tenant, application_id, metric, toStartOfFiveMinutes(timestamp) AS bucket,
       CAST(count(), 'SimpleAggregateFunction(sum, UInt64)') AS count,
       CAST(sum(value), 'SimpleAggregateFunction(sum, Float64)') AS sum,
       CAST(min(value), 'SimpleAggregateFunction(min, Float64)') AS min,
       CAST(max(value), 'SimpleAggregateFunction(max, Float64)') AS max,
       quantilesExactInclusiveState(0.5, 0.95, 0.99)(value) AS quantiles
FROM app_metrics
GROUP BY tenant, application_id, metric, bucket;

CREATE TABLE IF NOT EXISTS app_metrics_1h
(
    tenant          LowCardinality(String),
    application_id  String,
    metric          LowCardinality(String),
    bucket          DateTime('UTC'),
    count           SimpleAggregateFunction(sum, UInt64),
    sum             SimpleAggregateFunction(sum, Float64),
    min             SimpleAggregateFunction(min, Float64),
    max             SimpleAggregateFunction(max, Float64),
    quantiles       AggregateFunction(quantilesExactInclusive(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, application_id, metric, bucket)
TTL bucket + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS app_metrics_1h_mv TO app_metrics_1h AS
SELECT tenant, application_id, metric, toStartOfHour(timestamp) AS bucket,
       CAST(count(), 'SimpleAggregateFunction(sum, UInt64)') AS count,
       CAST(sum(value), 'SimpleAggregateFunction(sum, Float64)') AS sum,
       CAST(min(value), 'SimpleAggregateFunction(min, Float64)') AS min,
       CAST(max(value), 'SimpleAggregateFunction(max, Float64)') AS max,
       quantilesExactInclusiveState(0.5, 0.95, 0.99)(value) AS quantiles
FROM app_metrics
GROUP BY tenant, application_id, metric, bucket;

CREATE TABLE IF NOT EXISTS app_metrics_1d
(
    tenant          LowCardinality(String),
    application_id  String,
    metric          LowCardinality(String),
    bucket          DateTime('UTC'),
    count           SimpleAggregateFunction(sum, UInt64),
    sum             SimpleAggregateFunction(sum, Float64),
    min             SimpleAggregateFunction(min, Float64),
    max             SimpleAggregateFunction(max, Float64),
    quantiles       AggregateFunction(quantilesExactInclusive(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(bucket)
ORDER BY (tenant, application_id, metric, bucket)
TTL bucket + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS app_metrics_1d_mv TO app_metrics_1d AS
SELECT tenant, application_id, metric, toStartOfDay(timestamp) AS bucket,
       CAST(count(), 'SimpleAggregateFunction(sum, UInt64)') AS count,
       CAST(sum(value), 'SimpleAggregateFunction(sum, Float64)') AS sum,
       CAST(min(value), 'SimpleAggregateFunction(min, Float64)') AS min,
       CAST(max(value), 'SimpleAggregateFunction(max, Float64)') AS max,
       quantilesExactInclusiveState(0.5, 0.95, 0.99)(value) AS quantiles
FROM app_metrics
GROUP BY tenant, application_id, metric, bucket;
