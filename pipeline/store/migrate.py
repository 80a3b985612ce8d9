"""Versioned ClickHouse migrations: `migrations/NNNN_name.sql`, applied in order, once.

Applied versions are recorded in `schema_migrations`. Statements are written
idempotently (IF NOT EXISTS), so two processes migrating at once, or a crash between
a statement and its bookkeeping row, leave the same schema behind.
"""
import re
from dataclasses import dataclass
from importlib import resources

from .clickhouse import connect

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        body = "\n".join(l for l in self.sql.splitlines() if not l.lstrip().startswith("--"))
        return [s.strip() for s in body.split(";") if s.strip()]


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def migrate(dsn: str, database: str) -> list[str]:
    """Bring `database` up to date; returns the names of the migrations it applied."""
    connect(dsn).command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    client = connect(dsn, database)
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))"
        " ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = {r[0] for r in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
    applied = []
    for mig in migrations():
        if mig.version in done:
            continue
        for statement in mig.statements():
            client.command(statement)
        client.insert("schema_migrations", [[mig.version, mig.name]], column_names=["version", "name"])
        applied.append(f"{mig.version:04d}_{mig.name}")
    return applied
