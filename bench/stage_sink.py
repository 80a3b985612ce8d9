"""Sink stage (issue 13): rows/s the ClickHouse sink lands from a pre-loaded topic, beside
clickhouse-connect inserting the same rows from memory into the same tables.

1. Two topic sets under fresh prefixes are pre-loaded: app.metrics with `app_metric_batch`
   records of 1,000 points (60 applications of 3 tenants, 4 metrics; each record is 10 s
   of one application, points 10 ms apart, so each rollup bucket gathers points from
   several records, as live traffic does), and agent.vitals (1,000 agents, one record
   per vital, a numeric custom metric in the metadata so the vitals rollups' JSON path
   runs). Values are multiples of a power of 2 (token use over a limit of 6,400 too), so
   every sum is exact in any order.
2. **sink**: `pipeline.sink.consumer.Sink` (what `sophra sink` runs), in this process on a
   thread while the main thread only waits, with a fresh consumer group and a freshly
   migrated database in a chdb data folder of its own. Timed from the group's assignment
   (start-up excluded) until it has inserted and committed every row.
3. **baseline**: clickhouse-connect, the same client the sink uses, inserting the same rows
   (decoded before the clock starts, with the Kafka partition and offset each record got)
   into another freshly migrated database (same migrations, so the same materialized
   views fire), in batches of the sink's size with the same insert settings. Both the
   row-oriented and the column-oriented `insert` are timed; the faster is the baseline.
4. Checks (else exit 1): each database holds exactly the rows produced (count per tenant and
   checksums of ids, values, timestamps and offsets), every rollup counts and sums them,
   and the sink's rollups equal the baseline's bucket by bucket (count, sum, min, max,
   quantiles).

Subject and baseline alternate, --rounds times (2; 1 with --quick); the best of each is
reported. Rows: app metric rows/s against the baseline (target >= 0.7x), the absolute app
metric rows/s (target >= 300,000), and agent vital rows/s against the baseline (>= 0.7x).

Usage: python bench/stage_sink.py [--bootstrap HOST:PORT] [--quick] [--json OUT]
           [--points 2000000] [--vitals 200000] [--rounds 2]
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage import Row, Target, arguments, broker, produce, write_rows  # noqa: E402

from confluent_kafka import Producer  # noqa: E402

from pipeline.producer import producer_config  # noqa: E402
from pipeline.sink.consumer import Sink  # noqa: E402
from pipeline.sink.steps import Batch, insert_batch, to_rows  # noqa: E402
from pipeline.store.clickhouse import connect  # noqa: E402
from pipeline.store.migrate import migrate  # noqa: E402
from pipeline.store.schema import AGENT_VITALS_ROLLUPS, APP_METRICS_ROLLUPS  # noqa: E402
from pipeline.topics import AGENT_VITALS, APP_METRICS, ensure_topics, entity_key  # noqa: E402
from schemas import codec  # noqa: E402
from sophra.settings import Settings  # noqa: E402

TENANTS = ("t_bench_a", "t_bench_b", "t_bench_c")
APPS = 60
METRICS = ("response_time", "error_rate", "throughput", "queue_depth")
POINTS = 1000  # per record, as a /v1 batch of 1,000 points
AGENTS = 1000
FIRST_ID = 1_000_000


class BenchError(RuntimeError):
    pass


# -- the data ---------------------------------------------------------------------------
def metric_records(n_records: int, t0: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n_records):
        tenant, app = TENANTS[i % len(TENANTS)], f"app_{i % APPS:03d}"
        start = t0 + (i // APPS) * POINTS * 10
        points = [{"metric": METRICS[j % 4], "value": ((i * 7919 + j * 104_729) % 4000) / 4,
                   "timestamp": start + j * 10} for j in range(POINTS)]
        record = {"tenant": tenant, "application_id": app, "id": FIRST_ID + i, "received_at": start + POINTS * 10,
                  "points": points}
        out.append((entity_key(tenant, app), codec.encode("app_metric_batch", record)))
    return out


def vital_records(n: int, t0: int) -> list[tuple[bytes, bytes]]:
    out = []
    for j in range(n):
        a = j % AGENTS
        tenant, agent = TENANTS[a % len(TENANTS)], f"agent-{a:04d}"
        record = {"tenant": tenant, "id": FIRST_ID + j, "agent_id": agent, "agent_name": f"Agent {a}" if j < AGENTS else None,
                  "token_consumption": 1000 + (j * 37) % 5000, "token_limit": 6400,
                  "hallucination_rate": ((j * 13) % 40) / 4096, "loop_frequency": (j * 7) % 12,
                  "directive_conflicts": j % 3, "overall_health": ("green", "amber", "red")[j % 3],
                  "metadata": f'{{"tasksCompleted": {j % 20}, "model": "m{j % 3}"}}',
                  "recorded_at": t0 + (j // AGENTS) * 30_000 + a}
        out.append((entity_key(tenant, agent), codec.encode("agent_vital", record)))
    return out


def preload(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> list[tuple[bytes, int, int]]:
    """Produce the records; returns (value, partition, offset) of each, in offset order."""
    producer = Producer(producer_config(bootstrap))
    landed, errors = [], []

    def delivered(err, msg):
        if err is not None:
            errors.append(err)
        else:
            landed.append((msg.value(), msg.partition(), msg.offset()))

    for key, value in records:
        produce(producer, topic, key, value, delivered)
        producer.poll(0)
    if producer.flush(120) or errors or len(landed) != len(records):
        raise BenchError(f"pre-load of {topic} failed: {errors[:3] or 'records left undelivered'}")
    landed.sort(key=lambda r: (r[1], r[2]))
    return landed


# -- the two ways in ---------------------------------------------------------------------
def in_memory_batches(messages: list[tuple[bytes, int, int]], topic: str, batch_rows: int) -> list[Batch]:
    """The rows of every message, decoded as the sink decodes them, in batches of the
    sink's size (partitions interleaved, as the sink consumes them)."""
    by_partition: dict[int, list] = {}
    for m in messages:
        by_partition.setdefault(m[1], []).append(m)
    order = [m for group in zip(*by_partition.values()) for m in group]  # round-robin (equal lengths not needed below)
    seen = {id(m) for m in order}
    order += [m for m in messages if id(m) not in seen]
    batches, batch = [], Batch()
    for value, partition, offset in order:
        batch.track(topic, partition, offset)
        rows = to_rows(value, partition, offset)
        if not hasattr(rows, "table"):
            raise BenchError(f"a pre-loaded record does not decode: {rows}")
        batch.add(rows)
        if batch.size >= batch_rows:
            batches.append(batch)
            batch = Batch()
    if batch.size:
        batches.append(batch)
    return batches


def insert_from_memory(client, batches: list[Batch], column_oriented: bool) -> float:
    """clickhouse-connect inserting the prepared rows with the same settings and dedup
    token as insert_batch, the column types given (no DESCRIBE per insert); the seconds
    it took."""
    prepared = []
    for batch in batches:
        for name, rows in batch_rows(batch).items():
            data = [list(col) for col in zip(*rows)] if column_oriented else [list(r) for r in rows]
            table = batch.tables[name]
            prepared.append((name, data, table.column_names, [t for _, t in table.columns], batch.dedup_token(name)))
    t0 = time.perf_counter()
    for name, data, columns, types, token in prepared:
        client.insert(name, data, column_names=columns, column_type_names=types, column_oriented=column_oriented,
                      settings={"insert_deduplication_token": token,
                                "deduplicate_blocks_in_dependent_materialized_views": 1})
    return time.perf_counter() - t0


def batch_rows(batch: Batch) -> dict[str, list[tuple]]:
    """A batch's rows per table, row by row."""
    if isinstance(batch.rows, dict):  # the sink before its batches kept columns
        return batch.rows
    return {name: batch.rows(name) for name in batch.columns}


def run_sink(settings: Settings, bootstrap: str, expected_rows: int, timeout: float) -> float:
    migrate(settings.clickhouse_dsn, settings.clickhouse_database)
    sink = Sink(settings, bootstrap).start()
    try:
        if not sink.wait_ready(120):
            raise BenchError(f"the sink did not join its group ({sink.failed or 'no assignment in 120 s'})")
        t0 = time.perf_counter()
        deadline = t0 + timeout
        while sink.inserted_rows < expected_rows:
            if not sink.alive:
                raise BenchError(f"the sink stopped: {sink.failed}")
            if time.perf_counter() > deadline:
                raise BenchError(f"the sink landed {sink.inserted_rows:,} of {expected_rows:,} rows in {timeout:.0f} s")
            time.sleep(0.005)
        elapsed = time.perf_counter() - t0
    finally:
        sink.stop()
    if sink.inserted_rows != expected_rows or sink.dead_letters or sink.skipped:
        raise BenchError(f"the sink inserted {sink.inserted_rows:,} rows (expected {expected_rows:,}), "
                         f"{sink.dead_letters} dead letters, {sink.skipped} skipped")
    return elapsed


# -- checks ------------------------------------------------------------------------------
METRIC_SUMS = ("SELECT tenant, count(), sum(value), sum(toUnixTimestamp64Milli(timestamp)), sum(batch_id * 1000 + idx), "
               "sum(kafka_offset * 8 + kafka_partition), uniqExact(application_id, metric) "
               "FROM app_metrics GROUP BY tenant ORDER BY tenant")
VITAL_SUMS = ("SELECT tenant, count(), sum(id), sum(token_consumption), sum(loop_frequency), sum(hallucination_rate), "
              "sum(kafka_offset * 8 + kafka_partition), uniqExact(agent_id) FROM agent_vitals GROUP BY tenant ORDER BY tenant")
ROLLUP = ("SELECT tenant, {subject}, metric, bucket, sum(count), sum(sum), min(min), max(max), "
          "quantilesExactInclusiveMerge(0.5, 0.95, 0.99)(quantiles) FROM {table} "
          "GROUP BY tenant, {subject}, metric, bucket ORDER BY tenant, {subject}, metric, bucket")


def expected_sums(batches: list[Batch], table: str) -> list[tuple]:
    """What METRIC_SUMS / VITAL_SUMS must give, computed from the in-memory rows."""
    acc: dict[str, list] = {}
    for batch in batches:
        for row in batch_rows(batch).get(table, []):
            if table == "app_metrics":
                tenant, app, metric, ts, value, batch_id, idx, partition, offset = row
                a = acc.setdefault(tenant, [0, 0.0, 0, 0, 0, set()])
                a[0] += 1; a[1] += value; a[2] += ts; a[3] += batch_id * 1000 + idx; a[4] += offset * 8 + partition
                a[5].add((app, metric))
            else:
                (tenant, id_, agent, _name, tokens, _limit, halluc, loops, _conf, _health, _meta, _at,
                 partition, offset) = row
                a = acc.setdefault(tenant, [0, 0, 0, 0, 0.0, 0, set()])
                a[0] += 1; a[1] += id_; a[2] += tokens; a[3] += loops; a[4] += halluc; a[5] += offset * 8 + partition
                a[6].add(agent)
    return [(t, *a[:-1], len(a[-1])) for t, a in sorted(acc.items())]


def check_landed(client, table: str, want: list[tuple], what: str) -> None:
    got = [tuple(r) for r in client.query(METRIC_SUMS if table == "app_metrics" else VITAL_SUMS).result_rows]
    if got != want:
        raise BenchError(f"{what}: {table} holds {got}, expected {want}")
    rollups = APP_METRICS_ROLLUPS if table == "app_metrics" else AGENT_VITALS_ROLLUPS
    points_per_row = 1 if table == "app_metrics" else 6  # 5 built-in vitals metrics + tasksCompleted
    rows = sum(w[1] for w in want)
    for _, rollup in rollups.values():
        count = client.query(f"SELECT sum(count) FROM {rollup.name}").result_rows[0][0]
        if count != rows * points_per_row:
            raise BenchError(f"{what}: {rollup.name} counts {count:,} points, expected {rows * points_per_row:,}")


def check_same_rollups(a, b, table: str) -> None:
    rollups = APP_METRICS_ROLLUPS if table == "app_metrics" else AGENT_VITALS_ROLLUPS
    subject = "application_id" if table == "app_metrics" else "agent_id"
    for _, rollup in rollups.values():
        sql = ROLLUP.format(subject=subject, table=rollup.name)
        if a.query(sql).result_rows != b.query(sql).result_rows:
            raise BenchError(f"{rollup.name}: the sink's buckets differ from the baseline's")


# -- main ----------------------------------------------------------------------------------
# The same shape of rows made by the engine itself: no Python, no client serialization.
ENGINE_ROWS = ("SELECT concat('t_bench_', toString(number % 3)), concat('app-', toString(number % 60)), "
               "concat('m', toString(number % 4)), toDateTime64({t0} + number * 10, 3, 'UTC'), "
               "toFloat64(number % 1024), intDiv(number, 1000), number % 1000, 0, intDiv(number, 1000) "
               "FROM numbers({first}, {n})")


def engine_alone(dsn: str, db: str, rows: int, batch_rows: int, t0_ms: int) -> float:
    """app_metrics rows/s of `INSERT ... SELECT FROM numbers()` in the sink's batch size into a
    freshly migrated database: what the engine and the four rollup views take with no Python
    in the way, the ceiling for any client on this machine."""
    migrate(dsn, db)
    client = connect(dsn, db)
    t = time.perf_counter()
    for first in range(0, rows, batch_rows):
        client.command("INSERT INTO app_metrics " + ENGINE_ROWS.format(
            t0=t0_ms // 1000, first=first, n=min(batch_rows, rows - first)))
    took = time.perf_counter() - t
    landed = client.query("SELECT count() FROM app_metrics").result_rows[0][0]
    if landed != rows:
        raise BenchError(f"the engine-alone insert landed {landed:,} rows of {rows:,}")
    return rows / took


def measure(kind: str, bootstrap: str, dsn: str, data_dir: Path, rounds: int, messages, topic: str, prefix: str,
            timeout: float) -> dict:
    table = "app_metrics" if kind == "metrics" else "agent_vitals"
    base_settings = Settings(data_dir=data_dir, kafka_bootstrap_servers=bootstrap, clickhouse_url=dsn,
                             clickhouse_database="unused", topic_prefix=prefix)
    batches = in_memory_batches(messages, topic, base_settings.sink_batch_rows)
    want = expected_sums(batches, table)
    rows = sum(w[1] for w in want)
    results = {"rows": rows, "sink": [], "row": [], "column": [], "engine": []}
    last_sink = last_base = None
    for r in range(rounds):
        for variant in ("column", "row"):
            db = f"base_{kind}_{variant}_{r}"
            migrate(dsn, db)
            client = connect(dsn, db)
            results[variant].append(rows / insert_from_memory(client, batches, column_oriented=variant == "column"))
            check_landed(client, table, want, f"baseline ({variant}-oriented)")
            last_base = client
        db = f"sink_{kind}_{r}"
        settings = base_settings.model_copy(update={"clickhouse_database": db,
                                                    "sink_group": f"bench-sink-{kind}-{uuid.uuid4().hex[:8]}"})
        results["sink"].append(rows / run_sink(settings, bootstrap, rows, timeout))
        last_sink = connect(dsn, db)
        check_landed(last_sink, table, want, "sink")
        if kind == "metrics":
            results["engine"].append(engine_alone(dsn, f"engine_{kind}_{r}", rows, base_settings.sink_batch_rows,
                                                  time.time_ns() // 1_000_000))
        print(f"  {kind} round {r + 1}: sink {results['sink'][-1]:,.0f} rows/s, clickhouse-connect column-oriented "
              f"{results['column'][-1]:,.0f}, row-oriented {results['row'][-1]:,.0f}"
              + (f", the engine alone {results['engine'][-1]:,.0f}" if results["engine"] else ""), flush=True)
    check_same_rollups(last_sink, last_base, table)
    return results


def main() -> int:
    ap = arguments(__doc__)
    ap.add_argument("--points", type=int, help="app metric points to pre-load (default 2,000,000; --quick 500,000)")
    ap.add_argument("--vitals", type=int, help="vitals to pre-load (default 200,000; --quick 50,000)")
    ap.add_argument("--rounds", type=int, help="sink/baseline alternations (default 2; --quick 1)")
    ap.add_argument("--timeout", type=float, default=240, help="longest a sink run may take, seconds")
    args = ap.parse_args()
    n_points = args.points or (500_000 if args.quick else 2_000_000)
    n_vitals = args.vitals or (50_000 if args.quick else 200_000)
    rounds = args.rounds or (1 if args.quick else 2)
    t0 = (time.time_ns() // 1_000_000 // 60_000 - 12 * 60) * 60_000  # 12 h ago, on a minute

    tmp = Path(tempfile.mkdtemp(prefix="sophra-bench-sink-"))
    try:
        with broker(args.bootstrap) as bootstrap:
            run = uuid.uuid4().hex[:8]
            prefix_m, prefix_v = f"bench-sink-{run}-m.", f"bench-sink-{run}-v."
            ensure_topics(bootstrap, prefix_m)
            ensure_topics(bootstrap, prefix_v)
            metrics_topic, vitals_topic = prefix_m + APP_METRICS.name, prefix_v + AGENT_VITALS.name
            t = time.perf_counter()
            metrics = preload(bootstrap, metrics_topic, metric_records(n_points // POINTS, t0))
            vitals = preload(bootstrap, vitals_topic, vital_records(n_vitals, t0))
            print(f"  pre-loaded {len(metrics):,} metric batches ({len(metrics) * POINTS:,} points) and "
                  f"{len(vitals):,} vitals in {time.perf_counter() - t:.1f} s", flush=True)
            dsn = f"chdb://{tmp / 'clickhouse'}"
            m = measure("metrics", bootstrap, dsn, tmp, rounds, metrics, metrics_topic, prefix_m, args.timeout)
            v = measure("vitals", bootstrap, dsn, tmp, rounds, vitals, vitals_topic, prefix_v, args.timeout)
    except BenchError as exc:
        print(f"stage_sink: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    batch_rows = Settings().sink_batch_rows
    rows = []
    for kind, res, unit in (("metrics", m, "app metric rows/s"), ("vitals", v, "agent vital rows/s")):
        best_col, best_row = max(res["column"]), max(res["row"])
        base_name = "column" if best_col >= best_row else "row"
        base = max(best_col, best_row)
        sink = max(res["sink"])
        what = ("app_metric_batch records of 1,000 points (60 apps, 4 metrics, 3 tenants)" if kind == "metrics"
                else "agent_vital records, one row each (1,000 agents)")
        note = (f"{res['rows']:,} rows from {what}; sink = pipeline.sink Sink from a pre-loaded topic "
                f"(group assignment to last commit) vs clickhouse-connect {base_name}-oriented insert of the same "
                f"decoded rows from memory, same migrations and views, same batches ({batch_rows:,} rows) and "
                f"insert settings; best of {len(res['sink'])} alternating rounds; sink "
                f"{', '.join(f'{x:,.0f}' for x in res['sink'])}, column-oriented "
                f"{', '.join(f'{x:,.0f}' for x in res['column'])}, row-oriented "
                f"{', '.join(f'{x:,.0f}' for x in res['row'])} rows/s; landed rows and rollups checked")
        stage = "sink into ClickHouse" + ("" if kind == "metrics" else " (agent vitals)")
        rows.append(Row(stage, "rows/s vs clickhouse-connect", sink, unit,
                        baseline=f"clickhouse-connect {base_name}-oriented insert from memory", baseline_value=base,
                        target=Target(">=", 0.7, ratio=True), note=note))
        if kind == "metrics":
            rows.append(Row(stage, "app metric rows/s", sink, unit, target=Target(">=", 300_000),
                            note="the same sink runs as the row above"))
            rows.append(Row(stage, "app metric rows/s, the engine alone (reported)", max(res["engine"]), unit,
                            note=f"INSERT INTO app_metrics SELECT ... FROM numbers() in batches of {batch_rows:,} rows "
                                 f"into a freshly migrated database (same rollup views), no Python in the way; "
                                 f"rounds {', '.join(f'{x:,.0f}' for x in res['engine'])}: the ceiling of any "
                                 f"client on this machine"))
    write_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
