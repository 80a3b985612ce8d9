"""The ClickHouse schema the code expects, table by table.

The sink writes these columns in this order and the api reads them; a test migrates a
fresh database and checks that what ClickHouse reports matches this declaration
exactly, so a migration and the code can't drift apart.
"""
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, ClickHouse type) in table order
    engine: str
    sorting_key: str
    partition_key: str
    record_kind: str | None = None  # Avro kind the sink lands here

    @cached_property  # the sink reads it for every record
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]


AGENT_VITALS = Table(
    name="agent_vitals",
    columns=(
        ("tenant", "LowCardinality(String)"),
        ("id", "UInt64"),
        ("agent_id", "String"),
        ("agent_name", "Nullable(String)"),
        ("token_consumption", "UInt64"),
        ("token_limit", "UInt64"),
        ("hallucination_rate", "Float64"),
        ("loop_frequency", "UInt64"),
        ("directive_conflicts", "UInt64"),
        ("overall_health", "LowCardinality(String)"),
        ("metadata", "String"),
        ("recorded_at", "DateTime64(3, 'UTC')"),
        ("kafka_partition", "UInt32"),  # the agent.vitals record the row came from (migration 0009)
        ("kafka_offset", "UInt64"),
    ),
    engine="ReplacingMergeTree",
    sorting_key="tenant, agent_id, recorded_at, id",
    partition_key="toYYYYMM(recorded_at)",
    record_kind="agent_vital",
)

# Highest agent.vitals offset landed per partition, written with the rows by a view.
AGENT_VITALS_LANDED = Table(
    name="agent_vitals_landed",
    columns=(("partition", "UInt32"), ("offset", "UInt64")),
    engine="ReplacingMergeTree",
    sorting_key="partition",
    partition_key="",
)

AGENT_EVENTS = Table(
    name="agent_events",
    columns=(
        ("tenant", "LowCardinality(String)"),
        ("id", "UInt64"),
        ("agent_id", "String"),
        ("event_type", "LowCardinality(String)"),
        ("details", "Nullable(String)"),
        ("metadata", "String"),
        ("recorded_at", "DateTime64(3, 'UTC')"),
    ),
    engine="ReplacingMergeTree",
    sorting_key="tenant, agent_id, recorded_at, id",
    partition_key="toYYYYMM(recorded_at)",
    record_kind="agent_event",
)

AGENT_LATEST = Table(
    name="agent_latest",
    columns=(
        ("tenant", "LowCardinality(String)"),
        ("agent_id", "String"),
        ("id", "UInt64"),
        ("token_consumption", "UInt64"),
        ("hallucination_rate", "Float64"),
        ("loop_frequency", "UInt64"),
        ("directive_conflicts", "UInt64"),
        ("overall_health", "LowCardinality(String)"),
        ("recorded_at", "DateTime64(3, 'UTC')"),
        ("token_limit", "UInt64"),  # added by migration 0009
    ),
    engine="ReplacingMergeTree",
    sorting_key="tenant, agent_id",
    partition_key="",
)

AGENT_NAMES = Table(
    name="agent_names",
    columns=(("tenant", "LowCardinality(String)"), ("agent_id", "String"), ("id", "UInt64"), ("name", "String")),
    engine="ReplacingMergeTree",
    sorting_key="tenant, agent_id",
    partition_key="",
)


ARI_INTERVENTIONS = Table(
    name="ari_interventions",
    columns=(
        ("tenant", "LowCardinality(String)"),
        ("agent_id", "String"),
        ("intervention_id", "String"),
        ("protocol", "UInt8"),
        ("severity", "LowCardinality(String)"),
        ("description", "String"),
        ("tokens_saved", "Int64"),
        ("details", "String"),
        ("opened_at", "DateTime64(3, 'UTC')"),
        ("closed_at", "Nullable(DateTime64(3, 'UTC'))"),
        ("version", "UInt64"),
        ("outcome", "LowCardinality(Nullable(String))"),
        ("outcome_details", "Nullable(String)"),
        ("tokens_saved_measured", "Nullable(Int64)"),
    ),
    engine="ReplacingMergeTree",
    sorting_key="tenant, agent_id, intervention_id",
    partition_key="",
    record_kind="ari_intervention",
)

ARI_STATUS = Table(
    name="ari_status",
    columns=(
        ("tenant", "LowCardinality(String)"),
        ("agent_id", "String"),
        ("snapshots", "UInt64"),
        ("checkups", "String"),
        ("baseline", "String"),
        ("updated_at", "DateTime64(3, 'UTC')"),
        ("version", "UInt64"),
    ),
    engine="ReplacingMergeTree",
    sorting_key="tenant, agent_id",
    partition_key="",
    record_kind="ari_status",
)

APP_DEPLOYMENTS = Table(
    name="app_deployments",
    columns=(
        ("tenant", "LowCardinality(String)"),
        ("id", "String"),
        ("application_id", "String"),
        ("version", "String"),
        ("description", "Nullable(String)"),
        ("changes", "String"),
        ("rollback_on_error", "Bool"),
        ("health_check_url", "Nullable(String)"),
        ("health_url", "Nullable(String)"),
        ("status", "LowCardinality(String)"),
        ("reason", "Nullable(String)"),
        ("started_at", "DateTime64(3, 'UTC')"),
        ("completed_at", "Nullable(DateTime64(3, 'UTC'))"),
        ("revision", "UInt8"),
    ),
    engine="ReplacingMergeTree",
    sorting_key="tenant, application_id, id",
    partition_key="",
    record_kind="app_deployment",
)

APP_INSIGHTS = Table(
    name="app_insights",
    columns=(
        ("tenant", "LowCardinality(String)"),
        ("id", "String"),
        ("application_id", "String"),
        ("type", "LowCardinality(String)"),
        ("severity", "LowCardinality(String)"),
        ("title", "String"),
        ("description", "String"),
        ("recommendation", "String"),
        ("timestamp", "DateTime64(3, 'UTC')"),
        ("version", "Int64"),
        # an anomaly episode's figures (migration 0010); NULL for deployment insights
        ("agent_id", "Nullable(String)"),
        ("metric", "Nullable(String)"),
        ("status", "LowCardinality(Nullable(String))"),
        ("started_at", "Nullable(DateTime64(3, 'UTC'))"),
        ("ended_at", "Nullable(DateTime64(3, 'UTC'))"),
        ("observed", "Nullable(Float64)"),
        ("expected", "Nullable(Float64)"),
        ("expected_low", "Nullable(Float64)"),
        ("expected_high", "Nullable(Float64)"),
        ("score", "Nullable(Float64)"),
        ("cause", "Nullable(String)"),
    ),
    engine="ReplacingMergeTree",
    sorting_key="tenant, application_id, id",
    partition_key="",
    record_kind="app_insight",
)


# Alerts (docs/alerts.md): the worker's transitions and latest evaluations, the notifier's attempts.
ALERT_TRANSITIONS = Table(
    name="alert_transitions",
    columns=(
        ("tenant", "LowCardinality(String)"),
        ("id", "String"),
        ("rule_id", "String"),
        ("rule_name", "String"),
        ("scope", "LowCardinality(String)"),
        ("subject_id", "String"),
        ("subject_name", "Nullable(String)"),
        ("state", "LowCardinality(String)"),
        ("previous_state", "LowCardinality(String)"),
        ("notify", "LowCardinality(Nullable(String))"),
        ("metric", "String"),
        ("aggregation", "LowCardinality(String)"),
        ("operator", "LowCardinality(String)"),
        ("threshold", "Float64"),
        ("eval_window", "String"),
        ("value", "Nullable(Float64)"),
        ("started_at", "DateTime64(3, 'UTC')"),
        ("at", "DateTime64(3, 'UTC')"),
        ("actions", "String"),
        ("wall_at", "DateTime64(3, 'UTC')"),
    ),
    engine="ReplacingMergeTree",
    sorting_key="tenant, rule_id, id",
    partition_key="toYYYYMM(at)",
    record_kind="alert_transition",
)

ALERT_STATUS = Table(
    name="alert_status",
    columns=(
        ("tenant", "LowCardinality(String)"),
        ("rule_id", "String"),
        ("scope", "LowCardinality(String)"),
        ("subject_id", "String"),
        ("state", "LowCardinality(String)"),
        ("since", "DateTime64(3, 'UTC')"),
        ("value", "Nullable(Float64)"),
        ("evaluated_at", "DateTime64(3, 'UTC')"),
        ("version", "Int64"),
    ),
    engine="ReplacingMergeTree",
    sorting_key="tenant, rule_id",
    partition_key="",
    record_kind="alert_status",
)

ALERT_DELIVERIES = Table(
    name="alert_deliveries",
    columns=(
        ("tenant", "LowCardinality(String)"),
        ("id", "String"),
        ("delivery_id", "String"),
        ("transition_id", "String"),
        ("rule_id", "Nullable(String)"),
        ("scope", "LowCardinality(String)"),
        ("subject_id", "String"),
        ("action_type", "LowCardinality(String)"),
        ("target", "String"),
        ("attempt", "UInt32"),
        ("outcome", "LowCardinality(String)"),
        ("error", "Nullable(String)"),
        ("latency_ms", "Int64"),
        ("at", "DateTime64(3, 'UTC')"),
        ("next_attempt_at", "Nullable(DateTime64(3, 'UTC'))"),
    ),
    engine="ReplacingMergeTree",
    sorting_key="tenant, transition_id, delivery_id, attempt",
    partition_key="toYYYYMM(at)",
    record_kind="alert_delivery",
)


# Application metrics (/v1, docs/metrics.md): one row per point; the sink explodes each
# app_metric_batch record into its points (pipeline/sink/steps.py).
APP_METRICS = Table(
    name="app_metrics",
    columns=(
        ("tenant", "LowCardinality(String)"),
        ("application_id", "String"),
        ("metric", "LowCardinality(String)"),
        ("timestamp", "DateTime64(3, 'UTC')"),
        ("value", "Float64"),
        ("batch_id", "UInt64"),
        ("idx", "UInt32"),
        ("kafka_partition", "UInt32"),
        ("kafka_offset", "UInt64"),
    ),
    engine="ReplacingMergeTree",
    sorting_key="tenant, application_id, metric, timestamp, batch_id, idx",
    partition_key="toYYYYMM(timestamp)",
    record_kind="app_metric_batch",
)

# Highest app.metrics offset landed per partition, written with the rows by a view.
APP_METRICS_LANDED = Table(
    name="app_metrics_landed",
    columns=(("partition", "UInt32"), ("offset", "UInt64")),
    engine="ReplacingMergeTree",
    sorting_key="partition",
    partition_key="",
)

# The quantile levels every rollup keeps, in the order of its `quantiles` state.
QUANTILES = (0.5, 0.95, 0.99)
QUANTILES_STATE = "quantilesExactInclusive(0.5, 0.95, 0.99)"


def _rollup(granularity: str, partition_key: str, source: str = "app_metrics", subject: str = "application_id") -> Table:
    return Table(
        name=f"{source}_{granularity}",
        columns=(
            ("tenant", "LowCardinality(String)"),
            (subject, "String"),
            ("metric", "LowCardinality(String)"),
            ("bucket", "DateTime('UTC')"),
            ("count", "SimpleAggregateFunction(sum, UInt64)"),
            ("sum", "SimpleAggregateFunction(sum, Float64)"),
            ("min", "SimpleAggregateFunction(min, Float64)"),
            ("max", "SimpleAggregateFunction(max, Float64)"),
            ("quantiles", f"AggregateFunction({QUANTILES_STATE}, Float64)"),
        ),
        engine="AggregatingMergeTree",
        sorting_key=f"tenant, {subject}, metric, bucket",
        partition_key=partition_key,
    )


# Rollup table per granularity (bucket length in seconds -> table).
APP_METRICS_ROLLUPS = {
    "1m": (60, _rollup("1m", "toYYYYMM(bucket)")),
    "5m": (300, _rollup("5m", "toYYYYMM(bucket)")),
    "1h": (3600, _rollup("1h", "toYYYYMM(bucket)")),
    "1d": (86400, _rollup("1d", "toYear(bucket)")),
}

# The same rollups of agent vitals, one point per metric of a vitals row (migration 0009).
AGENT_VITALS_ROLLUPS = {
    g: (seconds, _rollup(g, t.partition_key, "agent_vitals", "agent_id"))
    for g, (seconds, t) in APP_METRICS_ROLLUPS.items()
}


@dataclass(frozen=True)
class View:
    """A materialized view writing into `target`; its SELECT must yield target's columns in order."""
    name: str
    target: Table


SCHEMA_MIGRATIONS = Table(
    name="schema_migrations",
    columns=(("version", "UInt32"), ("name", "String"), ("applied_at", "DateTime64(3, 'UTC')")),
    engine="ReplacingMergeTree",
    sorting_key="version",
    partition_key="",
)

TABLES = (SCHEMA_MIGRATIONS, AGENT_VITALS, AGENT_EVENTS, AGENT_LATEST, AGENT_NAMES, ARI_INTERVENTIONS, ARI_STATUS,
          APP_DEPLOYMENTS, APP_INSIGHTS, ALERT_TRANSITIONS, ALERT_STATUS, ALERT_DELIVERIES, APP_METRICS, APP_METRICS_LANDED, *(t for _, t in APP_METRICS_ROLLUPS.values()),
          AGENT_VITALS_LANDED, *(t for _, t in AGENT_VITALS_ROLLUPS.values()))
VIEWS = (View("agent_latest_mv", AGENT_LATEST), View("agent_names_mv", AGENT_NAMES),
         View("app_metrics_landed_mv", APP_METRICS_LANDED),
         *(View(t.name + "_mv", t) for _, t in APP_METRICS_ROLLUPS.values()),
         View("agent_vitals_landed_mv", AGENT_VITALS_LANDED),
         *(View(t.name + "_mv", t) for _, t in AGENT_VITALS_ROLLUPS.values()))
TABLE_FOR_KIND = {t.record_kind: t for t in TABLES if t.record_kind}
