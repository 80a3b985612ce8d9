"""POST /v1/applications/{id}/metrics stage (issue 13): points/s the api takes in 1,000-point
batches, beside raw confluent-kafka producing the same points, in the same run.

1. `sophra api` alone (no sink, no worker) against the stage's broker, on fresh topics. A new
   account on the enterprise plan (no hourly quota: `sophra plan`'s set_plan) and one
   application of it.
2. **api**: wrk (bench/wrk/metrics.lua) posting one 1,000-point body (4 metrics, epoch-ms
   timestamps of the last minutes, values in range) with --connections connections; every
   answer must be 202. points/s = 202s x 1,000 / seconds.
3. **baseline**: this process producing the same points with confluent-kafka: the
   `app_metric_batch` records the api would write for that body (same 1,000 points each,
   encoded before the clock starts), same key, same producer settings
   (pipeline.producer.producer_config), to the same topic, as fast as the local queue
   takes them (200 distinct records in turn, --batches in all), timed from the first
   produce to the last delivery report; its producer is connected and warm before that.
4. Subject and baseline alternate --rounds times (2; 1 with --quick); the best of each.
   CPU per batch of the api process (/proc, all threads) is reported beside it.
5. Checks (else exit 1): every api answer was 202; the records on the topic are the 202s
   (+ at most one in flight per connection when wrk stopped) plus the baseline's records,
   all delivered; one api record decodes to the 1,000 points posted.

Usage: python bench/stage_api_metrics.py [--bootstrap HOST:PORT] [--quick] [--json OUT]
           [--seconds 15] [--rounds 2] [--connections 8] [--batches 20000]
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage import ROOT, Row, Target, arguments, broker, produce, write_rows  # noqa: E402

import httpx  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from api_procs import BenchError, Served, cpu_seconds, new_key, sophra, topic_records, wrk  # noqa: E402
from pipeline.producer import producer_config  # noqa: E402
from pipeline.quota import set_plan  # noqa: E402
from pipeline.topics import ACCOUNT_PLANS, APP_METRICS, ensure_topics, entity_key  # noqa: E402
from schemas import codec  # noqa: E402

SCRIPT = ROOT / "bench" / "wrk" / "metrics.lua"
STAGE = "POST /v1/applications/{id}/metrics"
POINTS = 1000
METRICS = ("response_time", "error_rate", "throughput", "queue_depth")


def batch(now_ms: int) -> list[dict]:
    """1,000 points over the last 100 s; values in every metric's range, exact in binary."""
    return [{"metric": METRICS[j % 4], "value": (j % 4000) / 4096 if j % 4 == 1 else float(j % 977),
             "timestamp": now_ms - 100_000 + j * 100} for j in range(POINTS)]


def api_load(server: Served, key: str, path: str, body_file: Path, seconds: float, connections: int) -> dict:
    cpu0 = cpu_seconds(server.pid)
    out = wrk(server.url, SCRIPT, seconds, connections,
              env={"KEY": key, "URL_PATH": path, "BODY_FILE": str(body_file)})
    out["cpu_s"] = cpu_seconds(server.pid) - cpu0
    out["connections"] = connections
    out["points_s"] = (out["requests"] - out["non2xx"]) * POINTS / out["seconds"]
    out["cpu_per_batch_ms"] = out["cpu_s"] / max(out["requests"], 1) * 1e3
    return out


def raw_produce(bootstrap: str, topic: str, key: bytes, values: list[bytes], n: int) -> dict:
    """confluent-kafka producing `n` pre-encoded records (`values` in turn): points/s from
    the first produce to the last delivery report, the producer connected and warm first."""
    producer = Producer(producer_config(bootstrap))
    delivered, errors = [0], []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            delivered[0] += 1

    for value in values[:20]:  # connection, idempotent producer id, first batches: not timed
        producer.produce(topic, key=key, value=value, on_delivery=report)
    producer.flush(60)
    warm = delivered[0]
    t0 = time.perf_counter()
    for i in range(n):
        produce(producer, topic, key, values[i % len(values)], report, wait=0.01)
        producer.poll(0)
    left = producer.flush(120)
    elapsed = time.perf_counter() - t0
    if left or errors or delivered[0] - warm != n or warm != min(20, len(values)):
        raise BenchError(f"raw produce: {delivered[0]} of {n + warm} delivered, errors {errors[:3]}")
    return {"records": n + warm, "seconds": elapsed, "points_s": n * POINTS / elapsed}


def first_api_record(bootstrap: str, topic: str) -> dict:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-check-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        for p in parts:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                c.assign([TopicPartition(topic, p, low)])
                msg = c.poll(10)
                if msg is not None and not msg.error():
                    return codec.decode(msg.value())[1]
        raise BenchError(f"no record to read back on {topic}")
    finally:
        c.close()


def main() -> int:
    ap = arguments(__doc__)
    ap.add_argument("--seconds", type=float, help="each api run (default 15; --quick 5)")
    ap.add_argument("--rounds", type=int, help="api/baseline alternations (default 2; --quick 1)")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--batches", type=int, help="records of the baseline per round (default 20,000; --quick 5,000)")
    args = ap.parse_args()
    seconds = args.seconds or (5 if args.quick else 15)
    rounds = args.rounds or (1 if args.quick else 2)
    n_batches = args.batches or (5000 if args.quick else 20_000)
    run = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="sophra-bench-metrics-"))
    started: list[Served] = []
    res = {"api": [], "raw": []}
    try:
        with broker(args.bootstrap) as bootstrap:
            prefix = f"bench-metrics-{run}."
            ensure_topics(bootstrap, prefix)
            topic = prefix + APP_METRICS.name
            api = sophra("api", bootstrap, prefix, tmp / "api", tmp)
            started.append(api)
            api.wait_ready("/healthz")
            key, email = new_key(api.url)
            tenant, _ = set_plan(bootstrap, prefix + ACCOUNT_PLANS.name, email, "enterprise")
            headers = {"Authorization": f"Bearer {key}"}
            app = httpx.post(f"{api.url}/v1/applications", json={"name": "bench"}, headers=headers, timeout=30)
            if app.status_code != 201:
                raise BenchError(f"POST /v1/applications answered {app.status_code}: {app.text[:300]}")
            app_id = app.json()["id"]
            path = f"/v1/applications/{app_id}/metrics"
            points = batch(time.time_ns() // 1_000_000)
            body_file = tmp / "body.json"
            body_file.write_text(json.dumps({"points": points}))
            deadline, probes = time.monotonic() + 30, 0
            while True:  # the api's plan book has the enterprise record: no quota in the way
                probe = httpx.post(api.url + path, content=body_file.read_bytes(), timeout=30,
                                   headers={**headers, "Content-Type": "application/json"})
                probes += 1
                if probe.status_code != 202:
                    raise BenchError(f"a batch answered {probe.status_code}: {probe.text[:300]}")
                if probe.headers.get("x-ratelimit-limit") == "unlimited":
                    break
                if time.monotonic() > deadline:
                    raise BenchError("the api did not see the enterprise plan within 30 s")
                time.sleep(0.5)
            sent_by_api = [api_load(api, key, path, body_file, 3, args.connections)]  # warm-up
            # The records the api writes for that body (200 of them, each its own batch id),
            # encoded before the clock starts.
            values = [codec.encode("app_metric_batch", {"tenant": tenant, "application_id": app_id,
                                                        "id": 1_000_000 + i, "received_at": time.time_ns() // 1_000_000,
                                                        "points": points}) for i in range(200)]
            rkey = entity_key(tenant, app_id)
            raw_records = 0
            for r in range(rounds):
                res["api"].append(api_load(api, key, path, body_file, seconds, args.connections))
                sent_by_api.append(res["api"][-1])
                res["raw"].append(raw_produce(bootstrap, topic, rkey, values, n_batches))
                raw_records += res["raw"][-1]["records"]
                a, b = res["api"][-1], res["raw"][-1]
                print(f"  round {r + 1}: api {a['points_s']:,.0f} points/s ({a['requests'] / a['seconds']:,.1f} "
                      f"batches/s, {a['cpu_per_batch_ms']:.2f} ms CPU a batch, p99 {a['p99_us'] / 1000:.1f} ms, "
                      f"non-202 {a['non2xx']}); raw produce {b['points_s']:,.0f} points/s", flush=True)

            # Every answer a 202, every 202 a record (wrk stops counting with requests in
            # flight, which the api may have stored: at most one per connection).
            ok = sum(x["requests"] - x["non2xx"] for x in sent_by_api) + probes
            bad = sum(x["non2xx"] + x["socket_errors"] for x in sent_by_api)
            in_flight = sum(x["connections"] for x in sent_by_api)
            time.sleep(1)
            on_topic = topic_records(bootstrap, topic) - raw_records
            if bad or not ok <= on_topic <= ok + in_flight:
                raise BenchError(f"{bad} answers were not 202, or the topic holds {on_topic:,} api records for "
                                 f"{ok:,} 202s (+ at most {in_flight} in flight when wrk stopped)")
            record = first_api_record(bootstrap, topic)
            if record["points"] != points:
                raise BenchError("an api record does not hold the points posted")
            checked = f"{ok:,}+ 202s, {on_topic:,} api records on the topic, one decoded equal to the body"
    except BenchError as exc:
        print(f"stage_api_metrics: {exc}", file=sys.stderr)
        return 1
    finally:
        for s in started:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    a = max(res["api"], key=lambda x: x["points_s"])
    b = max(res["raw"], key=lambda x: x["points_s"])
    api_rates = ", ".join(f"{x['points_s']:,.0f}" for x in res["api"])
    raw_rates = ", ".join(f"{x['points_s']:,.0f}" for x in res["raw"])
    note = (f"wrk -c{args.connections} -d{seconds:g}s, one 1,000-point body posted over and over; best of {rounds} "
            f"alternating rounds: api {api_rates}, raw {raw_rates} points/s ({n_batches:,} records a round); api CPU "
            f"{a['cpu_per_batch_ms']:.2f} ms a batch; checked: {checked}")
    rows = [Row(STAGE, "points/s (1,000-point batches)", a["points_s"], "points/s",
                baseline="raw confluent-kafka produce of the same records", baseline_value=b["points_s"],
                target=Target(">=", 0.3, ratio=True), note=note)]
    write_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
