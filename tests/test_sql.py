"""SQL for an account (POST /v1/sql): a query sees its own account's rows and nothing else.

The hostile queries run on the real engine through `AccountSql` (what the route calls), on
a database holding two accounts' rows; each must be refused with the expected reason, and
no answer may contain the other account's marker. The route's own tests run the api with
its sink: rows written through /v1 come back exactly, to their account only.
"""
import json
import time
import uuid

import httpx
import pytest

from pipeline.store.account_sql import VIEWS, AccountSql, Limits, Refused, account_database
from pipeline.store.clickhouse import connect
from pipeline.store.migrate import migrate

from .conftest import eventually

MINE, OTHER = "acct_sqltest_mine", "acct_sqltest_other"
SECRET = 123456.75  # only OTHER's rows hold this value


@pytest.fixture(scope="module")
def engine(clickhouse_dsn):
    """A migrated database with rows of two accounts, and AccountSql over it."""
    database = f"sqltest_{uuid.uuid4().hex[:8]}"
    migrate(clickhouse_dsn, database)
    client = connect(clickhouse_dsn, database)
    now = int(time.time()) * 1000
    for tenant, value in ((MINE, 2.5), (OTHER, SECRET)):
        client.command(
            "INSERT INTO app_metrics (tenant, application_id, metric, timestamp, value, batch_id, idx, "
            "kafka_partition, kafka_offset) SELECT %(t)s, 'app_1', 'response_time', "
            "fromUnixTimestamp64Milli(toInt64(%(now)s) - number * 1000), %(v)s, 1, number, 0, 0 FROM numbers(3)",
            parameters={"t": tenant, "now": now, "v": value})
        client.command(
            "INSERT INTO agent_vitals (tenant, id, agent_id, agent_name, token_consumption, token_limit, "
            "hallucination_rate, loop_frequency, directive_conflicts, overall_health, metadata, recorded_at, "
            "kafka_partition, kafka_offset) VALUES (%(t)s, 1, 'agent-1', NULL, %(tok)s, 10000, 0.5, 0, 0, 'healthy', "
            "'{}', now64(3), 0, 0)", parameters={"t": tenant, "tok": int(value * 4)})
        client.command("INSERT INTO agent_events (tenant, id, agent_id, event_type, details, metadata, recorded_at) "
                       "VALUES (%(t)s, 1, 'agent-1', 'task_completed', %(d)s, '{}', now64(3))",
                       parameters={"t": tenant, "d": f"details of {tenant}"})
    sql = AccountSql(clickhouse_dsn, database, Limits(seconds=2, rows_returned=1000, rows_read=50_000_000))
    return database, sql


def answer(sql: AccountSql, query: str, tenant: str = MINE) -> dict:
    return json.loads(sql.run(tenant, query, "json"))


def test_each_account_reads_its_own_rows_only(engine):
    _, sql = engine
    assert answer(sql, "SELECT count(), sum(value) FROM app_metrics")["data"] == [[3, 7.5]]
    assert answer(sql, "SELECT count(), sum(value) FROM app_metrics", OTHER)["data"] == [[3, SECRET * 3]]
    assert answer(sql, "SELECT token_consumption FROM vitals")["data"] == [[10]]
    assert answer(sql, "SELECT details FROM events")["data"] == [[f"details of {MINE}"]]
    # the rollups, finalized, fed by the same inserts
    assert answer(sql, "SELECT sum(count), max(max), min(p50) FROM app_metrics_1d")["data"] == [[3, 2.5, 2.5]]
    assert answer(sql, "SELECT metric, count, sum FROM agent_vitals_1d WHERE metric = 'tokenConsumption'")["data"] \
        == [["tokenConsumption", 1, 10]]


def test_every_table_of_the_account_is_readable_and_holds_no_other_account(engine):
    _, sql = engine
    for name in VIEWS:
        body = sql.run(MINE, f"SELECT * FROM {name}", "json").decode()
        assert str(SECRET) not in body and OTHER not in body, name
        assert json.loads(body)["rows"] == {"app_metrics": 3, "vitals": 1, "events": 1}.get(name, json.loads(body)["rows"])


def test_the_tenant_column_is_not_there(engine):
    _, sql = engine
    with pytest.raises(Refused) as err:
        sql.run(MINE, "SELECT tenant FROM app_metrics")
    assert err.value.status == 400 and "UNKNOWN_IDENTIFIER" in str(err.value)


def test_csv_has_a_header_and_exact_values(engine):
    _, sql = engine
    assert sql.run(MINE, "SELECT application_id, value FROM app_metrics ORDER BY value LIMIT 1", "csv") \
        == b'"application_id","value"\n"app_1",2.5\n'


def test_comments_and_a_trailing_semicolon_are_fine(engine):
    _, sql = engine
    assert answer(sql, "SELECT 1 /* ; DROP TABLE app_metrics */ ;")["data"] == [[1]]
    assert answer(sql, "SELECT count() FROM app_metrics -- ; SELECT * FROM system.tables")["data"] == [[3]]


def _hostile(database: str) -> list[tuple[str, str]]:
    other_db = account_database(database, OTHER)
    named = "tables are named without a database"
    table_function = "table function"
    only_select = "only SELECT queries run here"
    outfile = "INTO OUTFILE, FORMAT and SETTINGS are not allowed"
    return [
        # system tables and other databases
        ("SELECT * FROM system.tables", named),
        ("SELECT name FROM system.databases", named),
        ("SELECT * FROM `system`.`one`", named),
        ("SELECT * FROM system.query_log", named),
        ("SELECT * FROM INFORMATION_SCHEMA.TABLES", named),
        ("SELECT * FROM information_schema.columns", named),
        (f"SELECT * FROM {database}.app_metrics", named),
        (f"SELECT * FROM `{database}`.`agent_vitals`", named),
        (f"SELECT * FROM {other_db}.app_metrics", named),
        (f"SELECT * FROM app_metrics UNION ALL SELECT * FROM {other_db}.app_metrics", named),
        (f"SELECT * FROM app_metrics AS a JOIN {database}.app_metrics AS b ON a.value = b.value", named),
        (f"SELECT * FROM app_metrics WHERE value IN (SELECT value FROM {database}.app_metrics)", named),
        (f"SELECT 1 WHERE (toUInt32(0), toUInt64(0)) IN {database}.app_metrics_landed",
         f"reads {database}.app_metrics_landed, which is not one of the account's tables"),
        ("SELECT (SELECT count() FROM system.tables)", named),
        (f"WITH x AS (SELECT * FROM {database}.app_metrics) SELECT * FROM x", named),
        ("SELECT * FROM app_metrics UNION ALL SELECT 'a', 'b', now64(3), 1 FROM system.one", named),
        # table functions
        ("SELECT * FROM url('http://127.0.0.1:1/', CSV, 'a String')", table_function + " url()"),
        ("SELECT * FROM file('/etc/passwd', LineAsString)", table_function + " file()"),
        ("SELECT * FROM remote('127.0.0.1', system.one)", table_function + " remote()"),
        ("SELECT * FROM remoteSecure('127.0.0.1', system.one)", table_function + " remoteSecure()"),
        ("SELECT * FROM s3('http://127.0.0.1:1/b/k.csv', CSV)", table_function + " s3()"),
        ("SELECT * FROM cluster('default', system.one)", table_function + " cluster()"),
        ("SELECT * FROM clusterAllReplicas('default', system.one)", table_function + " clusterAllReplicas()"),
        ("SELECT * FROM input('a String')", table_function + " input()"),
        ("SELECT * FROM executable('id', TSV, 'a String')", table_function + " executable()"),
        (f"SELECT * FROM merge('{database}', '.*')", table_function + " merge()"),
        ("SELECT * FROM mysql('127.0.0.1:3306', 'db', 't', 'u', 'p')", table_function + " mysql()"),
        ("SELECT * FROM postgresql('127.0.0.1:5432', 'db', 't', 'u', 'p')", table_function + " postgresql()"),
        ("SELECT * FROM view(SELECT * FROM system.one)", table_function + " view()"),
        ("SELECT * FROM dictionary('d')", table_function + " dictionary()"),
        ("SELECT * FROM loop(app_metrics)", table_function + " loop()"),
        # dictionaries, Join tables, files and server settings through functions
        ("SELECT dictGet('d', 'a', toUInt64(1))", "function dictGet() is not allowed"),
        ("SELECT dictHas('d', toUInt64(1))", "function dictHas() is not allowed"),
        ("SELECT joinGet('j', 'a', 1)", "function joinGet() is not allowed"),
        ("SELECT file('/etc/passwd')", "function file() is not allowed"),
        ("SELECT getSetting('readonly')", "function getSetting() is not allowed"),
        ("SELECT hostName()", "function hostName() is not allowed"),
        # settings overrides, output redirection, formats
        ("SELECT * FROM app_metrics SETTINGS readonly = 0", "SETTINGS are not allowed"),
        ("SELECT 1 SETTINGS max_execution_time = 100000", "SETTINGS are not allowed"),
        ("SELECT * FROM (SELECT 1 SETTINGS max_result_rows = 0)", "SETTINGS are not allowed"),
        ("SELECT 1 INTO OUTFILE '/tmp/sophra-sql-escape.txt'", outfile),
        ("SELECT 1 FORMAT JSON", outfile),
        # several statements
        ("SELECT 1; SELECT * FROM system.tables", "Multi-statements are not allowed"),
        ("SELECT 1; DROP TABLE app_metrics", "Multi-statements are not allowed"),
        # not a SELECT
        ("INSERT INTO app_metrics VALUES ('a', 'b', now64(3), 1)", only_select),
        ("DROP TABLE app_metrics", only_select),
        ("DROP DATABASE " + database, only_select),
        ("CREATE TABLE x (a Int8) ENGINE = Memory", only_select),
        ("ALTER TABLE app_metrics DELETE WHERE 1", only_select),
        ("TRUNCATE TABLE app_metrics", only_select),
        ("OPTIMIZE TABLE app_metrics FINAL", only_select),
        ("SYSTEM FLUSH LOGS", "SYNTAX_ERROR"),  # not even EXPLAINable: refused at the parse
        ("SET readonly = 0", only_select),
        ("SHOW TABLES", only_select),
        ("SHOW DATABASES", only_select),
        ("DESCRIBE TABLE system.tables", only_select),
        ("EXPLAIN SELECT * FROM system.tables", only_select),
        ("KILL QUERY WHERE 1", only_select),
        ("GRANT ALL ON *.* TO default", only_select),
        ("CREATE USER eve", only_select),
        ("USE system", only_select),
    ]


def test_hostile_queries_are_refused_and_leak_nothing(engine):
    database, sql = engine
    hostile = _hostile(database)
    assert len(hostile) >= 60
    failures = []
    for query, reason in hostile:
        try:
            body = sql.run(MINE, query, "json").decode()
            failures.append(f"{query!r} ran: {body[:120]!r}")
        except Refused as exc:
            if exc.status != 400 or reason not in str(exc) or str(SECRET) in str(exc):
                failures.append(f"{query!r} -> {exc.status} {exc}")
    assert failures == []
    # nothing was written, dropped or redirected
    assert answer(sql, "SELECT count() FROM app_metrics")["data"] == [[3]]
    assert answer(sql, "SELECT count() FROM app_metrics", OTHER)["data"] == [[3]]
    import os
    assert not os.path.exists("/tmp/sophra-sql-escape.txt")


def test_the_limits_answer_clearly(engine):
    _, sql = engine
    cases = [("SELECT sleepEachRow(1) FROM numbers(10)", 408, "longer than the limit of 2 s"),
             ("SELECT number FROM numbers(5000)", 400, "returns more than the limit of 1,000 rows"),
             ("SELECT count() FROM numbers(100000000)", 400, "reads more than the limit of 50,000,000 rows"),
             ("SELEC 1", 400, "Syntax error"),
             ("SELECT * FROM nosuch", 400, "Unknown table expression identifier 'nosuch'"),
             ("", 400, "query: is empty")]
    for query, status, reason in cases:
        with pytest.raises(Refused) as err:
            sql.run(MINE, query)
        assert (err.value.status, reason in str(err.value)) == (status, True), (query, str(err.value))
    # a connection that saw an engine error is replaced: the next answer is its own
    assert answer(sql, "SELECT count() FROM app_metrics")["data"] == [[3]]


# -- the route ---------------------------------------------------------------------------------
@pytest.fixture
def api(running_api):
    return running_api(sql_timeout_s=2)


def test_post_v1_sql_answers_the_accounts_own_data(api):
    mine, other = api.client(), api.client(api.new_key())
    app = mine.post("/v1/applications", json={"name": "sql"}).json()["id"]
    t = int(time.time()) * 1000
    points = [{"metric": "latency", "value": v, "timestamp": t - i * 1000} for i, v in enumerate((1.5, 2.5, 4.0))]
    assert mine.post(f"/v1/applications/{app}/metrics", json={"points": points}).status_code == 202
    query = {"query": f"SELECT metric, count(), sum(value) FROM app_metrics WHERE application_id = '{app}' "
                      "GROUP BY metric"}
    res = eventually(lambda: (r := mine.post("/v1/sql", json=query)).json()["data"] and r, timeout=30)
    assert res.status_code == 200 and res.headers["content-type"] == "application/json"
    assert res.json()["data"] == [["latency", 3, 8]]
    assert "x-ratelimit-remaining" in res.headers  # a /v1 request like any other
    # another account, same query: nothing
    assert other.post("/v1/sql", json=query).json()["data"] == []
    csv = mine.post("/v1/sql", json={**query, "format": "csv"})
    assert (csv.status_code, csv.headers["content-type"], csv.text) == (
        200, "text/csv; charset=utf-8", '"metric","count()","sum(value)"\n"latency",3,8\n')


def test_post_v1_sql_errors_name_the_field(api):
    http = api.client()
    res = http.post("/v1/sql", json={"query": "SELECT * FROM system.tables"})
    assert res.status_code == 400
    assert (res.json()["error"], res.json()["field"]) == ("Invalid query", "query")
    assert res.json()["message"].startswith("query: tables are named without a database here (system.tables)")
    slow = http.post("/v1/sql", json={"query": "SELECT sleepEachRow(1) FROM numbers(10)"})
    assert (slow.status_code, slow.json()["error"]) == (408, "Query timeout")
    bad = http.post("/v1/sql", json={"query": "SELECT 1", "format": "xml"})
    assert (bad.status_code, bad.json()["field"]) == (400, "format")
    missing = http.post("/v1/sql", json={})
    assert (missing.status_code, missing.json()["field"]) == (400, "body"), missing.text
    assert httpx.post(f"{api.url}/v1/sql", json={"query": "SELECT 1"}).status_code == 401


# -- the operator's shell ---------------------------------------------------------------------
def test_sophra_sql_reads_across_accounts_with_the_engines_formats(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    dsn = f"chdb://{tmp_path / 'ch'}"  # a folder of its own: chdb opens one per process

    def sophra(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "sophra", *args, "--clickhouse-url", dsn], cwd=root, input=stdin,
                              capture_output=True, text=True, timeout=120)

    assert sophra("migrate").returncode == 0
    insert = sophra("sql", "-e", "INSERT INTO app_metrics (tenant, application_id, metric, timestamp, value, batch_id, "
                                 "idx, kafka_partition, kafka_offset) VALUES ('acct_a', 'app', 'm', now64(3), 1.5, 1, 0, "
                                 "0, 0), ('acct_b', 'app', 'm', now64(3), 2.5, 2, 0, 0, 0)")
    assert insert.returncode == 0, insert.stderr
    one = sophra("sql", "-e", "SELECT tenant, value FROM app_metrics ORDER BY tenant", "--format", "CSV")
    assert (one.returncode, one.stdout) == (0, '"acct_a",1.5\n"acct_b",2.5\n')
    shell = sophra("sql", stdin="SELECT count() AS n\nFROM app_metrics;\nSELECT nosuch;\nSELECT 2 AS b;\n")
    assert (shell.returncode, shell.stdout) == (1, "n\n2\nb\n2\n")
    assert "UNKNOWN_IDENTIFIER" in shell.stderr


def test_the_docs_name_every_table_an_account_can_read():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "sql.md").read_text()
    plain = [name for name in VIEWS if not name.endswith(("_1m", "_5m", "_1h", "_1d"))]
    assert [name for name in plain if f"| `{name}` |" not in docs] == []
    for base in ("app_metrics", "agent_vitals"):
        assert f"| `{base}_1m`, `_5m`, `_1h`, `_1d` |" in docs
