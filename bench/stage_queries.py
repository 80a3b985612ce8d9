"""Queries stage (issue 13): `GET /v1/applications/{id}/metrics` at 1m x 24 h and 1h x 30 d
over 10 M raw points, beside the same SQL run directly on the engine.

1. The api (`api.main.create_app`, no sink) is served by uvicorn (api/server.py's settings) on a loopback port in
   this process, on a fresh topic prefix and a chdb data folder of its own. An account is
   put on the enterprise plan (`pipeline.quota.set_plan`, so the hourly quota never
   refuses the bench) and gets a key (POST /api/keys); one application is created
   (POST /v1/applications).
2. 10 M raw points go straight into app_metrics with one `INSERT ... SELECT FROM numbers()`
   per group, so the materialized views fill every rollup as the sink's inserts would:
   8 M for that application (response_time, error_rate, throughput, evenly over the 30
   days before the last full hour) and 2 M of noise: other applications of the same
   account and other accounts with the same application id, at the same times, so the
   tenant and application filters both have work to do. The bench then waits (up to
   60 s) for the background merges to end.
3. For each query, 3 warm-up rounds, then --requests rounds (50; 20 with --quick) that
   alternate: one GET through the api (httpx, keep-alive, timed to the last byte of the
   body), then the SQL the api runs for it (`api.routes.app_metrics.series_sql` with the
   parameters `api.series` binds) on a clickhouse-connect client of the same engine
   (timed to its result rows). stat=mean, metric response_time.
4. Check (else exit 1): every bucket of the api's answer equals the direct query's value
   (null where it has none), and there are as many buckets as the range holds.

Rows per query: the api's p50 in ms (target <= 20) and the api's p50 against the direct
query's (target <= 1.5x).

Usage: python bench/stage_queries.py [--bootstrap HOST:PORT] [--quick] [--json OUT]
           [--points 10000000] [--requests 50]
"""
from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage import Row, Target, arguments, broker, free_port, write_rows  # noqa: E402

import httpx  # noqa: E402

from api import series  # noqa: E402
from api.main import create_app  # noqa: E402
from api.routes.app_metrics import series_sql  # noqa: E402
from api.server import http_server  # noqa: E402
from pipeline.quota import set_plan  # noqa: E402
from pipeline.store.clickhouse import connect  # noqa: E402
from pipeline.topics import ACCOUNT_PLANS, ensure_topics  # noqa: E402
from sophra.settings import Settings  # noqa: E402

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
QUERIES = (("1m x 24 h", "1m", DAY_MS), ("1h x 30 d", "1h", 30 * DAY_MS))

# One group of points: `n` numbers -> rows. {tenant} and {app} may be expressions of
# `number`; points are spread evenly over [start, end) in the order of `number`.
LOAD = """
INSERT INTO app_metrics (tenant, application_id, metric, timestamp, value, batch_id, idx, kafka_partition, kafka_offset)
SELECT {tenant} AS tenant, {app} AS application_id,
       ['response_time', 'error_rate', 'throughput'][modulo(number, 3) + 1] AS metric,
       fromUnixTimestamp64Milli(toInt64(%(start)s + intDiv(number * %(span)s, %(n)s)), 'UTC') AS timestamp,
       if(modulo(number, 3) = 1, modulo(cityHash64(number, %(seed)s), 1000) / 1000,
          modulo(cityHash64(number, %(seed)s), 4000) / 4) AS value,
       %(batch)s + intDiv(number, 1000) AS batch_id, modulo(number, 1000) AS idx, 4294967295 AS kafka_partition, 0 AS kafka_offset
FROM numbers(%(n)s)
"""


class BenchError(RuntimeError):
    pass


class Api:
    """The real api app on uvicorn, in a thread of this process (chdb: one process per data folder)."""

    def __init__(self, settings: Settings, bootstrap: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(settings, bootstrap, run_sink=False)
        self.server = http_server(app, "127.0.0.1", self.port)  # the settings `sophra api` serves with
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "Api":
        self.thread.start()
        deadline = time.monotonic() + 150
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise BenchError("the api did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def load(client, tenant: str, app_id: str, n_points: int, start: int, span: int) -> None:
    main_n = n_points * 8 // 10
    noise_n = n_points - main_n
    groups = [  # (tenant expression, app expression, points)
        ("%(tenant)s", "%(app)s", main_n),
        ("%(tenant)s", "concat('app_noise_', toString(modulo(number, 7)))", noise_n // 2),
        ("concat('t_other_', toString(modulo(number, 5)))", "%(app)s", noise_n - noise_n // 2),
    ]
    for seed, (tenant_sql, app_sql, n) in enumerate(groups):
        client.command(LOAD.format(tenant=tenant_sql, app=app_sql),
                       parameters={"tenant": tenant, "app": app_id, "start": start, "span": span, "n": n,
                                   "seed": seed, "batch": 10**12 * (seed + 1)})
    total = client.query("SELECT count() FROM app_metrics").result_rows[0][0]
    if total != n_points:
        raise BenchError(f"app_metrics holds {total:,} rows after the load, expected {n_points:,}")


def wait_for_merges(client, timeout: float = 60) -> float:
    t0 = time.monotonic()
    quiet_since = None
    while time.monotonic() - t0 < timeout:
        busy = client.query("SELECT count() FROM system.merges WHERE database = currentDatabase()").result_rows[0][0]
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1:
            break
        time.sleep(0.2)
    return time.monotonic() - t0


def main() -> int:
    ap = arguments(__doc__)
    ap.add_argument("--points", type=int, help="raw points to load (default 10,000,000; --quick 2,000,000)")
    ap.add_argument("--requests", type=int, help="timed requests per query and side (default 50; --quick 20)")
    args = ap.parse_args()
    n_points = args.points or (2_000_000 if args.quick else 10_000_000)
    n_requests = args.requests or (20 if args.quick else 50)

    tmp = Path(tempfile.mkdtemp(prefix="sophra-bench-queries-"))
    results = {}
    try:
        with broker(args.bootstrap) as bootstrap:
            run = uuid.uuid4().hex[:8]
            settings = Settings(data_dir=tmp, kafka_bootstrap_servers=bootstrap,
                                clickhouse_url=f"chdb://{tmp / 'clickhouse'}", clickhouse_database="bench_queries",
                                topic_prefix=f"bench-queries-{run}.", sink_group=f"bench-queries-sink-{run}")
            ensure_topics(bootstrap, settings.topic_prefix)
            email = f"bench-queries-{run}@sophra.local"
            tenant, _ = set_plan(bootstrap, settings.topic(ACCOUNT_PLANS.name), email, "enterprise")
            with Api(settings, bootstrap) as api:
                key = httpx.post(f"{api.url}/api/keys", json={"email": email}).json()["key"]
                http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
                app_id = http.post("/v1/applications", json={"name": "bench"}).json()["id"]
                client = connect(settings.clickhouse_dsn, settings.clickhouse_database)
                end = (time.time_ns() // 1_000_000) // HOUR_MS * HOUR_MS  # the last full hour
                t = time.perf_counter()
                load(client, tenant, app_id, n_points, end - 30 * DAY_MS, 30 * DAY_MS)
                loaded = time.perf_counter() - t
                merged = wait_for_merges(client)
                parts = dict(client.query("SELECT table, count() FROM system.parts WHERE database = currentDatabase() "
                                          "AND active AND table IN ('app_metrics_1m', 'app_metrics_1h') GROUP BY table"
                                          ).result_rows)
                print(f"  loaded {n_points:,} points in {loaded:.1f} s, merges settled in {merged:.1f} s; active parts "
                      f"{parts}", flush=True)

                for name, granularity, span in QUERIES:
                    params = {"metric": "response_time", "granularity": granularity, "stat": "mean",
                              "start": end - span, "end": end}
                    b = series.buckets(str(end - span), str(end), granularity, "mean")
                    sql = series_sql(granularity, "mean")
                    bound = {"tenant": tenant, "subject": app_id, "metric": "response_time",
                             "lo": b.first // 1000, "hi": b.last // 1000}
                    api_ms, direct_ms = [], []
                    for i in range(3 + n_requests):
                        t0 = time.perf_counter()
                        res = http.get(f"/v1/applications/{app_id}/metrics", params=params)
                        t1 = time.perf_counter()
                        direct = client.query(sql, parameters=bound).result_rows
                        t2 = time.perf_counter()
                        if res.status_code != 200:
                            raise BenchError(f"GET {name}: {res.status_code} {res.text[:200]}")
                        if i >= 3:
                            api_ms.append((t1 - t0) * 1000)
                            direct_ms.append((t2 - t1) * 1000)
                    data = res.json()["data"]
                    found = {t * 1000: v for t, v in direct}
                    want = [found.get(s) for s in b.starts()]
                    got = [d["value"] for d in data]
                    if len(data) != len(want) or got != want:
                        raise BenchError(f"{name}: the api's {len(data)} buckets differ from the direct query's "
                                         f"{len(want)} (first difference at "
                                         f"{next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), '?')})")
                    if sum(v is not None for v in want) < len(want) - 1:
                        raise BenchError(f"{name}: only {sum(v is not None for v in want)} of {len(want)} buckets "
                                         "have points: the load did not cover the range")
                    results[name] = (statistics.median(api_ms), statistics.median(direct_ms), len(data), api_ms,
                                     direct_ms)
                    print(f"  {name}: api p50 {results[name][0]:.1f} ms, direct p50 {results[name][1]:.1f} ms, "
                          f"{len(data)} buckets", flush=True)
                http.close()
    except BenchError as exc:
        print(f"stage_queries: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for name, (api_p50, direct_p50, buckets, api_ms, direct_ms) in results.items():
        note = (f"GET /v1/applications/{{id}}/metrics stat=mean, {buckets} buckets, over {n_points:,} raw points "
                f"(80 % this application, the rest other apps and other tenants); api = uvicorn + the real app in "
                f"this process, httpx keep-alive, to the last byte; direct = the api's SQL (series_sql) with the same "
                f"parameters on clickhouse-connect, same engine; {len(api_ms)} alternating pairs after 3 warm-ups; "
                f"api p90 {statistics.quantiles(api_ms, n=10)[-1]:.1f} ms, direct p90 "
                f"{statistics.quantiles(direct_ms, n=10)[-1]:.1f} ms; answers checked equal")
        stage = f"query {name}"
        rows.append(Row(stage, "p50 latency", api_p50, "ms", target=Target("<=", 20), note=note))
        rows.append(Row(stage, "p50 vs the direct SQL", api_p50, "ms", baseline="same SQL on the engine",
                        baseline_value=direct_p50, target=Target("<=", 1.5, ratio=True), note=note))
    write_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
