"""Measure the /v1 metrics path under `sophra up` (embedded broker, worker, api + sink):

- ingest: POST /v1/applications/{id}/metrics with batches of --points points, first one
  client after another, then --clients clients at once: request latency and points/s
  acknowledged (202: Kafka has the batch);
- landed: from the first POST to every point counted by the rollups in ClickHouse
  (GET ... stat=count), i.e. points/s through Kafka, the sink and the materialized views;
- reads: GET over the whole 30 days of data at 1h and 1d (mean and p95), from the rollups.

The points are spread over the last 30 days. The account is put on the enterprise plan
with `sophra plan` first, so the bench's own polling is not refused by the quota.

Usage: python bench/metrics_ingest.py [--points 10000] [--batches 20] [--clients 4]
"""
import argparse
import asyncio
import random
import statistics
import tempfile
import time

import httpx

from stage import free_port
from startup_latency import enterprise_key, start, stop

DAY_MS = 86_400_000


def batch(n: int, now_ms: int, rng: random.Random) -> list[dict]:
    metrics = ("response_time", "error_rate", "throughput")
    return [{"metric": metrics[i % 3], "value": round(rng.uniform(0, 1 if i % 3 == 1 else 500), 3),
             "timestamp": now_ms - rng.randrange(30 * DAY_MS)} for i in range(n)]


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def post_all(url: str, key: str, app_id: str, bodies: list[list[dict]], clients: int) -> list[float]:
    """POST every body with `clients` concurrent connections; the latency of each."""
    queue = list(bodies)
    latencies = []

    async def client():
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            while queue:
                body = queue.pop()
                t0 = time.perf_counter()
                res = await http.post(f"/v1/applications/{app_id}/metrics", json={"points": body})
                latencies.append(time.perf_counter() - t0)
                assert res.status_code == 202, res.text

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def landed(http: httpx.Client, app_id: str, start_ms: int, end_ms: int) -> int:
    total = 0
    for metric in ("response_time", "error_rate", "throughput"):
        data = http.get(f"/v1/applications/{app_id}/metrics", params={
            "metric": metric, "granularity": "1d", "stat": "count", "start": start_ms, "end": end_ms}).json()["data"]
        total += sum(d["value"] for d in data)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10_000, help="points per request (at most 10,000)")
    ap.add_argument("--batches", type=int, default=20, help="requests per phase")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients in the second phase")
    args = ap.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc, _ = start(data, port)
        try:
            key = enterprise_key(url, data)
            http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            app_id = http.post("/v1/applications", json={"name": "bench"}).json()["id"]
            now = int(time.time() * 1000)
            bodies = [batch(args.points, now, rng) for _ in range(2 * args.batches)]

            t0 = time.perf_counter()
            sequential = asyncio.run(post_all(url, key, app_id, bodies[:args.batches], 1))
            t1 = time.perf_counter()
            concurrent = asyncio.run(post_all(url, key, app_id, bodies[args.batches:], args.clients))
            t2 = time.perf_counter()
            total = 2 * args.batches * args.points
            while landed(http, app_id, now - 31 * DAY_MS, now + DAY_MS) < total:
                time.sleep(0.05)
            t3 = time.perf_counter()

            reads = {}
            for granularity in ("1h", "1d"):
                for stat in ("mean", "p95"):
                    lat = []
                    for _ in range(10):
                        r0 = time.perf_counter()
                        res = http.get(f"/v1/applications/{app_id}/metrics", params={
                            "metric": "response_time", "granularity": granularity, "stat": stat,
                            "start": now - 30 * DAY_MS, "end": now})
                        lat.append(time.perf_counter() - r0)
                        assert res.status_code == 200, res.text
                    reads[(granularity, stat)] = (statistics.median(lat), len(res.json()["data"]))
        finally:
            stop(proc)

    n = args.points
    print(f"{args.batches} x {n} points, one client:  {args.batches * n / (t1 - t0):,.0f} points/s acknowledged, "
          f"request p50 {pct(sequential, 50) * 1000:.0f} ms, p95 {pct(sequential, 95) * 1000:.0f} ms")
    print(f"{args.batches} x {n} points, {args.clients} clients: {args.batches * n / (t2 - t1):,.0f} points/s "
          f"acknowledged, request p50 {pct(concurrent, 50) * 1000:.0f} ms, p95 {pct(concurrent, 95) * 1000:.0f} ms")
    print(f"all {total:,} points counted by the rollups {t3 - t0:.1f} s after the first POST "
          f"({total / (t3 - t0):,.0f} points/s end to end; last one {(t3 - t2) * 1000:.0f} ms after the last 202)")
    for (granularity, stat), (median, buckets) in reads.items():
        print(f"GET 30 days at {granularity}, stat={stat}: {buckets} buckets, median {median * 1000:.0f} ms")


if __name__ == "__main__":
    main()
