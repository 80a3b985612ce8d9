"""Stage write -> readable: how long a vitals report acknowledged by `POST /api/vitals`
takes to be readable through `GET /api/agents/{id}/vitals`, while 1,000 reports a
second are sustained, beside the sink's batch window (bench/README.md, "write -> readable").

1. On a temp data folder, `sophra api --with-sink` (the write -> readable path alone: the
   api and its in-process ClickHouse sink, chdb) on the stage's broker (--bootstrap, as
   bench/run.py gives, under a fresh topic prefix and fresh group ids; alone, a broker of
   its own); then, reported beside it (--process both, the default; --quick runs the api
   alone), the whole `sophra up` with the worker and the notifier on the same cores
   (without --bootstrap with its embedded broker: `make run`).
2. Load: wrk (C, so the load does not take the cores it measures) with bench/wrk/vitals.lua,
   a new agent on every report (the 10 s per-agent limit never applies), 64 connections
   each waiting 64 / --rate s between reports: at most --rate (1,000/s) for --seconds (60;
   --quick 15) after a 5 s warm-up, fewer when answers are slow (the rate reached is a row).
3. Tracers: every --tracer-ms (100 ms, on a fixed clock, so they land anywhere in the
   sink's window) one more report, of an agent never seen before; from its 200 answer,
   `GET /api/agents/{id}/vitals?limit=1` every --poll-ms (20 ms) until it returns that
   record's id. write -> readable = the answer of the first GET that shows it minus the
   answer of the POST (an upper bound, by at most one poll period). Polling the api, not
   ClickHouse: with the embedded default the api process holds the chdb folder (one
   process per folder), so nothing else can read it; a tracer at a time per 100 ms keeps
   the polls at a few per cent of the load (the GETs per second are in the row's note).
4. Rows: p50 and p99 of write -> readable against the sink's batch window
   (settings.sink_batch_ms: the ratio is how many windows a write waits), the send rate
   reached and the answers' p99.

    .venv/bin/python bench/stage_latency.py [--bootstrap HOST:PORT] [--quick] [--json OUT]
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from stage import ROOT, Row, Target, arguments, broker, free_port, write_rows

from api_procs import wrk  # noqa: E402

import aiohttp  # noqa: E402

from sophra.processes import spawn, terminate  # noqa: E402
from sophra.settings import Settings  # noqa: E402

WARMUP_S = 5.0
TRACER_TIMEOUT_S = 30.0


class StageError(RuntimeError):
    pass


# -- the load: wrk, paced ------------------------------------------------------------------

LOAD_CONNECTIONS = 64


def load_thread(url: str, key: str, rate: float, seconds: float, tag: str, out: list) -> None:
    """wrk (C, so the load does not take the cores it measures) with bench/wrk/vitals.lua: a new
    agent on every report (the 10 s limit never applies), each of LOAD_CONNECTIONS connections
    waiting connections / rate between its reports, so at most `rate` reports/s are sent (fewer
    when the answers are slow: the rate reached is what the row says)."""
    delay_ms = max(1, round(LOAD_CONNECTIONS * 1000 / rate))
    try:
        out.append(wrk(url, ROOT / "bench" / "wrk" / "vitals.lua", seconds, LOAD_CONNECTIONS,
                       env={"KEY": key, "RUN": f"load-{tag}", "DELAY_MS": str(delay_ms)}))
    except Exception as exc:  # reported by the caller
        out.append(exc)


def body(agent: str, i: int) -> dict:
    return {"agentId": agent, "metrics": {"tokenConsumption": 1000 + i % 500, "tokenLimit": 100_000,
                                          "hallucinationRate": 0.01, "loopCount": i % 7, "conflictCount": 0}}


# -- the tracers --------------------------------------------------------------------------

async def tracers(url: str, key: str, tag: str, start: float, stop: float, every: float, poll: float):
    """[(write -> readable seconds or None if never within TRACER_TIMEOUT_S)], GETs made."""
    results, gets = [], 0
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(url, headers=headers) as http:
        async def trace(i: int):
            nonlocal gets
            agent = f"tracer-{tag}-{i}"
            async with http.post("/api/vitals", json=body(agent, i)) as resp:
                answered = time.perf_counter()
                if resp.status != 200:
                    raise StageError(f"a tracer's report got {resp.status}: {await resp.text()}")
                vid = (await resp.json())["vital"]["id"]
            while time.perf_counter() - answered < TRACER_TIMEOUT_S:
                await asyncio.sleep(poll)
                gets += 1
                try:
                    async with http.get(f"/api/agents/{agent}/vitals", params={"limit": "1"}) as resp:
                        found = resp.status == 200 and [v["id"] for v in (await resp.json())["vitals"]] == [vid]
                        seen = time.perf_counter()
                except aiohttp.ClientError:  # e.g. a kept-alive connection the server closed: poll again
                    continue
                if found:
                    results.append(seen - answered)
                    return
            results.append(None)

        while time.time() < start:
            await asyncio.sleep(0.005)
        tasks, i = [], 0
        while time.time() < stop:
            tasks.append(asyncio.create_task(trace(i)))
            i += 1
            await asyncio.sleep(max(0.0, start + i * every - time.time()))
        await asyncio.gather(*tasks)
    return results, gets


# -- the process under test ---------------------------------------------------------------

# `api`: the write -> readable path alone, `sophra api --with-sink` (the api and its
# in-process sink) on the stage's broker; `up`: the whole `sophra up` (with the worker and
# the notifier competing for the same cores), reported beside it.
COMMANDS = {"api": ["api", "--with-sink"], "up": ["up"]}


def start_up(data: Path, port: int, bootstrap: str | None, tag: str, what: str = "up") -> tuple:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL")}
    env.update(SOPHRA_DATA_DIR=str(data), SOPHRA_PORT=str(port))
    if bootstrap:
        env.update(KAFKA_BOOTSTRAP_SERVERS=bootstrap, SOPHRA_TOPIC_PREFIX=f"bench-latency-{tag}.",
                   SOPHRA_WORKER_ID=f"bench-latency-worker-{tag}", SOPHRA_SINK_GROUP=f"bench-latency-sink-{tag}",
                   SOPHRA_NOTIFIER_GROUP=f"bench-latency-notifier-{tag}")
    log = open(data / "up.log", "wb")
    proc = spawn([sys.executable, "-m", "sophra", *COMMANDS[what]], stdout=log, env=env, cwd=ROOT,
                 death_signal=signal.SIGINT)
    return proc, log, env


async def wait_ready(url: str, proc, log_path: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(url) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StageError(f"the process under test exited with {proc.returncode}:\n{tail(log_path)}")
            try:
                async with http.get("/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise StageError(f"the process under test was not ready within {timeout:.0f} s:\n{tail(log_path)}")


async def new_key(url: str, tag: str) -> str:
    async with aiohttp.ClientSession(url) as http:
        async with http.post("/api/keys", json={"email": f"bench-latency-{tag}@sophra.local"}) as resp:
            if resp.status not in (200, 201):
                raise StageError(f"POST /api/keys answered {resp.status}: {await resp.text()}")
            return (await resp.json())["key"]


def stop_up(proc) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except Exception:
            pass
    terminate(proc)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process and its children that are still running (Linux /proc)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except (OSError, ValueError):
        pass
    return total


def quantile(xs: list[float], q: int) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1]


def main() -> int:
    ap = arguments(__doc__)
    ap.add_argument("--rate", type=float, default=1000.0, help="reports per second (default 1000)")
    ap.add_argument("--seconds", type=float, help="measured seconds (default 60; --quick 15)")
    ap.add_argument("--tracer-ms", type=float, default=100.0)
    ap.add_argument("--poll-ms", type=float, default=20.0)
    ap.add_argument("--process", choices=("api", "up", "both"), help="what runs: `sophra api --with-sink`, "
                    "`sophra up`, or one after the other (default both; --quick api)")
    args = ap.parse_args()
    args.seconds = args.seconds or (15.0 if args.quick else 60.0)
    chosen = args.process or ("api" if args.quick else "both")
    rows = []
    if chosen in ("api", "both"):
        with broker(args.bootstrap) as bootstrap:
            rows += measure(args, "api", bootstrap, target=True)
    if chosen in ("up", "both"):
        # without --bootstrap, `sophra up` is the whole `make run`, with its own embedded broker
        rows += measure(args, "up", args.bootstrap, target=chosen == "up")
    write_rows(args.json, rows)
    return 0


def measure(args, what: str, bootstrap: str | None, target: bool) -> list[Row]:
    """One run of `what` (COMMANDS) under the load, with the tracers: its rows."""
    seconds = args.seconds
    tag = uuid.uuid4().hex[:8]
    data = Path(tempfile.mkdtemp(prefix="sophra-bench-latency-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc, log, env = start_up(data, port, bootstrap, tag, what)
    window_ms = Settings().sink_batch_ms  # the environment the process inherits
    try:
        asyncio.run(wait_ready(url, proc, data / "up.log"))
        key = asyncio.run(new_key(url, tag))
        # wrk runs the warm-up and the measured seconds; the tracers run in the measured ones
        result: list = []
        loader = threading.Thread(target=load_thread, args=(url, key, args.rate, WARMUP_S + seconds, tag, result))
        measure_from = time.time() + WARMUP_S
        loader.start()
        stop = measure_from + seconds
        while time.time() < measure_from:
            time.sleep(0.05)
        cpu0, t0 = cpu_seconds(proc.pid), time.time()
        traced, gets = asyncio.run(tracers(url, key, tag, measure_from, stop, args.tracer_ms / 1000,
                                           args.poll_ms / 1000))
        cpu1, t1 = cpu_seconds(proc.pid), time.time()
        loader.join(120)
        if not result or isinstance(result[0], Exception):
            raise StageError(f"the load did not run: {result[0] if result else 'wrk did not finish'}")
        load = result[0]
        if proc.poll() is not None:
            raise StageError(f"sophra {what} exited with {proc.returncode} during the run:\n{tail(data / 'up.log')}")
    finally:
        stop_up(proc)
        log.close()
        shutil.rmtree(data, ignore_errors=True)

    done = [x for x in traced if x is not None]
    if len(done) < 10 or not load["requests"]:
        raise StageError(f"too few measurements: {len(done)} tracers readable, {load['requests']} reports sent")
    lost = len(traced) - len(done)
    ms = [x * 1000 for x in done] + [TRACER_TIMEOUT_S * 1000] * lost  # a tracer never readable counts as the cap
    other = {k: load[k] for k in ("non2xx", "socket_errors") if load[k]}
    base = f"sink batch window (sink_batch_ms={window_ms})"
    runs = {"api": "`sophra api --with-sink` (the api and its in-process sink; no worker)",
            "up": "`sophra up` (api + in-process sink, worker, notifier)"}[what]
    stage = "write -> readable" + ("" if what == "api" else ", sophra up")
    note = (f"{runs}, {'broker given' if bootstrap else 'embedded broker'}; at most {args.rate:,.0f} reports/s "
            f"asked (wrk, {LOAD_CONNECTIONS} connections, a new agent each report) for {WARMUP_S:g} s of warm-up and "
            f"{seconds:.0f} s measured; {len(traced)} tracers (one per {args.tracer_ms:g} ms), "
            f"GET /api/agents/{{id}}/vitals every {args.poll_ms:g} ms from the 200 answer until it shows the record "
            f"({gets / (t1 - t0):.0f} GETs/s)"
            + (f"; {lost} tracers not readable within {TRACER_TIMEOUT_S:g} s, counted as that" if lost else ""))
    cpu = f"its processes used {(cpu1 - cpu0) / (t1 - t0):.2f} cores"
    return [
        Row(stage, "p50", quantile(ms, 50), "ms", baseline=base, baseline_value=window_ms, note=note),
        Row(stage, "p99", quantile(ms, 99), "ms", baseline=base, baseline_value=window_ms,
            target=Target("<=", 1000) if target else None, note=f"{note}; {cpu}"),
        Row(stage, "reports/s reached", load["requests"] / load["seconds"], "req/s",
            note=f"wrk's answers over its {load['seconds']:.0f} s (asked at most {args.rate:,.0f}/s)"
                 + (f"; not 200: {other}" if other else "")),
        Row(stage, "answer p99 under that load", load["p99_us"] / 1000, "ms",
            note=f"POST /api/vitals answer time (wrk), p50 {load['p50_us'] / 1000:.1f} ms"),
    ]


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StageError as exc:
        sys.exit(f"stage latency: {exc}")
