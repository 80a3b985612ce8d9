"""Fault injection: sustained mixed load through `sophra up` while its parts are killed.

    .venv/bin/python bench/fault_injection.py                     # 2,000 agents, the long run
    .venv/bin/python bench/fault_injection.py --agents 100 --warmup 8 --between 8 --tail 4   # the test's

In a temporary data folder it starts `sophra up` (the embedded default), makes a key
(enterprise plan, so the /v1 quota stays out of the way) and an application, and drives:
vitals for N agents (each every 10.5 s, inside the 10 s limit per agent), events (not
directive conflicts, so ARI's result does not depend on how vitals and events
interleave), and /v1 metric batches. It records every id the api acknowledged. Then,
in turn, with load in between: kill -9 the worker (sophra up restarts it), kill -9 the
broker (sophra up restarts it; meanwhile the api must answer 503 + Retry-After), and
kill -9 `sophra up` itself, the process that is the api with its sink (its children
follow it), and start it again.

Afterwards, once the worker and the sink have caught up, `sophra up` is stopped and the
data folder is checked directly:
- every acknowledged vital, event and metric point is in ClickHouse exactly once (by id);
- the rollups count what the raw tables hold (nothing counted twice or missed);
- ARI's interventions and statuses in ClickHouse equal an uninterrupted run of the
  engine over the same records (read back from the topics, per agent in offset order).

Prints a summary and one JSON line (`--json` writes it to a file); exits 1 if a check
fails. The temporary folder is deleted at the end (`--data-dir` keeps it).
Timings (recovery per fault, 503 latency) are measurements, reported, never asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from confluent_kafka import Consumer, KafkaException, TopicPartition  # noqa: E402

from pipeline.topics import AGENT_EVENTS, AGENT_VITALS, APP_METRICS, RECORD_TOPICS  # noqa: E402

VITAL_EVERY_S = 10.5
MAX_IN_FLIGHT = 200  # the client's connections: requests beyond them would only wait in its pool


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _marked(marker: str) -> list[int]:
    """Pids of processes whose environment holds `marker` (every part of one `sophra up`)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "environ").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


class Up:
    """One `sophra up` child, its output lines kept with their arrival time."""

    def __init__(self, env: dict):
        self.env = env
        self.lines: list[tuple[float, str]] = []
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> float:
        """Start it; the time its "up" line arrived."""
        since = time.monotonic()
        from sophra.processes import _die_with_parent

        # bound to this script's life, like sophra up's own children (a killed bench leaves nothing)
        self.proc = subprocess.Popen([sys.executable, "-m", "sophra", "up"], env=self.env, cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     preexec_fn=_die_with_parent(os.getpid()))
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        return self.wait_for(r"Sophra is up at", timeout, since=since)

    def _read(self, proc) -> None:
        for line in proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, pattern: str, timeout: float, since: float) -> float:
        """Arrival time of the first line matching `pattern` that arrived after `since`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if at >= since and re.search(pattern, line):
                    return at
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = "\n".join(line for _, line in self.lines[-30:])
        raise RuntimeError(f"no line matching {pattern!r} within {timeout:.0f}s; sophra up said:\n{tail}")

    @property
    def kafka(self) -> str:
        for _, line in self.lines:
            m = re.search(r"\(kafka (\S+),", line)
            if m:
                found = m.group(1)
        return found


class Load:
    """The mixed load, on its own thread and event loop; every request is logged."""

    def __init__(self, base: str, key: str, app_id: str, agents: int, events_per_s: float, batches_per_s: float,
                 points: int):
        self.base, self.key, self.app_id = base, key, app_id
        self.agents = [f"agent-{i:05d}" for i in range(agents)]
        self.events_per_s, self.batches_per_s, self.points = events_per_s, batches_per_s, points
        self.vitals: set[int] = set()
        self.reports: Counter = Counter()  # acknowledged reports per agent
        self.events: set[int] = set()
        self.batches: dict[int, int] = {}
        self.log: list[tuple[float, float, str, int | str, str | None]] = []  # start, end, kind, status, retry-after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(60)

    async def _main(self):
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=self.base, headers={"Authorization": f"Bearer {self.key}"},
                                     timeout=httpx.Timeout(40, connect=2), limits=limits) as http:
            self.http, tasks = http, set()
            t0 = time.monotonic()
            # agents come due in a fixed round (evenly spaced): a queue in due order, so each
            # tick touches only the agents due (the load must not eat the CPU it measures)
            due = deque((t0 + i * VITAL_EVERY_S / len(self.agents), a) for i, a in enumerate(self.agents))
            next_event = next_batch = t0
            rnd = random.Random(7)

            def launch(coro):
                if len(tasks) >= MAX_IN_FLIGHT:  # the api is behind: queueing more in httpx's pool only
                    coro.close()  # makes this process the bottleneck; say so instead
                    self.log.append((time.monotonic(), time.monotonic(), "any", "not sent (client at its cap)", None))
                    return
                task = asyncio.create_task(coro)
                tasks.add(task)
                task.add_done_callback(tasks.discard)

            while not self._stop.is_set():
                now = time.monotonic()
                while due and due[0][0] <= now:
                    at, agent = due.popleft()
                    due.append((at + VITAL_EVERY_S, agent))
                    launch(self._vital(agent, rnd.randint(500, 3000)))
                while next_event <= now and self.events_per_s:
                    next_event += 1 / self.events_per_s
                    launch(self._event(rnd.choice(self.agents)))
                while next_batch <= now and self.batches_per_s:
                    next_batch += 1 / self.batches_per_s
                    launch(self._batch(rnd))
                await asyncio.sleep(0.02)
            if tasks:
                await asyncio.wait(tasks, timeout=45)

    async def _post(self, kind: str, path: str, body) -> httpx.Response | None:
        start = time.monotonic()
        try:
            res = await self.http.post(path, json=body)
        except httpx.HTTPError as exc:
            self.log.append((start, time.monotonic(), kind, type(exc).__name__, None))
            return None
        self.log.append((start, time.monotonic(), kind, res.status_code, res.headers.get("Retry-After")))
        return res

    async def _vital(self, agent: str, tokens: int):
        # One agent in five drifts from its 5th report on (ARI judges from the 5th), so ARI has episodes to open and
        # close: tokens (Simplicité) or loops (Nerf Vague), on and off.
        n, which = self.reports[agent], int(agent[-5:]) % 10
        drifting = n >= 4 and (n - 4) // 3 % 2 == 0  # reports 5-7, 11-13, ... drift; the others are calm
        metrics = {"tokenConsumption": 2000 + tokens % 100, "hallucinationRate": 0.01, "loopCount": 3}
        if drifting and which == 0:
            metrics["tokenConsumption"] = 6000
        elif drifting and which == 1:
            metrics["loopCount"] = 80
        res = await self._post("vital", "/api/vitals", {"agentId": agent, "metrics": metrics})
        if res is not None and res.status_code == 200:
            self.vitals.add(res.json()["vital"]["id"])
            self.reports[agent] += 1

    async def _event(self, agent: str):
        res = await self._post("event", "/api/events", {"agentId": agent, "type": "task_done", "details": "ok"})
        if res is not None and res.status_code == 200:
            self.events.add(res.json()["event"]["id"])

    async def _batch(self, rnd: random.Random):
        now = time.time_ns() // 1_000_000
        points = [{"metric": "response_time", "value": rnd.uniform(50, 400), "timestamp": now - i} for i in
                  range(self.points)]
        res = await self._post("metric", f"/v1/applications/{self.app_id}/metrics", {"points": points})
        if res is not None and res.status_code == 202:
            self.batches[res.json()["batch_id"]] = len(points)

    def first_ok_after(self, t: float, timeout: float = 180) -> float | None:
        """Seconds from `t` to the first acknowledged write among requests started after `t`."""
        deadline, seen = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            upto = len(self.log)  # append-only: read each entry once (the log holds every request)
            done = [end for start, end, _, status, _ in self.log[seen:upto]
                    if start >= t and status in (200, 202)]
            seen = upto
            if done:
                return min(done) - t
            time.sleep(0.1)
        return None


def _lag(bootstrap: str, group: str, topics: list[str]) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in c.list_topics(t, timeout=10).topics[t].partitions]
        lag = 0
        for tp in c.committed(tps, timeout=10):
            lo, hi = c.get_watermark_offsets(tp, timeout=10)
            lag += hi - max(tp.offset, lo)
        return lag
    finally:
        c.close()


def _committed_past(bootstrap: str, group: str, ends: dict, timeout: float = 180) -> float | None:
    """Seconds until `group` has committed at least `ends` ({(topic, partition): offset})
    on every partition: the restarted consumer processed all that was there before."""
    t0 = time.monotonic()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        while time.monotonic() - t0 < timeout:
            try:
                done = c.committed([TopicPartition(t, p) for t, p in ends], timeout=5)
                if all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in done):
                    return time.monotonic() - t0
            except Exception:  # noqa: BLE001 - the broker may be on its way back
                pass
            time.sleep(0.2)
        return None
    finally:
        c.close()


def _end_offsets(bootstrap: str, topics: list[str]) -> dict:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-ends", "enable.auto.commit": False})
    try:
        return {(t, p): c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                for t in topics for p in c.list_topics(t, timeout=10).topics[t].partitions}
    finally:
        c.close()


def _ends(bootstrap: str, topics: list[str]) -> int:
    return sum(_end_offsets(bootstrap, topics).values())


def _settle(bootstrap: str, timeout: float = 300, quiet_s: float = 10) -> tuple[float, int]:
    """Wait until the sink has committed everything, nothing new was derived for `quiet_s`
    and the worker has committed all its input; (seconds it took, records the worker had
    not committed then: more than 0 only when `timeout` ran out, and the run fails)."""
    t0 = time.monotonic()
    worker_topics = [AGENT_VITALS.name, AGENT_EVENTS.name, APP_METRICS.name]
    sink_topics = [t.name for t in RECORD_TOPICS]
    derived = [t.name for t in RECORD_TOPICS if t not in (AGENT_VITALS, AGENT_EVENTS, APP_METRICS)]
    last, quiet_since, uncommitted = None, time.monotonic(), -1
    while time.monotonic() - t0 < timeout:
        ends = _ends(bootstrap, derived)
        if ends != last:
            last, quiet_since = ends, time.monotonic()
        elif _lag(bootstrap, "sophra-sink", sink_topics) == 0 and time.monotonic() - quiet_since >= quiet_s:
            uncommitted = _lag(bootstrap, "sophra-worker", worker_topics)
            if uncommitted == 0:
                return time.monotonic() - t0, 0
        time.sleep(1)
    return time.monotonic() - t0, uncommitted


def _kill(pid: int) -> float:
    t = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    return t


def _outage(load: Load, t: float, until: float) -> dict:
    """The answers to requests started while a part was down."""
    during = [(end - start, status, retry) for start, end, _, status, retry in list(load.log) if t <= start < until]
    refused = [(s, r) for s, status, r in during if status == 503]
    lat = sorted(s for s, _ in refused)
    return {"requests": len(during), "answered_503": len(refused),
            "p50_503_latency_s": round(lat[len(lat) // 2], 3) if lat else None,
            "p99_503_latency_s": round(lat[int(len(lat) * 0.99)], 3) if lat else None,
            "max_503_latency_s": round(max(lat, default=0.0), 3),
            "503_over_1s": sum(1 for x in lat if x > 1),
            "all_503_have_retry_after": all(r == "1" for _, r in refused),
            "statuses": dict(Counter(str(status) for _, status, _ in during))}


def _write_latency(base: str) -> dict[str, float]:
    """The api's own histogram of write answers (`/metrics`): cumulative count per bucket
    bound ("le"), summed over its POST routes. Measured inside the api, it leaves out the
    time this client's own loop took to notice an answer."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    try:
        text = httpx.get(f"{base}/metrics", timeout=10).text
    except httpx.HTTPError:
        return out
    for family in text_string_to_metric_families(text):
        if family.name == "sophra_http_request_duration_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket") and sample.labels.get("method") == "POST":
                    out[sample.labels["le"]] = out.get(sample.labels["le"], 0) + sample.value
    return out


def _server_side(before: dict, after: dict) -> dict:
    """Answers between two readings of `_write_latency`: how many, how many within 1 s."""
    diff = {le: after.get(le, 0) - before.get(le, 0) for le in after}
    total = diff.get("+Inf", 0)
    return {"answered": int(total), "within_1s": int(diff.get("1.0", 0)),
            "over_1s": int(total - diff.get("1.0", 0))}


def _watermarks(c: Consumer, tp: TopicPartition, timeout: float = 60) -> tuple[int, int]:
    """A broker just started answers NOT_LEADER until its partitions have leaders again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return c.get_watermark_offsets(tp, timeout=10)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def check(data: Path, load: Load) -> dict:
    """Exactly once, rollups, ARI: read from the stopped instance's own folder."""
    from deploy.local_kafka import LocalKafka
    from pipeline.ari.engine import new_state, step_event, step_vital
    from pipeline.store.clickhouse import connect
    from schemas import codec

    ch = connect(f"chdb://{data / 'clickhouse'}", "sophra")
    out = {}
    for kind, table, column, acked in (("vitals", "agent_vitals", "id", load.vitals),
                                       ("events", "agent_events", "id", load.events)):
        stored = Counter(r[0] for r in ch.query(f"SELECT {column} FROM {table} FINAL").result_rows)
        raw = Counter(r[0] for r in ch.query(f"SELECT {column} FROM {table}").result_rows)
        out[kind] = {"acknowledged": len(acked), "lost": len(acked - set(stored)),
                     "duplicated": sum(1 for i in acked if stored[i] > 1),
                     "raw_rows_before_merge_over_1": sum(1 for i in acked if raw[i] > 1)}
    points = Counter((b, i) for b, i in ch.query("SELECT batch_id, idx FROM app_metrics FINAL").result_rows)
    want = {(b, i) for b, n in load.batches.items() for i in range(n)}
    out["metric_points"] = {"acknowledged": len(want), "batches": len(load.batches),
                            "lost": len(want - set(points)), "duplicated": sum(1 for p in want if points[p] > 1)}

    raw_vitals = ch.query("SELECT count() FROM agent_vitals FINAL").result_rows[0][0]
    raw_points = ch.query("SELECT count() FROM app_metrics FINAL").result_rows[0][0]
    rollups = {}
    for g in ("1m", "5m", "1h", "1d"):
        rollups[f"agent_vitals_{g}"] = ch.query(f"SELECT sum(count) FROM agent_vitals_{g} "
                                                "WHERE metric = 'tokenConsumption'").result_rows[0][0]
        rollups[f"app_metrics_{g}"] = ch.query(f"SELECT sum(count) FROM app_metrics_{g}").result_rows[0][0]
    out["rollups"] = {"raw_vitals": raw_vitals, "raw_points": raw_points, **rollups,
                      "equal": all(v == (raw_vitals if k.startswith("agent") else raw_points)
                                   for k, v in rollups.items())}

    # ARI uninterrupted: the engine over every record on the topics, per agent in offset order.
    kafka = LocalKafka(data / "kafka")
    bootstrap = kafka.start()
    try:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-check", "enable.auto.commit": False})
        per_key: dict[bytes, list] = {}
        for topic in (AGENT_EVENTS.name, AGENT_VITALS.name):
            n = len(c.list_topics(topic, timeout=10).topics[topic].partitions)
            marks = {p: _watermarks(c, TopicPartition(topic, p)) for p in range(n)}
            c.assign([TopicPartition(topic, p, lo) for p, (lo, _) in marks.items()])
            left = sum(hi - lo for lo, hi in marks.values())
            got = []
            while left > 0:
                for m in c.consume(5000, timeout=1):
                    if not m.error():
                        got.append((m.partition(), m.offset(), m.key(), m.value()))
                        left -= 1
            c.unassign()
            for _, offset, key, value in sorted(got):
                per_key.setdefault(key, []).append((topic, offset, value))
        c.close()
    finally:
        kafka.stop()
    derived, statuses = {}, {}
    for key, records in per_key.items():
        state = new_state()
        # events first (they never open an episode here: none is a directive conflict), then vitals in offset order
        for topic, _, value in records:
            kind, record = codec.decode(value)
            if kind == "agent_event":
                state = step_event(state, record)
            else:
                state, versions, status = step_vital(state, record)
                derived.update({v["intervention_id"]: v for v in versions})
                statuses[key] = status or statuses.get(key)
    cols = ["tenant", "agent_id", "intervention_id", "protocol", "severity", "description", "tokens_saved", "details",
            "outcome", "outcome_details", "tokens_saved_measured"]  # every field of the engine's records
    rows = ch.query(f"SELECT {', '.join(cols)}, toUnixTimestamp64Milli(opened_at), "
                    "toUnixTimestamp64Milli(closed_at), version FROM ari_interventions FINAL").result_rows
    stored = {r[2]: dict(zip(cols + ["opened_at", "closed_at", "version"], r)) for r in rows}
    mismatched = sorted(i for i in set(stored) | set(derived) if stored.get(i) != derived.get(i))
    st_rows = ch.query("SELECT tenant, agent_id, snapshots, version FROM ari_status FINAL").result_rows
    st_stored = {f"{t}/{a}".encode(): (n, v) for t, a, n, v in st_rows}
    st_derived = {k: (s["snapshots"], s["version"]) for k, s in statuses.items() if s}
    st_mismatched = sorted(k for k in set(st_stored) | set(st_derived) if st_stored.get(k) != st_derived.get(k))
    out["ari"] = {"interventions": len(derived), "stored": len(stored), "mismatched": len(mismatched),
                  "mismatched_ids": mismatched[:5], "statuses": len(st_derived),
                  "statuses_mismatched": len(st_mismatched),
                  # what differs, so a failure says whether a record was missed or applied twice
                  "diffs": {"interventions": {i: _diff(stored.get(i), derived.get(i)) for i in mismatched[:3]},
                            "statuses": {k.decode(): {"stored (snapshots, version)": st_stored.get(k),
                                                      "uninterrupted": st_derived.get(k)}
                                         for k in st_mismatched[:5]}}}
    return out


def _diff(stored: dict | None, derived: dict | None) -> dict:
    if stored is None or derived is None:
        return {"stored": stored is not None, "uninterrupted": derived is not None}
    return {k: {"stored": stored.get(k), "uninterrupted": derived.get(k)}
            for k in set(stored) | set(derived) if stored.get(k) != derived.get(k)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--events-per-s", type=float, default=20)
    ap.add_argument("--batches-per-s", type=float, default=2)
    ap.add_argument("--points", type=int, default=50, help="points per /v1 metric batch")
    ap.add_argument("--warmup", type=float, default=60, help="seconds of load before the first fault")
    ap.add_argument("--between", type=float, default=60, help="seconds of load after each recovery")
    ap.add_argument("--tail", type=float, default=30, help="seconds of load after the last fault")
    ap.add_argument("--data-dir", type=Path, help="default: a temporary folder")
    ap.add_argument("--json", type=Path, help="also write the result here")
    ap.add_argument("--requests-csv", type=Path, help="write every request: start (s from the first), seconds, kind, "
                    "status")
    args = ap.parse_args(argv)

    temp = None if args.data_dir else Path(tempfile.mkdtemp(prefix="sophra-faults-"))
    data = (args.data_dir or temp) / "data"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL",
                                                             "SOPHRA_SMTP_URL")}
    env.update(SOPHRA_DATA_DIR=str(data), SOPHRA_PORT=str(port), SOPHRA_KAFKA_PORT=str(_free_port()))
    marker = f"SOPHRA_DATA_DIR={data}"
    base = f"http://127.0.0.1:{port}"
    up = Up(env)
    try:
        return _run(args, data, env, marker, base, up)
    finally:
        if up.proc is not None and up.proc.poll() is None:
            up.proc.send_signal(signal.SIGINT)
            try:
                up.proc.wait(60)
            except subprocess.TimeoutExpired:
                up.proc.kill()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _run(args, data: Path, env: dict, marker: str, base: str, up: Up) -> int:
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: where is it?
    _say(f"starting sophra up in {data}")
    t_start = time.monotonic()
    up.start()
    started_s = time.monotonic() - t_start
    email = "faults@bench.sophra"
    key = httpx.post(f"{base}/api/keys", json={"email": email}).json()["key"]
    subprocess.run([sys.executable, "-m", "sophra", "plan", email, "enterprise"], env=env, cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    app_id = httpx.post(f"{base}/v1/applications", headers={"Authorization": f"Bearer {key}"},
                        json={"name": "faults"}).json()["id"]
    load = Load(base, key, app_id, args.agents, args.events_per_s, args.batches_per_s, args.points)
    load.start()
    faults = {}
    try:
        _say(f"load running: {args.agents} agents, {args.events_per_s:g} events/s, {args.batches_per_s:g} batches/s")
        time.sleep(args.warmup)

        _say("kill -9 the worker")
        [worker] = [p for p in _marked(marker) if _cmdline(p)[-3:-1] == [b"sophra", b"worker"]]
        inputs = [AGENT_VITALS.name, AGENT_EVENTS.name]
        ends = _end_offsets(up.kafka, inputs)
        t = _kill(worker)
        back = up.wait_for(r"^worker restarted", 120, since=t)
        caught_up = _committed_past(up.kafka, "sophra-worker", ends)
        faults["worker"] = {"restarted_after_s": round(back - t, 2),
                            "writes_ok_after_s": round(load.first_ok_after(t) or -1, 2),
                            # ARI current again: the new worker processed what was there at the kill
                            "processing_again_after_s": round(back - t + caught_up, 2) if caught_up is not None else None}
        time.sleep(args.between)

        _say("kill -9 the broker")
        [broker] = [p for p in _marked(marker) if b"kafka.Kafka" in _cmdline(p)]
        latency_before = _write_latency(base)
        t = _kill(broker)
        back = up.wait_for(r"^broker restarted", 180, since=t)
        latency_after = _write_latency(base)
        ok = load.first_ok_after(back)
        faults["broker"] = {"restarted_after_s": round(back - t, 2),
                            "writes_ok_after_s": round(back - t + (ok or 0), 2),
                            "while_down": _outage(load, t + 0.5, back),  # from 0.5 s on: in flight at the kill excluded
                            # the api's own timing of every write it answered from the kill to the restart
                            "api_side": _server_side(latency_before, latency_after)}
        time.sleep(args.between)

        _say("kill -9 sophra up (the api with its sink)")
        ends = _end_offsets(up.kafka, inputs)
        t = _kill(up.proc.pid)  # the api with its sink; the children follow it (death signal)
        up.proc.wait()
        deadline = time.monotonic() + 60
        while _marked(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        gone = time.monotonic()
        again = up.start()
        caught_up = _committed_past(up.kafka, "sophra-worker", ends)
        faults["api"] = {"up_again_after_s": round(again - t, 2), "children_gone_after_s": round(gone - t, 2),
                         "writes_ok_after_s": round(load.first_ok_after(t) or -1, 2),
                         "worker_processing_again_after_s": round(again - t + caught_up, 2)
                         if caught_up is not None else None}
        time.sleep(args.tail)
    finally:
        load.stop()
    _say("load stopped; waiting for the worker and the sink to catch up")
    settle_s, worker_uncommitted = _settle(up.kafka)
    up.proc.send_signal(signal.SIGINT)
    up.proc.wait(120)

    _say("checking the data folder")
    result = {"agents": args.agents, "started_s": round(started_s, 1), "faults": faults, **check(data, load),
              "settle_s": round(settle_s, 1), "worker_uncommitted_at_stop": worker_uncommitted,
              "sophra_up_said": [line for _, line in up.lines if re.search(r"exited with|restart|did not start", line)],
              "requests": dict(Counter(f"{kind} {status}" for _, _, kind, status, _ in load.log))}
    if args.requests_csv:
        t0 = min((start for start, *_ in load.log), default=0.0)
        args.requests_csv.write_text("".join(f"{start - t0:.3f},{end - start:.3f},{kind},{status}\n"
                                             for start, end, kind, status, _ in sorted(load.log)))
    ok = (all(result[k]["lost"] == 0 and result[k]["duplicated"] == 0 for k in ("vitals", "events", "metric_points"))
          and result["rollups"]["equal"] and result["ari"]["mismatched"] == 0 and worker_uncommitted == 0
          and result["ari"]["statuses_mismatched"] == 0 and faults["broker"]["while_down"]["all_503_have_retry_after"])
    result["ok"] = ok
    line = json.dumps(result)
    if args.json:
        args.json.write_text(line + "\n")
    print(json.dumps(result, indent=2), file=sys.stderr)
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
