"""`sophra sql`: the operator's SQL on the engine, across every account (the accounts' own
SQL is POST /v1/sql, docs/sql.md). `-e` runs one query; without it, an interactive shell
reads statements ending with `;`. Answers come in the engine's own formats.

On the embedded deployment the engine's data folder belongs to one process at a time:
stop `sophra up` first, or point `--clickhouse-url` at a ClickHouse server.
"""
import re
import sys

from pipeline.store.clickhouse import connect

# Statements that answer with rows get the output format; the rest (INSERT ... VALUES, DDL)
# run as commands, since a FORMAT clause appended to them would be read as their data.
# This only picks how to send a statement: the operator may run anything.
ANSWERS = re.compile(r"^\s*(\(|SELECT|WITH|SHOW|DESC|DESCRIBE|EXPLAIN|EXISTS|CHECK)\b", re.I)

PROMPT, MORE = "sophra :) ", "      :-] "


def run_one(client, query: str, fmt: str, out=sys.stdout) -> bool:
    """Print the answer of one statement; False (and the engine's message) when it failed."""
    try:
        if not ANSWERS.match(query):
            client.command(query)
            return True
        answer = client.raw_query(query, fmt=fmt)
    except Exception as exc:  # the engine's error, as it words it
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return False
    out.write(answer.decode(errors="replace"))
    out.flush()
    return True


def statements(lines):
    """Statements from lines of input, each ended by a `;` at the end of a line."""
    pending = []
    for line in lines:
        pending.append(line.rstrip("\n"))
        if line.rstrip().endswith(";"):
            statement = "\n".join(pending).strip().rstrip(";").strip()
            pending = []
            if statement:
                yield statement
    rest = "\n".join(pending).strip()
    if rest:
        yield rest


def _prompted_lines():
    try:
        import readline  # noqa: F401  (history and line editing for input())
    except ImportError:
        pass
    more = False
    while True:
        try:
            line = input(MORE if more else PROMPT)
        except EOFError:
            print()
            return
        if not more and line.strip().lower() in ("exit", "quit", "\\q"):
            return
        more = not line.rstrip().endswith(";") and bool(line.strip() or more)
        yield line + "\n"


def main(dsn: str, database: str, query: str | None, fmt: str | None) -> int:
    client = connect(dsn, database)
    if query is not None:
        return 0 if run_one(client, query, fmt or "TabSeparatedWithNames") else 1
    interactive = sys.stdin.isatty()
    lines = _prompted_lines() if interactive else sys.stdin
    ok = True
    for statement in statements(lines):
        ok = run_one(client, statement, fmt or ("PrettyCompact" if interactive else "TabSeparatedWithNames")) and ok
    return 0 if ok or interactive else 1
