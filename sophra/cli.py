"""`sophra`: one command for every process of the platform.

    sophra up       the embedded default: Kafka broker, worker, notifier, api + in-process sink
    sophra api      the api (production: one of many replicas)
    sophra worker   the Faust worker
    sophra sink     the ClickHouse sink
    sophra notifier deliver alerts: email, Slack, webhooks
    sophra migrate  apply ClickHouse migrations
    sophra replay   recompute what the worker derived (ARI, deployments, alerts) after a rule change
    sophra rebuild  land the record topics again into fresh ClickHouse tables and swap them in
    sophra plan     set an account's plan (standard, pro, enterprise): its /v1 hourly quota
    sophra account  create an account, or a new key of one (SOPHRA_SIGNUP=closed; a lost key)
    sophra kafka    fetch the broker jars, or run the broker alone
"""
import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import time

from .settings import Settings, env_help

log = logging.getLogger("sophra")


def _settings(args) -> Settings:
    overrides = {k: v for k, v in {
        "data_dir": args.data_dir, "host": getattr(args, "host", None), "port": getattr(args, "port", None),
        "kafka_bootstrap_servers": args.kafka, "clickhouse_url": args.clickhouse_url,
    }.items() if v is not None}
    return Settings(**overrides)


def _bootstrap(settings: Settings) -> str:
    if not settings.kafka_bootstrap_servers:
        raise SystemExit("KAFKA_BOOTSTRAP_SERVERS (or --kafka) is required; `sophra up` starts a local broker")
    return settings.kafka_bootstrap_servers


async def _serve(settings: Settings, bootstrap: str, *, run_sink: bool, announce=None) -> int:
    """Run the api until a signal (exit 0), or until its in-process sink gave up (exit 1:
    acknowledging writes that nothing lands would be worse than not answering)."""
    from api.main import create_app
    from api.server import http_server

    app = create_app(settings, bootstrap, run_sink=run_sink)
    server = http_server(app, settings.host, settings.port)
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    # Everything start-up built (app, schemas, tables, clients) lives as long as the process:
    # out of the collector's sight, a full collection no longer walks it (250-800 ms each,
    # the api's p99 under load, before this).
    gc.freeze()
    if server.started and announce:
        announce()
    failed = 0
    while not serving.done():
        sink = getattr(app.state, "sink", None)
        if server.started and sink is not None and not sink.alive and not server.should_exit:
            print(f"The ClickHouse sink stopped ({sink.failed or 'its thread ended'}); the api exits so that "
                  "no write is acknowledged that nothing lands", file=sys.stderr, flush=True)
            failed, server.should_exit = 1, True
        await asyncio.wait([serving], timeout=0.2)
    serving.result()
    return failed or (0 if server.started else 1)


def cmd_up(args) -> int:
    """The embedded default. The broker (unless KAFKA_BOOTSTRAP_SERVERS), the worker and the
    notifier are children that a Supervisor restarts when they die; the api and its sink
    run in this process, which exits non-zero (stopping every child) if the sink gives up."""
    from deploy.local_kafka import LocalKafka, fetch
    from pipeline.topics import ensure_topics

    from .processes import Supervisor, spawn, terminate, up_worker_instance_id

    t0 = time.monotonic()
    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor()
    try:
        bootstrap = settings.kafka_bootstrap_servers
        if not bootstrap:
            fetch()
            kafka = LocalKafka(settings.data_dir / "kafka", port=settings.kafka_port)

            def start_kafka():
                kafka.start()
                # a restarted broker must come back where every client looks for it
                kafka.requested_port, kafka.requested_controller_port = kafka.port, kafka.controller_port

            supervisor.run("broker", start_kafka, kafka.stop, lambda: kafka.process)
            bootstrap = kafka.bootstrap_servers
        ensure_topics(bootstrap, settings.topic_prefix)  # before the worker, whose tables check partitions
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SOPHRA_DATA_DIR": str(settings.data_dir),
               # one worker, restarted in place: it rejoins its group as itself (no 60 s wait)
               "SOPHRA_WORKER_INSTANCE_ID": settings.worker_instance_id or up_worker_instance_id(settings.data_dir)}
        for name in ("worker", "notifier"):
            supervisor.run(name, *_child(name, env, settings.data_dir / f"{name}.log", spawn, terminate))

        def announce():
            print(f"Sophra is up at http://{settings.host}:{settings.port}  "
                  f"(kafka {bootstrap}, clickhouse {settings.clickhouse_dsn}; "
                  f"started in {time.monotonic() - t0:.1f}s; Ctrl-C stops everything)", flush=True)
            if not settings.smtp_url:
                print("Email alerts are not delivered until SOPHRA_SMTP_URL is set, e.g. "
                      "SOPHRA_SMTP_URL=smtp://user:pass@smtp.example.com:587 make run "
                      "(each attempt is recorded as not delivered meanwhile)", flush=True)

        from api.server import run

        return run(_serve(settings, bootstrap, run_sink=True, announce=announce))
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.stop()  # in dependency order: the worker still needs the broker to commit
        print("Sophra stopped.", flush=True)


def _child(name: str, env: dict, log_path, spawn, terminate):
    """(start, stop, process) of `sophra <name>` as a child of `sophra up`, output to log_path."""
    current = {}

    def start():
        with open(log_path, "ab") as out:
            # Orphaned by a crashed `sophra up`, a worker or notifier shutting down gracefully
            # can spend minutes retrying a broker that died with it, and then meet the next
            # `sophra up`'s broker on the same port. Both are safe under kill -9 (they
            # re-derive and skip by offset), so that is how they go.
            current["proc"] = spawn([sys.executable, "-m", "sophra", name], stdout=out, env=env,
                                    death_signal=signal.SIGKILL)

    return start, lambda: terminate(current.get("proc")), lambda: current.get("proc")


def cmd_api(args) -> int:
    settings = _settings(args)
    try:
        from api.server import run

        return run(_serve(settings, _bootstrap(settings), run_sink=args.with_sink,
                          announce=lambda: print(f"api at http://{settings.host}:{settings.port}", flush=True)))
    except KeyboardInterrupt:
        return 0


def cmd_worker(args) -> int:
    from pipeline.worker.app import run

    settings = _settings(args)
    run(settings, _bootstrap(settings), loglevel=args.loglevel)
    return 0


def cmd_notifier(args) -> int:
    from pipeline.notifier.service import run

    settings = _settings(args)
    run(settings, _bootstrap(settings))
    return 0


def cmd_sink(args) -> int:
    from pipeline.sink.consumer import Sink
    from pipeline.store.migrate import migrate
    from pipeline.topics import ensure_topics

    settings = _settings(args)
    bootstrap = _bootstrap(settings)
    ensure_topics(bootstrap, settings.topic_prefix)
    migrate(settings.clickhouse_dsn, settings.clickhouse_database)
    sink = Sink(settings, bootstrap)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sink.stop(timeout=0))
    sink.run()
    return 1 if sink.failed else 0  # gave up: exit non-zero, for whatever restarts it


def cmd_migrate(args) -> int:
    from pipeline.store.migrate import migrate

    settings = _settings(args)
    applied = migrate(settings.clickhouse_dsn, settings.clickhouse_database)
    print("applied: " + ", ".join(applied) if applied else "schema is up to date")
    return 0


def cmd_replay(args) -> int:
    from pipeline.history import HistoryError
    from pipeline.replay import parse_only, parse_time, run

    settings = _settings(args)
    try:
        since = parse_time(args.since)
        until = parse_time(args.until) if args.until else None
        result = run(settings, since, until, out=sys.stderr, only=parse_only(args.only))
    except (HistoryError, ValueError) as exc:
        raise SystemExit(f"sophra replay: {exc}")
    print(result.summary(), flush=True)
    return 0


def cmd_rebuild(args) -> int:
    from pipeline.history import HistoryError
    from pipeline.rebuild import run

    settings = _settings(args)
    try:
        result = run(settings, args.tables, out=sys.stderr, accept_loss=args.accept_loss)
    except HistoryError as exc:
        raise SystemExit(f"sophra rebuild: {exc}")
    print(result.summary(), flush=True)
    return 0


def cmd_sql(args) -> int:
    from .sql_shell import main

    settings = _settings(args)
    return main(settings.clickhouse_dsn, settings.clickhouse_database, args.execute, args.format)


def _operator_bootstrap(settings: Settings, command: str) -> str:
    """Kafka for an operator command: the configured one, or the embedded broker of a
    running `sophra up`, found in its data folder."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    from deploy.local_kafka import _read_properties

    props = settings.data_dir / "kafka" / "server.properties"
    advertised = _read_properties(props).get("advertised.listeners", "") if props.is_file() else ""
    if not advertised.startswith("PLAINTEXT://"):
        raise SystemExit(f"sophra {command}: set KAFKA_BOOTSTRAP_SERVERS (or --kafka), or run it beside `sophra up`")
    return advertised.removeprefix("PLAINTEXT://").split(",")[0]


def cmd_plan(args) -> int:
    from confluent_kafka import KafkaException

    from pipeline.quota import describe_limit, limit_of, set_plan
    from pipeline.topics import ACCOUNT_PLANS, ensure_topics

    settings = _settings(args)
    bootstrap = _operator_bootstrap(settings, "plan")
    try:
        ensure_topics(bootstrap, settings.topic_prefix, timeout=10)
        tenant, _ = set_plan(bootstrap, settings.topic(ACCOUNT_PLANS.name), args.email, args.plan, timeout=10)
    except (ValueError, RuntimeError, KafkaException) as exc:
        raise SystemExit(f"sophra plan: {exc} (Kafka at {bootstrap})")
    print(f"{args.email.strip().lower()} ({tenant}) is on the {args.plan} plan: "
          f"{describe_limit(limit_of(args.plan))}", flush=True)
    return 0


def cmd_account(args) -> int:
    from confluent_kafka import KafkaException

    from pipeline.signup import AccountError, create_key_as_operator
    from pipeline.topics import ACCOUNT_KEYS, ensure_topics

    settings = _settings(args)
    bootstrap = _operator_bootstrap(settings, "account")
    try:
        ensure_topics(bootstrap, settings.topic_prefix, timeout=10)
        key, tenant, new = create_key_as_operator(bootstrap, settings.topic(ACCOUNT_KEYS.name), args.email,
                                                  timeout=30)
    except (AccountError, KafkaException) as exc:
        raise SystemExit(f"sophra account: {exc} (Kafka at {bootstrap})")
    what = "created; its first key" if new else "exists; a new key"
    print(f"{args.email.strip().lower()} ({tenant}) {what} (shown once, only its hash is stored):\n{key}", flush=True)
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="data folder (SOPHRA_DATA_DIR)")
    common.add_argument("--kafka", metavar="BOOTSTRAP", help="Kafka bootstrap servers (KAFKA_BOOTSTRAP_SERVERS)")
    common.add_argument("--clickhouse-url", help="ClickHouse DSN (CLICKHOUSE_URL)")
    http = argparse.ArgumentParser(add_help=False)
    http.add_argument("--host", help="listen address (SOPHRA_HOST)")
    http.add_argument("--port", type=int, help="listen port (SOPHRA_PORT)")

    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="sophra", description=__doc__, epilog=env_help(), formatter_class=fmt)
    sub = p.add_subparsers(dest="command", required=True)
    for name, fn, parents, text in [
        ("up", cmd_up, [common, http], "run everything on this machine (embedded default)"),
        ("api", cmd_api, [common, http], "run the api"),
        ("worker", cmd_worker, [common], "run the Faust worker"),
        ("sink", cmd_sink, [common], "run the ClickHouse sink"),
        ("notifier", cmd_notifier, [common], "deliver alerts and ARI notifications (email, Slack, webhooks)"),
        ("migrate", cmd_migrate, [common], "apply ClickHouse migrations"),
        ("replay", cmd_replay, [common], "recompute what the worker derived (ARI, deployment verdicts, alert "
                                         "transitions) after a rule change (stop the worker first)"),
        ("rebuild", cmd_rebuild, [common], "land the record topics again into fresh ClickHouse tables and swap them "
                                           "in (stop the sink first; README \"Rebuild\")"),
        ("sql", cmd_sql, [common], "SQL on the engine across every account: -e QUERY, or a shell (docs/sql.md)"),
        ("plan", cmd_plan, [common], "set an account's plan: its /v1 requests per hour (docs/quota.md)"),
        ("account", cmd_account, [common], "create an account and print its first key, or a new key of an "
                                           "existing one (README \"Keys\")"),
    ]:
        sp = sub.add_parser(name, parents=parents, help=text, description=text, epilog=env_help(), formatter_class=fmt)
        sp.set_defaults(fn=fn)
    sub.choices["api"].add_argument("--with-sink", action="store_true", help="also run the sink in this process")
    replay = sub.choices["replay"]
    replay.add_argument("--from", dest="since", required=True, metavar="ISO",
                        help="replace what was derived at or after this ISO 8601 time (no zone = UTC): "
                             "interventions opened, deployments started, alert transitions")
    replay.add_argument("--to", dest="until", metavar="ISO",
                        help="replace only what was derived before this time (default: no end)")
    replay.add_argument("--only", action="append", metavar="PART",
                        help="recompute only these: ari, deployments, alerts (repeatable or comma-separated; "
                             "default: all)")
    rebuild = sub.choices["rebuild"]
    rebuild.add_argument("--tables", nargs="+", metavar="TABLE",
                         help="only these tables the sink lands (default: all of them, e.g. app_metrics, "
                              "agent_vitals, agent_events); the tables their views feed (rollups, *_landed, "
                              "agent_latest, agent_names) are rebuilt with them")
    rebuild.add_argument("--accept-loss", action="store_true",
                         help="rebuild although retention dropped records whose rows the current tables hold: "
                              "those rows will be missing from the new tables (the replaced database keeps them)")
    sql = sub.choices["sql"]
    sql.add_argument("-e", "--execute", metavar="QUERY", help="run this one query and exit (exit 1 if it fails)")
    sql.add_argument("--format", help="any of the engine's output formats (default: PrettyCompact in the shell, "
                                      "TabSeparatedWithNames otherwise)")
    from pipeline.quota import PLANS

    plan = sub.choices["plan"]
    plan.add_argument("email", help="the account's email")
    plan.add_argument("plan", choices=PLANS,
                      help="standard: 1,000 requests/hour per account; pro: 10,000; enterprise: unlimited")
    account = sub.choices["account"]
    account.add_argument("action", choices=["create"], help="create: a full key (and the account if it has none)")
    account.add_argument("email", help="the account's email")
    sub.choices["worker"].add_argument("--loglevel", default="warn", choices=["crit", "error", "warn", "info", "debug"])
    # Listed for --help only: main() hands `sophra kafka ...` to the broker runner's own parser.
    sub.add_parser("kafka", help="fetch the Kafka jars or run the local broker alone (see `sophra kafka -h`)")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("clickhouse_connect").setLevel(logging.WARNING)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["kafka"]:
        from deploy.local_kafka import main as kafka_main

        return kafka_main(argv[1:]) or 0
    args = parser().parse_args(argv)
    return args.fn(args)
