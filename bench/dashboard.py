"""Dashboard: how fast an agent's 30-day chart answers, and how fast the agents overview
of an account with 2,000 agents answers and renders, on the embedded default.

Setup: a local broker (deploy/local_kafka.py) in a temp dir with a fresh topic prefix and
`sophra api --with-sink` (the embedded default: the ClickHouse sink in the api process,
chdb data in the temp dir) as a subprocess. One account, made through the api. Vitals are
produced straight to agent.vitals with the project's codec (through the api they are
rate-limited to one per 10 s per agent and stamped with the server's clock, so history
can't be made that way); the sink lands them as it lands any vitals.

- `month-bot`: one report every --interval seconds (default 10, the fastest the api
  allows) for the last 30 days: 259,200 vitals, each with a custom metric.
- --agents agents (default 2,000), one report an hour over the last 24 hours each.

1. 30-day chart. GET /api/agents/month-bot/metrics?metric=hallucinationRate&granularity=1h
   over the last 30 days (720 buckets): --requests sequential requests after 20 warm-up
   ones, latency measured by this client (HTTP included). Then the api is stopped and
   this process opens the same chdb folder to time, side by side in one engine, the
   endpoint's rollup query and its baseline: the same hourly means computed from the raw
   agent_vitals rows (what a chart would cost without rollups). Both best-of and median
   of 20 runs each, interleaved.
2. Agents overview. GET /api/dashboard/agents (every agent with vitals, 24 h trend,
   usual interval, staleness, open interventions: four queries) beside GET /api/agents
   (reference 003's list of the same agents: one query), sequentially, 20 each,
   interleaved, after warm-up. Then, when the dashboard is built (`make dashboard`) and
   Chromium is there, bench/dashboard_render.js opens #/agents 5 times and reads the
   page's own measure from the data's arrival to the table in the DOM.

Prints one JSON document. Usage: python bench/dashboard.py [--agents 2000] [--interval 10]
[--requests 100] [--keep]
"""
import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

from bench.alerts import BenchError, Deadline, Stack, machine, now_ms, pct, wait_api  # noqa: E402
from pipeline import accounts, health  # noqa: E402
from pipeline.ids import IdGenerator  # noqa: E402
from pipeline.producer import producer_config  # noqa: E402
from pipeline.topics import AGENT_VITALS, entity_key  # noqa: E402
from schemas import codec  # noqa: E402
from stage import produce  # noqa: E402  (bench/, this script's folder, is on the path)

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
CHART_METRIC = "hallucinationRate"

ROLLUP_SQL = """
SELECT toUnixTimestamp(bucket) AS t, sum(sum) / sum(count) AS v FROM agent_vitals_1h
WHERE tenant = %(tenant)s AND agent_id = %(agent)s AND metric = 'hallucinationRate'
  AND bucket >= toDateTime(%(lo)s, 'UTC') AND bucket <= toDateTime(%(hi)s, 'UTC')
GROUP BY bucket ORDER BY bucket
"""
RAW_SQL = """
SELECT toUnixTimestamp(toStartOfHour(recorded_at)) AS t, avg(hallucination_rate) AS v FROM agent_vitals FINAL
WHERE tenant = %(tenant)s AND agent_id = %(agent)s
  AND recorded_at >= toDateTime(%(lo)s, 'UTC') AND recorded_at < toDateTime(%(hi)s, 'UTC') + INTERVAL 1 HOUR
GROUP BY t ORDER BY t
"""


def vital(ids: IdGenerator, tenant: str, agent: str, at: int, i: int) -> bytes:
    tokens, rate, loops, conflicts = 500 + i % 7000, (i % 40) / 400, i % 120, i % 6
    return codec.encode("agent_vital", {
        "tenant": tenant, "id": ids.next_id(), "agent_id": agent, "agent_name": None,
        "token_consumption": tokens, "token_limit": 8000, "hallucination_rate": rate,
        "loop_frequency": loops, "directive_conflicts": conflicts,
        "overall_health": health.score(token_consumption=tokens, token_limit=8000, hallucination_rate=rate,
                                       loop_count=loops, conflict_count=conflicts),
        "metadata": json.dumps({"latency_ms": i % 900, "model": "bench"}), "recorded_at": at})


def seed(stack: Stack, tenant: str, agents: int, interval_s: int) -> dict:
    ids = IdGenerator(7)
    topic = stack.prefix + AGENT_VITALS.name
    p = Producer({**producer_config(stack.bootstrap), "linger.ms": 50, "batch.size": 1_000_000})
    now = now_ms()
    t0 = time.monotonic()
    n = 0

    def send(agent: str, at: int, i: int) -> None:
        nonlocal n
        produce(p, topic, entity_key(tenant, agent), vital(ids, tenant, agent, at, i))
        n += 1
        if n % 10_000 == 0:
            p.poll(0)

    month = range(now - 30 * DAY_MS, now, interval_s * 1000)
    for i, at in enumerate(month):
        send("month-bot", at, i)
    for a in range(agents):
        for h in range(24):
            send(f"agent-{a:04d}", now - (23 - h) * HOUR_MS - (a * 997) % HOUR_MS, a + h)
    if p.flush(120) != 0:
        raise BenchError("the broker did not take every seeded record")
    return {"month_bot_vitals": len(month), "agents": agents + 1, "records": n,
            "produce_s": round(time.monotonic() - t0, 1), "now_ms": now}


def wait_landed(http: httpx.Client, seeded: dict, deadline: Deadline) -> float:
    t0 = time.monotonic()
    start = seeded["now_ms"] - 31 * DAY_MS
    while True:
        res = http.get("/api/agents/month-bot/metrics", params={
            "metric": "loopCount", "stat": "count", "granularity": "1d", "start": start})
        listed = http.get("/api/dashboard/agents").json()["agents"] if res.status_code == 200 else []
        if res.status_code == 200 and sum(d["value"] for d in res.json()["data"]) == seeded["month_bot_vitals"] \
                and len(listed) == seeded["agents"]:
            return time.monotonic() - t0
        deadline.check("waiting for the sink to land the seeded vitals")
        time.sleep(1)


def timed_get(http: httpx.Client, path: str, params: dict | None = None) -> float:
    t = time.perf_counter()
    res = http.get(path, params=params)
    elapsed = (time.perf_counter() - t) * 1000
    if res.status_code != 200:
        raise BenchError(f"GET {path}: {res.status_code} {res.text[:200]}")
    return elapsed


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 1), "p99_ms": round(pct(ms, 99), 1),
            "max_ms": round(max(ms), 1), "min_ms": round(min(ms), 1)}


def chart_http(http: httpx.Client, seeded: dict, requests: int) -> dict:
    params = {"metric": CHART_METRIC, "granularity": "1h", "start": seeded["now_ms"] - 30 * DAY_MS,
              "end": seeded["now_ms"]}
    body = http.get("/api/agents/month-bot/metrics", params=params).json()
    buckets = len(body["data"])
    for _ in range(20):
        timed_get(http, "/api/agents/month-bot/metrics", params)
    return {"buckets": buckets, "with_data": sum(d["value"] is not None for d in body["data"]),
            **summary([timed_get(http, "/api/agents/month-bot/metrics", params) for _ in range(requests)])}


def overview_http(http: httpx.Client) -> dict:
    for _ in range(3):
        timed_get(http, "/api/dashboard/agents")
        timed_get(http, "/api/agents")
    overview, listing = [], []
    for _ in range(20):
        overview.append(timed_get(http, "/api/dashboard/agents"))
        listing.append(timed_get(http, "/api/agents"))
    size = len(http.get("/api/dashboard/agents").content)
    return {"overview": summary(overview), "baseline_reference_list": summary(listing),
            "overview_bytes": size, "ratio_p50": round(statistics.median(overview) / statistics.median(listing), 2)}


def render(stack: Stack, key: str) -> dict:
    script = ROOT / "bench" / "dashboard_render.js"
    modules = ROOT / "tests" / "browser" / "node_modules"
    if not (script.exists() and modules.exists() and (ROOT / "dashboard" / "node_modules").exists()
            and Path("/usr/bin/chromium").exists()):
        return {"skipped": "needs `make dashboard browser` and /usr/bin/chromium"}
    out = subprocess.run(["node", str(script), stack.url, key], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise BenchError(f"dashboard_render.js failed: {out.stderr[-2000:]}")
    seen = json.loads(out.stdout)
    runs = seen["runs_ms"]
    return {"rows": seen["rows"], "runs_ms": [round(r, 1) for r in runs],
            "median_ms": round(statistics.median(runs), 1), "max_ms": round(max(runs), 1)}


def engine_side_by_side(stack: Stack, tenant: str, seeded: dict) -> dict:
    """The endpoint's rollup query and the raw-rows baseline, in this process's chdb."""
    from pipeline.store.clickhouse import connect

    client = connect(f"chdb://{(stack.workdir / 'clickhouse').resolve()}", "sophra")
    lo = (seeded["now_ms"] - 30 * DAY_MS) // 1000
    params = {"tenant": tenant, "agent": "month-bot", "lo": lo - lo % 3600, "hi": seeded["now_ms"] // 1000}
    rollup, raw = [], []
    for sql in (ROLLUP_SQL, RAW_SQL):  # warm both
        client.query(sql, parameters=params)
    for _ in range(20):
        for sql, into in ((ROLLUP_SQL, rollup), (RAW_SQL, raw)):
            t = time.perf_counter()
            rows = client.query(sql, parameters=params).result_rows
            into.append((time.perf_counter() - t) * 1000)
            into_rows = len(rows)
    rows_rollup = client.query(ROLLUP_SQL, parameters=params).result_rows
    rows_raw = client.query(RAW_SQL, parameters=params).result_rows
    same = len(rows_rollup) == len(rows_raw) and all(
        a[0] == b[0] and abs(a[1] - b[1]) < 1e-9 for a, b in zip(rows_rollup, rows_raw))
    return {"rollup_query": summary(rollup), "baseline_raw_rows": summary(raw), "buckets": into_rows,
            "same_values": same, "speedup_p50": round(statistics.median(raw) / statistics.median(rollup), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--interval", type=int, default=10, help="seconds between month-bot's reports")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = ap.parse_args()
    deadline = Deadline(args.timeout)
    workdir = Path(tempfile.mkdtemp(prefix="sophra-bench-dashboard-"))
    stack = Stack(workdir, smtp_url="")
    result = {"machine": machine()}
    try:
        stack.start_broker()
        stack.env.pop("SOPHRA_SMTP_URL", None)
        stack.spawn("api", "api", "--with-sink")
        wait_api(stack, deadline)
        email = f"bench-{uuid.uuid4().hex[:8]}@bench.sophra"
        key = httpx.post(f"{stack.url}/api/keys", json={"email": email}).json()["key"]
        tenant = accounts.tenant_for(email)
        seeded = seed(stack, tenant, args.agents, args.interval)
        with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            seeded["landed_s"] = round(wait_landed(http, seeded, deadline), 1)
            result["seeded"] = {k: v for k, v in seeded.items() if k != "now_ms"}
            print(f"seeded: {json.dumps(result['seeded'])}", file=sys.stderr, flush=True)
            result["chart_30d_1h_http"] = chart_http(http, seeded, args.requests)
            result["agents_overview_http"] = overview_http(http)
        result["agents_overview_render"] = render(stack, key)
        stack.stop("api")  # chdb: one process per data folder
        result["chart_30d_1h_engine"] = engine_side_by_side(stack, tenant, seeded)
    except BenchError as exc:
        print(f"bench failed: {exc}\n{stack.tail('api')}", file=sys.stderr)
        return 1
    finally:
        stack.close()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
