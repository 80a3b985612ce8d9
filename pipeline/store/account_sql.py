"""SQL over one account's data (POST /v1/sql, docs/sql.md).

An account's query runs in a database of its own that holds only views: one per table an
analyst may read, each over the main database's table with `WHERE tenant = '<account>'`
and the bookkeeping columns left out (`VIEWS`). What keeps the query inside them is the
engine's, not string matching:

1. **Parsed by ClickHouse**: `formatQuerySingleLine` turns the text into exactly one
   statement (a second one is the engine's syntax error; comments go), and only that
   canonical text is used from here on. Its `EXPLAIN AST` must be one SELECT (a UNION of them, CTEs and
   subqueries allowed) and nothing else. Refused: another statement kind, a second
   statement, `INTO OUTFILE`, `FORMAT`, `SETTINGS`, a table named with a database
   (`system.tables`, `sophra.app_metrics`, another account's views), a table function
   other than the generators in `TABLE_FUNCTIONS`, dictionaries (`dict*`), `joinGet` and
   the functions that read files or server config (`FUNCTIONS_REFUSED`).
2. **Resolved by ClickHouse** (`EXPLAIN QUERY TREE`, in the account's database, read-only,
   under the limits): every table the analyzer resolved, scalar subqueries' included, must
   be one of the account's views.
3. **Run read-only** (`readonly=1`: no writes, no DDL, no settings changed from the query,
   no table functions that reach outside), in the account's database, under the limits on
   time, memory, rows read and rows returned (`Limits`).

The same code runs on the embedded engine (chdb) and on a ClickHouse server
(`CLICKHOUSE_URL`): all three steps are ordinary queries.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from .schema import AGENT_VITALS_ROLLUPS, APP_METRICS_ROLLUPS, QUANTILES, QUANTILES_STATE


def _columns(*names: str) -> str:
    return ", ".join(names)


# View name -> its SELECT over the main database `{db}` for account `{tenant}`. FINAL
# because the tables are ReplacingMergeTree: a record landed twice (a retried insert, a
# replay) is one row to an analyst, as it is to the api.
VIEWS: dict[str, str] = {
    "vitals": "SELECT " + _columns(
        "id", "agent_id", "agent_name", "token_consumption", "token_limit", "hallucination_rate", "loop_frequency",
        "directive_conflicts", "overall_health", "metadata", "recorded_at") + " FROM {db}.agent_vitals FINAL",
    "events": "SELECT " + _columns("id", "agent_id", "event_type", "details", "metadata", "recorded_at")
              + " FROM {db}.agent_events FINAL",
    "agents": "SELECT " + _columns(
        "agent_id", "token_consumption", "token_limit", "hallucination_rate", "loop_frequency", "directive_conflicts",
        "overall_health", "recorded_at") + " FROM {db}.agent_latest FINAL",
    "interventions": "SELECT " + _columns(
        "agent_id", "intervention_id", "protocol", "severity", "description", "tokens_saved", "details", "opened_at",
        "closed_at", "outcome", "outcome_details", "tokens_saved_measured") + " FROM {db}.ari_interventions FINAL",
    "ari_status": "SELECT " + _columns("agent_id", "snapshots", "checkups", "baseline", "updated_at")
                  + " FROM {db}.ari_status FINAL",
    "app_metrics": "SELECT " + _columns("application_id", "metric", "timestamp", "value")
                   + " FROM {db}.app_metrics FINAL",
    "deployments": "SELECT " + _columns(
        "id", "application_id", "version", "description", "changes", "rollback_on_error", "health_check_url",
        "status", "reason", "started_at", "completed_at") + " FROM {db}.app_deployments FINAL",
    "insights": "SELECT " + _columns(
        "id", "application_id", "agent_id", "type", "severity", "title", "description", "recommendation", "timestamp",
        "metric", "status", "started_at", "ended_at", "observed", "expected", "expected_low", "expected_high",
        "score", "cause") + " FROM {db}.app_insights FINAL",
    "alert_transitions": "SELECT " + _columns(
        "id", "rule_id", "rule_name", "scope", "subject_id", "subject_name", "state", "previous_state", "notify",
        "metric", "aggregation", "operator", "threshold", "eval_window", "value", "started_at", "at", "actions")
        + " FROM {db}.alert_transitions FINAL",
    "alert_status": "SELECT " + _columns("rule_id", "scope", "subject_id", "state", "since", "value", "evaluated_at")
                    + " FROM {db}.alert_status FINAL",
    "alert_deliveries": "SELECT " + _columns(
        "delivery_id", "transition_id", "rule_id", "scope", "subject_id", "action_type", "target", "attempt",
        "outcome", "error", "latency_ms", "at", "next_attempt_at") + " FROM {db}.alert_deliveries FINAL",
}

# The rollups, finalized: one row per bucket with its count, sum, min, max, mean and quantiles.
_P = ", ".join(f"q[{i + 1}] AS p{round(level * 100)}" for i, level in enumerate(QUANTILES))
for _rollups, _subject in ((APP_METRICS_ROLLUPS, "application_id"), (AGENT_VITALS_ROLLUPS, "agent_id")):
    for _g, (_, _table) in _rollups.items():
        VIEWS[_table.name] = (
            f"SELECT {_subject}, metric, bucket, count, sum, min, max, sum / count AS mean, {_P} FROM ("
            f"SELECT {_subject}, metric, bucket, sum(count) AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max, "
            f"{QUANTILES_STATE.replace('(', 'Merge(', 1)}(quantiles) AS q FROM {{db}}.{_table.name} "
            f"WHERE tenant = '{{tenant}}' GROUP BY {_subject}, metric, bucket)")

# Table functions that only generate values (handy for calendars and gap filling).
TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateSeries"})
# Functions that read something other than the query's tables: dictionaries, Join tables,
# files, the server's settings and macros.
FUNCTIONS_REFUSED = frozenset({
    "joinGet", "joinGetOrNull", "file", "getSetting", "getSettingOrDefault", "getServerSetting",
    "getMergeTreeSetting", "getMacro", "getClientHTTPHeader", "filesystemAvailable", "filesystemCapacity",
    "filesystemUnreserved", "getOSKernelVersion", "currentProfiles", "enabledProfiles", "defaultProfiles",
    "currentRoles", "enabledRoles", "defaultRoles", "currentUser", "user", "hostName", "hostname", "fqdn",
    "FQDN", "tcpPort", "getServerPort", "uptime", "serverUUID", "displayName", "shardNum", "shardCount",
    "initialQueryID", "queryID", "initial_query_id", "query_id", "catboostEvaluate", "naiveBayesClassifier",
})
TENANT = re.compile(r"^[a-z0-9_]{1,64}$")


class Refused(Exception):
    """A query this account may not run; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    seconds: float = 10
    memory_bytes: int = 1 << 30
    rows_read: int = 200_000_000
    rows_returned: int = 100_000
    bytes_returned: int = 64 << 20

    def clause(self) -> str:
        """The SETTINGS clause every step ends with. It is part of the query text, never
        client settings: clickhouse-connect's chdb backend applies those to the session
        with SET and restores them afterwards, which fails once readonly=1 is set and
        leaves the connection read-only."""
        return "SETTINGS " + ", ".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}"
                                       for k, v in self._settings().items())

    def _settings(self) -> dict:
        return {
            "readonly": 1,
            "max_execution_time": self.seconds,
            "timeout_overflow_mode": "throw",
            "max_memory_usage": self.memory_bytes,
            "max_rows_to_read": self.rows_read,
            "read_overflow_mode": "throw",
            "max_result_rows": self.rows_returned,
            "max_result_bytes": self.bytes_returned,
            "result_overflow_mode": "throw",
            # 64-bit integers as JSON numbers on the server too (its default quotes them)
            "output_format_json_quote_64bit_integers": 0,
        }


def account_database(database: str, tenant: str) -> str:
    if not TENANT.match(tenant):
        raise ValueError(f"not an account id: {tenant!r}")
    return f"{database}_sql_{tenant}"


class AccountViews:
    """Creates each account's database of views once per process (CREATE OR REPLACE, so a
    process started after a migration brings every account's views up to date on first use)."""

    def __init__(self, database: str):
        self.database = database
        self._done: set[str] = set()
        self._lock = threading.Lock()

    def ensure(self, client: Client, tenant: str) -> str:
        account_db = account_database(self.database, tenant)
        if tenant in self._done:
            return account_db
        with self._lock:
            if tenant not in self._done:
                client.command(f"CREATE DATABASE IF NOT EXISTS `{account_db}`")
                for name, select in VIEWS.items():
                    body = select.format(db=f"`{self.database}`", tenant=tenant)
                    if "{tenant}" not in select:  # the plain tables: filter here, the rollups filter inside
                        body += f" WHERE tenant = '{tenant}'"
                    # DEFINER: on a server, a user granted SELECT on this database alone (Grafana,
                    # docs/sql.md) reads through the views without any right on the tables.
                    client.command(f"CREATE OR REPLACE VIEW `{account_db}`.`{name}` SQL SECURITY DEFINER AS {body}")
                self._done.add(tenant)
        return account_db


# -- step 1: ClickHouse's parse ------------------------------------------------------------
_NODE = re.compile(r"^( *)(\w+)(?: (.*))?$")
_DECORATION = re.compile(r" \((?:children \d+|alias [^)]*)\)")


def canonical(client: Client, query: str, limits: Limits) -> str:
    """The engine's own single-line text of `query`, which is one statement: the query goes
    in as a bound parameter and comes back parsed and re-printed."""
    return client.query("SELECT formatQuerySingleLine({q:String}) " + limits.clause(),
                        parameters={"q": query}).result_rows[0][0]


# clickhouse-connect ends every query with `FORMAT <fmt>`; the parse shows it as the last
# child of the root, the only one besides the SELECTs that is allowed.
_EXPLAIN_FORMAT = "TabSeparatedRaw"


def _ast(client: Client, query: str) -> list[tuple[int, str, str]]:
    """(depth, node kind, its text) per line of the engine's EXPLAIN AST."""
    # No SETTINGS clause here: it would show in the parse; EXPLAIN AST runs nothing.
    text = client.raw_query(f"EXPLAIN AST {query}", fmt=_EXPLAIN_FORMAT).decode()
    nodes = []
    for line in text.splitlines():
        m = _NODE.match(line)
        if m is None:  # never echo the line: it is the engine's output, not the analyst's text
            raise Refused("query: could not read the engine's parse of it")
        nodes.append((len(m.group(1)), m.group(2), _DECORATION.sub("", " " + (m.group(3) or "")).strip()))
    return nodes


def check_parse(nodes: list[tuple[int, str, str]]) -> None:
    if not nodes or nodes[0][1] != "SelectWithUnionQuery":
        kind = nodes[0][1] if nodes else "nothing"
        raise Refused(f"query: only SELECT queries run here (this is a {kind})")
    if sum(1 for depth, _, _ in nodes if depth == 0) != 1:
        raise Refused("query: one statement at a time")
    top = [(kind, text) for depth, kind, text in nodes if depth == 1]
    if top != [("ExpressionList", ""), ("Identifier", _EXPLAIN_FORMAT)]:
        raise Refused("query: INTO OUTFILE, FORMAT and SETTINGS are not allowed (choose the format with the "
                      "`format` field; the limits are the account's)")
    for i, (depth, kind, text) in enumerate(nodes):
        if kind == "Set":
            raise Refused("query: SETTINGS are not allowed (the limits are the account's)")
        if kind == "TableIdentifier" and "." in text.split(" ")[0]:
            raise Refused(f"query: tables are named without a database here ({text.split(' ')[0]}); "
                          f"the account's tables are: {', '.join(sorted(VIEWS))}")
        if kind == "Function":
            name = text.split(" ")[0]
            parent = next((k for d, k, _ in reversed(nodes[:i]) if d < depth), "")
            if parent == "TableExpression" and name not in TABLE_FUNCTIONS:
                raise Refused(f"query: table function {name}() is not allowed; read the account's tables: "
                              f"{', '.join(sorted(VIEWS))}")
            if name in FUNCTIONS_REFUSED or name.lower().startswith("dict"):
                raise Refused(f"query: function {name}() is not allowed here")


# -- step 2: ClickHouse's resolution ------------------------------------------------------
_TABLE = re.compile(r"^\s*TABLE id: \d+,.*\btable_name: (\S+?)(?:,|$)")
_TABLE_FUNCTION = re.compile(r"^\s*TABLE_FUNCTION id: \d+,.*\btable_function_name: (\w+)")


def check_resolved(client: Client, query: str, account_db: str, limits: Limits) -> None:
    # Only after check_parse: the query has no SETTINGS of its own, so ours is the only one.
    # The analyzer runs scalar subqueries while it resolves, hence the limits here too.
    text = client.raw_query(f"EXPLAIN QUERY TREE {query} {limits.clause()}", fmt="TabSeparatedRaw").decode()
    # system.one is what a SELECT without FROM reads (one dummy row); naming it is refused
    # by check_parse like every qualified name.
    allowed = {f"{account_db}.{name}" for name in VIEWS} | {"system.one"}
    for line in text.splitlines():
        if (m := _TABLE.match(line)) and m.group(1) not in allowed:
            raise Refused(f"query: reads {m.group(1).removeprefix(account_db + '.')}, which is not one of the "
                          f"account's tables: {', '.join(sorted(VIEWS))}")
        if (m := _TABLE_FUNCTION.match(line)) and m.group(1) not in TABLE_FUNCTIONS:
            raise Refused(f"query: table function {m.group(1)}() is not allowed")


# -- step 3: the run -------------------------------------------------------------------------
# Engine error codes -> (HTTP status, what to tell the analyst).
_LIMITS_HIT = {
    159: (408, "took longer than the limit of {seconds:g} s"),
    160: (408, "would take longer than the limit of {seconds:g} s"),
    241: (400, "needed more memory than the limit of {memory_bytes:,} bytes"),
    158: (400, "reads more than the limit of {rows_read:,} rows"),
    396: (400, "returns more than the limit of {rows_returned:,} rows or {bytes_returned:,} bytes"),
    164: (400, "tries to write or change settings; only reading is allowed"),
}
_CODE = re.compile(r"Code: (\d+)\.")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")
_TRAILER = re.compile(r" \((?:[A-Z][A-Z0-9_]+|version [^)]*)\)")


def engine_error(exc: Exception, limits: Limits) -> Refused | None:
    """The analyst's error for an engine exception about the query, or None when it is not
    one (the engine or its connection failed: the caller's 503)."""
    text = str(exc)
    m = _CODE.search(text)
    if m is None:
        return None
    code = int(m.group(1))
    if code in _LIMITS_HIT:
        status, message = _LIMITS_HIT[code]
        return Refused("query: " + message.format(**limits.__dict__), status)
    detail = text.rsplit("DB::Exception: ", 1)[-1]
    name = _NAME.search(detail)
    detail = _TRAILER.split(detail)[0].split(". Maybe you meant")[0].removeprefix("default: ")
    detail = re.split(r"[.:]? In scope ", detail)[0].strip().rstrip(".")
    return Refused(f"query: {detail} ({name.group(1) if name else f'code {code}'})")


FORMATS = {"json": "JSONCompact", "csv": "CSVWithNames"}


def run(client: Client, views: AccountViews, tenant: str, query: str, fmt: str, limits: Limits) -> bytes:
    """The answer of `query` over `tenant`'s views in the engine's `FORMATS[fmt]`, or Refused.
    Any other exception means `client` must not be used again (see AccountSql)."""
    query = query.strip().rstrip(";").strip()
    if not query:
        raise Refused("query: is empty")
    account_db = views.ensure(client, tenant)
    client.database = account_db
    try:
        query = canonical(client, query, limits)
        check_parse(_ast(client, query))
        check_resolved(client, query, account_db, limits)
        return client.raw_query(f"{query} {limits.clause()}", fmt=FORMATS[fmt])
    except Refused:
        raise
    except Exception as exc:
        refused = engine_error(exc, limits)
        if refused is None:
            raise
        raise refused from exc


class AccountSql:
    """Runs accounts' queries on connections of its own, one per thread, never shared with
    the api's other queries: each is switched to the account's database per query, and after
    an engine error mid-answer chdb's handle can hand the stale end of that answer to the next
    query, so a connection that saw an error is closed and replaced."""

    def __init__(self, dsn: str, database: str, limits: Limits | None = None):
        self.dsn, self.database = dsn, database
        self.limits = limits or Limits()
        self.views = AccountViews(database)
        self._local = threading.local()

    def _client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            from .clickhouse import connect
            client = self._local.client = connect(self.dsn, self.database)
        return client

    def run(self, tenant: str, query: str, fmt: str = "json") -> bytes:
        client = self._client()
        try:
            return run(client, self.views, tenant, query, fmt, self.limits)
        except Refused as exc:
            if exc.__cause__ is not None:  # the engine raised: start the next query on a fresh handle
                self._discard(client)
            raise
        except Exception:
            self._discard(client)
            raise

    def _discard(self, client: Client) -> None:
        self._local.client = None
        try:
            client.close()
        except Exception:
            pass
