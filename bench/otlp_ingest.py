"""OTLP/HTTP metrics ingest beside the /v1 JSON metrics path, under `sophra up`
(embedded broker, worker, api + sink), with the same points in the same run.

For each request size (--sizes, data points per request), one client posts --requests
requests on each path in turn:

- otlp-protobuf: POST /otlp/v1/metrics, application/x-protobuf (as the SDKs send it);
- otlp-json:     POST /otlp/v1/metrics, application/json (OTLP's JSON encoding);
- v1-json:       POST /v1/applications/{id}/metrics, {"points": [...]}, the same points
                 into the same application (the one OTLP ingest created).

Each request's points are gauges of 3 names spread over the last day; every request is
acknowledged (200 with no rejected point / 202) only once Kafka has its records.
Printed: points/s acknowledged and request latency p50/p95, per path and size. Then
every point is waited for in the rollups (stat=count), so nothing was lost on the way.
The account is on the enterprise plan (`sophra plan`), so the quota never refuses.

Usage: python bench/otlp_ingest.py [--sizes 100,1000,5000] [--requests 20] [--quick]
"""
import argparse
import json
import random
import statistics
import tempfile
import time

import httpx
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (ExportMetricsServiceRequest,
                                                                          ExportMetricsServiceResponse)

from stage import free_port
from startup_latency import enterprise_key, start, stop

DAY_MS = 86_400_000
NAMES = ("bench.queue_depth", "bench.latency_ms", "bench.error_ratio")
SERVICE = "bench-otlp"


def points(n: int, now_ms: int, rng: random.Random) -> list[dict]:
    return [{"metric": NAMES[i % 3], "value": round(rng.uniform(0, 500), 3),
             "timestamp": now_ms - rng.randrange(DAY_MS)} for i in range(n)]


def otlp(batch: list[dict]) -> ExportMetricsServiceRequest:
    """The same points as one OTLP export: a gauge per name, a data point per point."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = SERVICE
    sm = rm.scope_metrics.add()
    gauges = {name: sm.metrics.add(name=name).gauge for name in NAMES}
    for p in batch:
        gauges[p["metric"]].data_points.add(time_unix_nano=p["timestamp"] * 1_000_000, as_double=p["value"])
    return req


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def run(http: httpx.Client, path: str, bodies: list[bytes], headers: dict, ok: int) -> tuple[float, list[float]]:
    """Post every body one after the other: (seconds in all, latency of each)."""
    latencies = []
    t0 = time.perf_counter()
    for body in bodies:
        r0 = time.perf_counter()
        res = http.post(path, content=body, headers=headers)
        latencies.append(time.perf_counter() - r0)
        assert res.status_code == ok, res.text
        if path.startswith("/otlp"):
            answer = (ExportMetricsServiceResponse.FromString(res.content)
                      if headers["Content-Type"] == "application/x-protobuf" else res.json())
            assert not (answer.partial_success.rejected_data_points if hasattr(answer, "partial_success")
                        else answer.get("partialSuccess")), answer
    return time.perf_counter() - t0, latencies


def landed(http: httpx.Client, app_id: str, start_ms: int, end_ms: int) -> int:
    total = 0
    for metric in NAMES:
        data = http.get(f"/v1/applications/{app_id}/metrics", params={
            "metric": metric, "granularity": "1h", "stat": "count", "start": start_ms, "end": end_ms}).json()["data"]
        total += sum(d["value"] for d in data)
    return total


def measure(sizes: list[int], n_requests: int) -> tuple[list[tuple], int, float, float]:
    """(per path and size: name, points per request, body bytes, points/s, p50 s, p95 s), the
    points sent, seconds from the first timed request until the rollups counted every
    point, and seconds from the last acknowledgement until then."""
    rng = random.Random(7)
    results = []
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc, _ = start(data, port)
        try:
            key = enterprise_key(url, data)
            http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
            now = int(time.time() * 1000)
            # a first small export creates the application; the /v1 path writes into it too
            warm = otlp(points(3, now, rng)).SerializeToString()
            run(http, "/otlp/v1/metrics", [warm], {"Content-Type": "application/x-protobuf"}, 200)
            [app] = http.get("/v1/applications").json()["applications"]
            expected = 3
            t_first = time.perf_counter()
            for size in sizes:
                batches = [points(size, now, rng) for _ in range(n_requests)]
                reqs = [otlp(b) for b in batches]
                paths = {
                    "otlp-protobuf": ("/otlp/v1/metrics", [r.SerializeToString() for r in reqs],
                                      {"Content-Type": "application/x-protobuf"}, 200),
                    "otlp-json": ("/otlp/v1/metrics", [json_format.MessageToJson(r, indent=None).encode() for r in reqs],
                                  {"Content-Type": "application/json"}, 200),
                    "v1-json": (f"/v1/applications/{app['id']}/metrics",
                                [json.dumps({"points": b}).encode() for b in batches],
                                {"Content-Type": "application/json"}, 202),
                }
                for name, (path, bodies, headers, ok) in paths.items():
                    seconds, lat = run(http, path, bodies, headers, ok)
                    expected += size * n_requests
                    results.append((name, size, len(bodies[0]), size * n_requests / seconds, pct(lat, 50), pct(lat, 95)))
            t_acked = time.perf_counter()
            while landed(http, app["id"], now - 2 * DAY_MS, now + DAY_MS) < expected:
                time.sleep(0.1)
            t_landed = time.perf_counter()
        finally:
            stop(proc)
    return results, expected, t_landed - t_first, t_landed - t_acked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000,5000", help="data points per request, comma-separated")
    ap.add_argument("--requests", type=int, default=20, help="requests per path and size")
    ap.add_argument("--quick", action="store_true", help="5 requests per path and size (a shared machine)")
    args = ap.parse_args()
    n_requests = 5 if args.quick else args.requests
    results, expected, to_landed, after_ack = measure([int(s) for s in args.sizes.split(",")], n_requests)
    print(f"{n_requests} requests per path and size, one client; points/s acknowledged")
    print(f"{'path':<14} {'points/req':>10} {'body bytes':>11} {'points/s':>10} {'p50 ms':>7} {'p95 ms':>7}")
    for name, size, nbytes, rate, p50, p95 in results:
        print(f"{name:<14} {size:>10,} {nbytes:>11,} {rate:>10,.0f} {p50 * 1000:>7.0f} {p95 * 1000:>7.0f}")
    print(f"all {expected:,} points counted by the rollups {to_landed:.1f} s after the first timed request "
          f"({after_ack * 1000:.0f} ms after the last acknowledgement)")


if __name__ == "__main__":
    main()
