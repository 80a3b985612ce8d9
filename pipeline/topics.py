"""Kafka topics: the one place their names, partitions, retention and compaction are declared.

Every process calls `ensure_topics` at start-up; the broker itself never auto-creates
topics, so a typo fails loudly instead of making a one-partition topic that the
worker's tables would reject.
"""
from dataclasses import dataclass

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    kind: str | None = None  # Avro record kind carried, for the sink and the worker
    compacted: bool = False

    def config(self) -> dict[str, str]:
        # A compacted topic with a retention also drops old keys (compact,delete).
        policy = ("compact,delete" if self.retention_ms > 0 else "compact") if self.compacted else "delete"
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": policy}


# Records are keyed "<tenant>/<agent or application id>", so all of one entity's
# records share a partition and its worker state lives in one place. Record topics are
# the source of truth for replay, hence a month of retention.
AGENT_VITALS = TopicSpec("agent.vitals", partitions=6, retention_ms=30 * DAY_MS, kind="agent_vital")
AGENT_EVENTS = TopicSpec("agent.events", partitions=6, retention_ms=30 * DAY_MS, kind="agent_event")

# Derived by the worker (and by replay), keyed like the vitals they come from.
ARI_INTERVENTIONS = TopicSpec("agent.interventions", partitions=6, retention_ms=30 * DAY_MS, kind="ari_intervention")
ARI_STATUS = TopicSpec("agent.ari_status", partitions=6, retention_ms=30 * DAY_MS, kind="ari_status")

# Application metrics (/v1): one record per accepted request batch, keyed <tenant>/<app>.
APP_METRICS = TopicSpec("app.metrics", partitions=6, retention_ms=30 * DAY_MS, kind="app_metric_batch")
# Deployments, keyed like app.metrics: the worker watches both for the same application.
APP_DEPLOYMENTS = TopicSpec("app.deployments", partitions=6, retention_ms=30 * DAY_MS, kind="app_deployment")

# Insights the worker derives from an application's metrics and deployments.
APP_INSIGHTS = TopicSpec("app.insights", partitions=6, retention_ms=30 * DAY_MS, kind="app_insight")

# Alerts (docs/alerts.md), keyed by rule id so one rule's records keep their order: the
# worker's state transitions and latest evaluations, and the notifier's delivery attempts.
APP_ALERTS = TopicSpec("app.alerts", partitions=6, retention_ms=30 * DAY_MS, kind="alert_transition")
APP_ALERT_STATUS = TopicSpec("app.alert_status", partitions=6, retention_ms=7 * DAY_MS, kind="alert_status")
APP_ALERT_DELIVERIES = TopicSpec("app.alert_deliveries", partitions=6, retention_ms=30 * DAY_MS, kind="alert_delivery")

RECORD_TOPICS = (AGENT_VITALS, AGENT_EVENTS, ARI_INTERVENTIONS, ARI_STATUS, APP_METRICS, APP_DEPLOYMENTS,
                 APP_INSIGHTS, APP_ALERTS, APP_ALERT_STATUS, APP_ALERT_DELIVERIES)

# Applications (/v1): the latest state of each, keyed by application id; compacted, as
# only the latest state matters; one partition so every api replica applies one order.
APPLICATIONS = TopicSpec("app.applications", partitions=1, retention_ms=-1, kind="application", compacted=True)

# Alert rules (/v1 and /api/agents), keyed by rule id; the api, the worker and the notifier keep them.
ALERT_RULES = TopicSpec("app.alert_rules", partitions=1, retention_ms=-1, kind="alert_rule", compacted=True)
# Each account's policies for ARI interventions (/api/notifications) and channel credentials
# (the Slack bot token): config like the rules, kept by the api and the notifier.
NOTIFICATION_POLICIES = TopicSpec("accounts.notification_policies", partitions=1, retention_ms=-1,
                                  kind="notification_policy", compacted=True)
INTEGRATIONS = TopicSpec("accounts.integrations", partitions=1, retention_ms=-1, kind="integration", compacted=True)
# The notifier's outbox (pipeline/notifier/state.py): the latest state of every delivery,
# keyed by delivery id. Entries go after 35 days: source records are kept 30, so no
# re-read can outlive the memory that it was delivered.
NOTIFY_STATE = TopicSpec("notify.state", partitions=1, retention_ms=35 * DAY_MS, kind="delivery_state",
                         compacted=True)

# The worker's per-agent state table. Faust names its changelog topic itself
# ("<app id>-<table>-changelog"); replay rewrites that topic, so the name has one home here.
WORKER_STATE_TABLE = "agent_state"


def table_changelog(worker_id: str, table: str, partitions: int) -> TopicSpec:
    """A Faust table's changelog topic, as Faust names and configures it (compacted, kept)."""
    return TopicSpec(f"{worker_id}-{table}-changelog", partitions=partitions, retention_ms=-1, compacted=True)


def worker_state_changelog(worker_id: str) -> str:
    return f"{worker_id}-{WORKER_STATE_TABLE}-changelog"

# API keys: a ledger of every key change, in one partition so all share one order, kept
# forever and not compacted: pipeline/accounts.py replays it in full to decide.
ACCOUNT_KEYS = TopicSpec("accounts.keys", partitions=1, retention_ms=-1, kind="api_key")

# The /v1 hourly quota (pipeline/quota.py, docs/quota.md). Each account's plan, keyed by
# tenant: compacted, one partition, kept in memory by every api process.
ACCOUNT_PLANS = TopicSpec("accounts.plans", partitions=1, retention_ms=-1, kind="quota_plan", compacted=True)
# Each api process's running count of requests per key and hour, keyed by key_id, for the worker.
API_USAGE = TopicSpec("api.usage", partitions=6, retention_ms=DAY_MS, kind="api_usage")
# The worker's sums per key (latest hour wins): compacted, one partition, tailed by every api process.
QUOTA_USAGE = TopicSpec("quota.usage", partitions=1, retention_ms=-1, kind="api_usage", compacted=True)

# Token budgets (docs/budgets.md): each account's budgets, keyed by budget id, kept by the api and the
# worker; and the worker's counts, one cumulative record per budget and vitals partition
# (key <budget id>/<partition>), compacted and tailed by every api process for the throttle signal.
BUDGETS = TopicSpec("accounts.budgets", partitions=1, retention_ms=-1, kind="budget", compacted=True)
BUDGET_USAGE = TopicSpec("budgets.usage", partitions=1, retention_ms=-1, kind="budget_usage", compacted=True)


def dlq(spec: TopicSpec) -> TopicSpec:
    """Dead-letter topic for records of `spec` that could not be decoded or stored."""
    return TopicSpec(spec.name + ".dlq", partitions=1, retention_ms=90 * DAY_MS)


ALL_TOPICS = RECORD_TOPICS + tuple(dlq(t) for t in RECORD_TOPICS) + (
    ACCOUNT_KEYS, APPLICATIONS, ALERT_RULES, NOTIFICATION_POLICIES, INTEGRATIONS, NOTIFY_STATE,
    ACCOUNT_PLANS, API_USAGE, QUOTA_USAGE, BUDGETS, BUDGET_USAGE)


def entity_key(tenant: str, entity_id: str) -> bytes:
    return f"{tenant}/{entity_id}".encode()


def ensure_topics(bootstrap: str, prefix: str = "", specs=ALL_TOPICS, timeout: float = 30) -> list[str]:
    """Create the missing topics; returns the names it created. Safe to run from many processes."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(prefix + s.name, num_partitions=s.partitions, replication_factor=-1, config=s.config())
        for s in specs if prefix + s.name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, fut in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            fut.result(timeout)
            created.append(name)
        except Exception as exc:  # another process may have won the race
            err = exc.args[0] if exc.args else None
            if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise
    return created
