"""The migrated ClickHouse schema is exactly the one the code declares."""
import pytest

from pipeline.store.clickhouse import connect
from pipeline.store.migrate import migrate, migrations
from pipeline.store.schema import TABLES, VIEWS

pytestmark = pytest.mark.integration


def test_migrated_schema_matches_declaration(make_settings):
    s = make_settings()
    assert migrate(s.clickhouse_dsn, s.clickhouse_database) == [f"{m.version:04d}_{m.name}" for m in migrations()]
    client = connect(s.clickhouse_dsn, s.clickhouse_database)
    db = {"db": s.clickhouse_database}
    tables = {r[0]: r[1:] for r in client.query(
        "SELECT name, engine, sorting_key, partition_key FROM system.tables WHERE database = %(db)s", db).result_rows}
    assert set(tables) == {t.name for t in TABLES} | {v.name for v in VIEWS}
    for table in TABLES:
        columns = client.query(
            "SELECT name, type FROM system.columns WHERE database = %(db)s AND table = %(t)s ORDER BY position",
            {**db, "t": table.name}).result_rows
        assert tuple(columns) == table.columns, table.name
        assert tables[table.name] == (table.engine, table.sorting_key, table.partition_key), table.name


def test_every_materialized_view_yields_its_targets_columns_in_order(make_settings):
    s = make_settings()
    migrate(s.clickhouse_dsn, s.clickhouse_database)
    client = connect(s.clickhouse_dsn, s.clickhouse_database)
    for view in VIEWS:
        select = client.query("SELECT as_select FROM system.tables WHERE database = %(db)s AND name = %(v)s",
                              {"db": s.clickhouse_database, "v": view.name}).result_rows[0][0]
        described = client.query(f"DESCRIBE TABLE ({select})").result_rows
        assert tuple((r[0], r[1]) for r in described) == view.target.columns, view.name


def test_migrate_is_idempotent_and_recorded(make_settings):
    s = make_settings()
    first = migrate(s.clickhouse_dsn, s.clickhouse_database)
    assert migrate(s.clickhouse_dsn, s.clickhouse_database) == []
    rows = connect(s.clickhouse_dsn, s.clickhouse_database).query(
        "SELECT version, name FROM schema_migrations FINAL ORDER BY version").result_rows
    assert [f"{v:04d}_{n}" for v, n in rows] == first


def test_migration_files_are_numbered_without_gaps():
    assert [m.version for m in migrations()] == list(range(1, len(migrations()) + 1))
