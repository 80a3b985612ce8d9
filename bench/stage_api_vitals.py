"""POST /api/vitals stage (issue 13): requests/s and CPU per request of `sophra api`, beside a
bare endpoint on the same HTTP server settings (bench/bare_api.py), in the same run.

1. `sophra api` alone (no sink; no worker) against the stage's broker, on fresh topics, and
   the bare app (FastAPI, api/server.py's settings, a POST that reads the body and answers
   the same JSON shape: no validation, no key, no Kafka), each in its own process.
2. Load: wrk with bench/wrk/vitals.lua, every request for a new agent (so the 10 s per-agent
   limit never applies), --connections connections on 2 threads. After a warm-up of each,
   subject and baseline alternate --rounds times for --seconds each; the best of each is
   reported. CPU per request is the server process's user + system time (/proc, all its
   threads, librdkafka's included) over the run, divided by the requests it answered.
3. Latency: wrk paced (Lua delay()) at half the api's best requests/s; its p99 (wrk measures
   from send to answer on each connection; the pacing is per connection, so this is not an
   open-loop client and a stall would hold the next requests back). Beside it, reported
   only: the bare app paced alike, and confluent-kafka alone producing at that rate with
   the api's settings (produce -> delivery report): the floor this machine and broker give.
4. Reported only: two `sophra api` processes behind the same broker (wrk on each at once,
   half the connections each; the sum), and the same figures under `sophra up` (worker,
   notifier, api with its in-process sink: everything on this machine).
5. Checks (else exit 1): every answer was 200, and the records on the vitals topic equal the
   200s the api gave.

Usage: python bench/stage_api_vitals.py [--bootstrap HOST:PORT] [--quick] [--json OUT]
           [--seconds 15] [--rounds 2] [--connections 32] [--no-up] [--no-scaling]
"""
from __future__ import annotations

import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage import ROOT, Row, Target, arguments, broker, write_rows  # noqa: E402

from api_procs import BenchError, Served, bare, cpu_seconds, new_key, sophra, topic_records, wrk  # noqa: E402

from confluent_kafka import Producer  # noqa: E402

from pipeline.producer import producer_config  # noqa: E402
from pipeline.topics import AGENT_VITALS, ensure_topics  # noqa: E402

SCRIPT = ROOT / "bench" / "wrk" / "vitals.lua"
STAGE = "POST /api/vitals"


def load(server: Served, key: str, seconds: float, connections: int, run: str, delay_ms: int = 0) -> dict:
    """One wrk run against `server`: its rate, and its CPU seconds per request."""
    cpu0 = cpu_seconds(server.pid)
    out = wrk(server.url, SCRIPT, seconds, connections, env={"KEY": key, "RUN": run, "DELAY_MS": str(delay_ms)})
    out["cpu_s"] = cpu_seconds(server.pid) - cpu0
    out["connections"] = connections
    out["rps"] = out["requests"] / out["seconds"]
    out["cpu_per_req_us"] = out["cpu_s"] / max(out["requests"], 1) * 1e6
    return out


def paced(server: Served, key: str, rate: float, seconds: float, run: str) -> dict:
    """wrk at about `rate` requests/s: each connection waits a delay between its requests.
    A connection's cycle is that delay plus the request's latency, so a 3 s calibration
    run first measures the cycle and the delay is shortened by the latency it showed."""
    conns = max(4, min(64, round(rate / 20)))  # ~50 ms between a connection's requests
    delay = conns * 1000 / rate
    calibration = load(server, key, 3, conns, run + "-cal", delay_ms=round(delay))
    latency = conns * 1000 / max(calibration["rps"], 1) - delay
    out = load(server, key, seconds, conns, run, delay_ms=max(1, round(delay - max(latency, 0))))
    out["also"] = [calibration]  # its records are on the topic too
    return out


def measure(server: Served, base: Served, key: str, args, run: str) -> dict:
    res = {"api": [], "bare": [], "warm": []}
    for who, s in (("api", server), ("bare", base)):  # warm-up: pools, caches, the broker's first batches
        warm = load(s, key, 3, args.connections, f"{run}-warm-{who}")
        if who == "api":
            res["warm"].append(warm)
    for r in range(args.rounds):
        for who, s in (("api", server), ("bare", base)):
            res[who].append(load(s, key, args.seconds, args.connections, f"{run}-{who}-{r}"))
            x = res[who][-1]
            print(f"  round {r + 1} {who}: {x['rps']:,.0f} req/s, {x['cpu_per_req_us']:,.0f} us CPU/req, "
                  f"p99 {x['p99_us'] / 1000:.1f} ms, non-200 {x['non2xx']}", flush=True)
    best = max(res["api"], key=lambda x: x["rps"])
    res["half"] = paced(server, key, best["rps"] / 2, args.seconds, f"{run}-half")
    # the bare app paced alike: what this machine's scheduling alone gives at that rate
    res["bare_half"] = paced(base, key, best["rps"] / 2, args.seconds, f"{run}-bare-half")
    for who in ("half", "bare_half"):
        h = res[who]
        print(f"  {'api' if who == 'half' else 'bare'} at half the api's rate: {h['rps']:,.0f} req/s, "
              f"p50 {h['p50_us'] / 1000:.2f} ms, p99 {h['p99_us'] / 1000:.2f} ms", flush=True)
    return res


def raw_ack_latency(bootstrap: str, topic: str, rate: float, seconds: float) -> dict:
    """confluent-kafka alone, the api's producer settings, one small record every 1/rate s with
    a thread polling as the api's does: produce -> delivery report percentiles (ms). What
    the broker on this machine gives before any HTTP."""
    producer = Producer(producer_config(bootstrap))
    took: list[float] = []
    running = True

    def poll():
        while running:
            producer.poll(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    for i in range(50):  # connected, producer id acquired: not timed
        producer.produce(topic, key=b"warm-%d" % i, value=b"x" * 200)
    producer.flush(30)
    end, i = time.perf_counter() + seconds, 0
    while (t0 := time.perf_counter()) < end:
        producer.produce(topic, key=b"raw-%d" % i, value=b"x" * 200,
                         on_delivery=lambda err, msg, t0=t0: err is None and took.append(time.perf_counter() - t0))
        i += 1
        time.sleep(max(0.0, t0 + 1 / rate - time.perf_counter()))
    producer.flush(30)
    running = False
    poller.join(1)
    took.sort()
    n = len(took)
    if n < i:
        raise BenchError(f"raw produce: {n} of {i} records delivered")
    return {"rate": n / seconds, "p50_ms": took[n // 2] * 1e3, "p99_ms": took[int(n * 0.99)] * 1e3}


def rates(results: list[dict]) -> str:
    return ", ".join(f"{x['rps']:,.0f}" for x in results)


def answered(results: list[dict]) -> tuple[int, int]:
    """(200s, everything else) over wrk runs."""
    results = results + [x for r in results for x in r.get("also", [])]
    ok = sum(r["requests"] - r["non2xx"] for r in results)
    return ok, sum(r["non2xx"] + r["socket_errors"] for r in results)


def main() -> int:
    ap = arguments(__doc__)
    ap.add_argument("--seconds", type=float, help="each timed wrk run (default 15; --quick 5)")
    ap.add_argument("--rounds", type=int, help="api/bare alternations (default 2; --quick 1)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--no-up", action="store_true", help="skip the figures under `sophra up`")
    ap.add_argument("--no-scaling", action="store_true", help="skip 2 api processes")
    args = ap.parse_args()
    args.seconds = args.seconds or (5 if args.quick else 15)
    args.rounds = args.rounds or (1 if args.quick else 2)
    run = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="sophra-bench-api-"))
    started: list[Served] = []
    rows: list[Row] = []
    try:
        with broker(args.bootstrap) as bootstrap:
            prefix = f"bench-api-{run}."
            ensure_topics(bootstrap, prefix)
            api = sophra("api", bootstrap, prefix, tmp / "api1", tmp)
            base = bare(tmp)
            started += [api, base]
            api.wait_ready("/healthz")
            base_ready = base.wait_ready("/docs")
            key, _ = new_key(api.url)
            res = measure(api, base_ready, key, args, run)
            runs_on_topic = res["warm"] + res["api"] + [res["half"]]
            ensure_topics(bootstrap, f"bench-api-raw-{run}.")  # its own topics: the check below counts the api's
            raw = raw_ack_latency(bootstrap, f"bench-api-raw-{run}.{AGENT_VITALS.name}", res["half"]["rps"], args.seconds)
            print(f"  raw confluent-kafka at {raw['rate']:,.0f} records/s: produce -> report p50 {raw['p50_ms']:.2f} ms, "
                  f"p99 {raw['p99_ms']:.2f} ms", flush=True)

            scaling = None
            if not args.no_scaling:
                api2 = sophra("api", bootstrap, prefix, tmp / "api2", tmp)
                started.append(api2)
                api2.wait_ready("/healthz")
                time.sleep(2)  # the key book of the second process catches up with the key topic
                half = max(1, args.connections // 2)
                warm = [load(s, key, 3, half, f"{run}-w2-{i}") for i, s in enumerate((api, api2))]
                runs_on_topic += warm
                with ThreadPoolExecutor(2) as pool:
                    two = list(pool.map(lambda s: load(s[1], key, args.seconds, half, f"{run}-two-{s[0]}"),
                                        enumerate((api, api2))))
                runs_on_topic += two
                scaling = sum(x["rps"] for x in two)
                print(f"  two api processes: {scaling:,.0f} req/s ({rates(two)})",
                      flush=True)
                api2.stop()

            # Every answer a 200, every 200 a record on the topic. wrk stops counting with
            # requests still in flight, which the api may have stored: at most one per connection.
            ok, bad = answered(runs_on_topic)
            in_flight = sum(r["connections"] for r in runs_on_topic + [x for r in runs_on_topic for x in r.get("also", [])])
            time.sleep(1)
            on_topic = topic_records(bootstrap, prefix + AGENT_VITALS.name)
            if bad or not ok <= on_topic <= ok + in_flight:
                raise BenchError(f"{bad} answers were not 200, or the topic holds {on_topic:,} records for "
                                 f"{ok:,} 200s (+ at most {in_flight} in flight when wrk stopped)")
            checked = f"{ok:,} 200s, {on_topic:,} records on the topic"

            up = None
            if not args.no_up:
                base.stop()
                api.stop()
                up_srv = sophra("up", bootstrap, f"bench-up-{run}.", tmp / "up", tmp)
                started.append(up_srv)
                up_srv.wait_ready("/readyz", timeout=240)
                key_up, _ = new_key(up_srv.url)
                load(up_srv, key_up, 3, args.connections, f"{run}-up-warm")
                up = {"best": max((load(up_srv, key_up, args.seconds, args.connections, f"{run}-up-{r}")
                                   for r in range(args.rounds)), key=lambda x: x["rps"])}
                up["half"] = paced(up_srv, key_up, up["best"]["rps"] / 2, args.seconds, f"{run}-up-half")
                print(f"  sophra up: {up['best']['rps']:,.0f} req/s, {up['best']['cpu_per_req_us']:,.0f} us CPU/req "
                      f"(api process, sink included); half load p99 {up['half']['p99_us'] / 1000:.2f} ms", flush=True)
    except BenchError as exc:
        print(f"stage_api_vitals: {exc}", file=sys.stderr)
        return 1
    finally:
        for s in started:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    a, b = max(res["api"], key=lambda x: x["rps"]), max(res["bare"], key=lambda x: x["rps"])
    ca, cb = min(x["cpu_per_req_us"] for x in res["api"]), min(x["cpu_per_req_us"] for x in res["bare"])
    how = (f"wrk -t2 -c{args.connections} -d{args.seconds:g}s, a new agent per request; best of {args.rounds} "
           f"alternating rounds: api {rates(res['api'])}, bare {rates(res['bare'])} req/s")
    rows.append(Row(STAGE, "requests/s", a["rps"], "req/s", baseline="bare endpoint, same server settings",
                    baseline_value=b["rps"], target=Target(">=", 0.7, ratio=True), note=f"`sophra api` alone; {how}; checked: {checked}"))
    rows.append(Row(STAGE, "CPU per request", ca, "us", baseline="bare endpoint, same server settings",
                    baseline_value=cb, target=Target("<=", 1.5, ratio=True),
                    note="server process user+system time (/proc, all threads) over the run / requests answered; "
                         "best of the rounds"))
    h = res["half"]
    rows.append(Row(STAGE, "p99 at half the max rate", h["p99_us"] / 1000, "ms", target=Target("<=", 10),
                    note=f"wrk paced by delay() at {h['rps']:,.0f} req/s (half of {a['rps']:,.0f}); p50 "
                         f"{h['p50_us'] / 1000:.2f} ms, max {h['max_us'] / 1000:.1f} ms; the bare app paced alike: "
                         f"{res['bare_half']['rps']:,.0f} req/s, p50 {res['bare_half']['p50_us'] / 1000:.2f} ms, "
                         f"p99 {res['bare_half']['p99_us'] / 1000:.2f} ms"))
    rows.append(Row(STAGE, "p99 produce -> ack, confluent-kafka alone", raw["p99_ms"], "ms",
                    note=f"the api's producer settings, one 200-byte record every 1/{raw['rate']:,.0f} s, a polling "
                         f"thread, no HTTP: what the broker on this machine gives at that rate; p50 "
                         f"{raw['p50_ms']:.2f} ms; reported only"))
    if scaling is not None:
        rows.append(Row(STAGE, "requests/s, 2 api processes", scaling, "req/s", baseline="1 api process",
                        baseline_value=a["rps"], note="two `sophra api` behind the same broker, wrk on each at once "
                                                       "with half the connections; reported only"))
    if up is not None:
        rows.append(Row(STAGE + " under sophra up", "requests/s", up["best"]["rps"], "req/s",
                        baseline="bare endpoint (alone, above)", baseline_value=b["rps"],
                        note="worker, notifier and api + sink on this machine; reported only"))
        rows.append(Row(STAGE + " under sophra up", "CPU per request", up["best"]["cpu_per_req_us"], "us",
                        baseline="bare endpoint (alone, above)", baseline_value=cb,
                        note="the api process, its sink thread included; reported only"))
        rows.append(Row(STAGE + " under sophra up", "p99 at half the max rate", up["half"]["p99_us"] / 1000, "ms",
                        note=f"paced at {up['half']['rps']:,.0f} req/s; reported only"))
    write_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
