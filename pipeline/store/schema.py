"""The ClickHouse schema the code expects, table by table.

The sink writes these columns in this order and the api reads them; a test migrates a
fresh database and checks that what ClickHouse reports matches this declaration
exactly, so a migration and the code can't drift apart.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, ClickHouse type) in table order
    engine: str
    sorting_key: str
    partition_key: str
    record_kind: str | None = None  # Avro kind the sink lands here

    @property
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
    ),
    engine="ReplacingMergeTree",
    sorting_key="tenant, agent_id, recorded_at, id",
    partition_key="toYYYYMM(recorded_at)",
    record_kind="agent_vital",
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

TABLES = (SCHEMA_MIGRATIONS, AGENT_VITALS, AGENT_EVENTS, AGENT_LATEST, AGENT_NAMES, ARI_INTERVENTIONS, ARI_STATUS)
VIEWS = (View("agent_latest_mv", AGENT_LATEST), View("agent_names_mv", AGENT_NAMES))
TABLE_FOR_KIND = {t.record_kind: t for t in TABLES if t.record_kind}
