"""Alerts: how long from a metric POST to the email, and how many rule evaluations per second
one worker does.

Setup: a local broker (deploy/local_kafka.py) in a temp dir with a fresh topic prefix;
`sophra api --with-sink`, `sophra worker` and `sophra notifier` as subprocesses (logs in
the temp dir). An SMTP server (aiosmtpd) in this
process on loopback, SOPHRA_SMTP_URL pointing at it. Through the api: one key (put on the enterprise plan with `sophra plan`,
so the bench is not refused by the quota), --apps applications and --rules rules spread
evenly over them: rule k of an application watches the custom metric bench_m<k>,
`bench_m<k> > 0.5`, window 1m (mean), one email action whose recipient names the rule.

1. Alert latency. Warm-up: one POST per application with a point of 0.1 for each of its
   metrics, repeated for the applications whose rules have not all published a status
   for it (the worker's rule book follows the rules topic on its own). Then one POST per
   application, one after another, carrying a point of 2.0 for each of its metrics: each
   rule's window mean crosses 0.5, so every rule fires once. Latency of a rule = the time
   its email's DATA reached the SMTP handler (handle_DATA) minus the time this script got
   the 202 of its application's POST, on one monotonic clock. Reported: p50, p99, max over
   all rules, the worker's share (the 202 to the Kafka CreateTime of the firing transition
   on app.alerts, stamped by the worker's producer), and every email that is missing, a
   duplicate, unexpected, or has another Subject than `[FIRING] <rule> — <application>`.
2. Rule evaluations per second (one evaluation = one rule evaluated at one bucket):
   - engine: pipeline.alerts.evaluate.observe in this process, before the stack starts,
     over rules built with Rule.from_record from records shaped like the api's and a
     stream of --batches batches per application (one point per metric each, like one
     POST, timestamps 10 ms apart, so each batch is one bucket of every rule: one
     evaluation per rule per batch; the count is checked once against the engine's own
     step function). Best of 3 passes, each on fresh states warmed by one firing batch.
   - worker: the api and the notifier are stopped (the sink would compete for the two
     cores, and no email is wanted); the worker keeps running, idle and with every rule
     firing. The same stream, encoded as app_metric_batch records, is produced straight to
     app.metrics (confluent-kafka with producer_config), values above the threshold, so
     no rule changes state. Done = every rule has a status on app.alert_status whose
     evaluated_at is its application's last timestamp. Rate = evaluations / (Kafka
     CreateTime of the last such status - the first produce). Statuses are read back only
     once the topic has been idle for 2 s, so the observer does not compete with the
     worker. The worker's CPU time over that run comes from /proc. The worker does all it
     does with app.metrics: beside the alert agent, the deployments/insights agent reads
     the same records. An application whose partition the worker finishes a minute
     before the others goes no_data meanwhile (reported as transitions); that is right.

Usage: python bench/alerts.py [--rules 1000] [--apps 100] [--batches 200] [--timeout 600] [--keep]
"""
import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from email import policy
from email.parser import BytesParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402

from deploy.local_kafka import LocalKafka, fetch  # noqa: E402
from pipeline.alerts import evaluate  # noqa: E402
from pipeline.alerts.conditions import Rule  # noqa: E402
from pipeline.ids import IdGenerator  # noqa: E402
from pipeline.producer import producer_config  # noqa: E402
from pipeline.topics import APP_ALERT_STATUS, APP_ALERTS, APP_METRICS, entity_key, ensure_topics  # noqa: E402
from schemas import codec  # noqa: E402
from sophra.processes import spawn, terminate  # noqa: E402
from stage import free_port, produce  # noqa: E402  (bench/, this script's folder, is on the path)

THRESHOLD, WARM_VALUE, CROSSING_VALUE = 0.5, 0.1, 2.0
STEP_MS = 10          # between a stream's batches: 100 batches per 1 s bucket (window 1m / 60)
WORKER_BATCH = 500    # pipeline/worker/alerts.py BATCH: one wall clock per batch of records


class BenchError(RuntimeError):
    pass


class Deadline:
    def __init__(self, seconds: float):
        self.seconds, self.end = seconds, time.monotonic() + seconds

    def check(self, what: str) -> None:
        if time.monotonic() > self.end:
            raise BenchError(f"timed out ({self.seconds:.0f} s budget) while {what}")

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0)
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "nproc": len(os.sched_getaffinity(0)),
            "machine": f"{platform.machine()}, {model}, {mem_kb / 1024 ** 2:.0f} GB",
            "python": platform.python_version(), "loadavg_1m_at_start": round(os.getloadavg()[0], 2)}


def proc_cpu(pid: int) -> float:
    """user+system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- rules and streams -----------------------------------------------------------------------

def metric(k: int) -> str:
    return f"bench_m{k}"


def rule_name(a: int, k: int) -> str:
    return f"bench a{a:03d} r{k}"


def recipient(a: int, k: int) -> str:
    return f"a{a:03d}.r{k}@bench.example.com"


def rule_body(a: int, k: int) -> dict:
    return {"name": rule_name(a, k),
            "condition": {"metric": metric(k), "operator": ">", "threshold": THRESHOLD, "window": "1m"},
            "actions": [{"type": "email", "recipients": [recipient(a, k)]}]}


def rule_record(tenant: str, app_id: str, a: int, k: int) -> dict:
    """An alert_rule record as api/rules.py `create` writes it for rule_body(a, k)."""
    body = rule_body(a, k)
    return {"tenant": tenant, "id": f"alert_bench{a:03d}{k:03d}", "application_id": app_id, "name": body["name"],
            "condition": json.dumps({**body["condition"], "aggregation": "mean"}),
            "actions": json.dumps(body["actions"]), "enabled": True, "created_at": now_ms(), "scope": "application",
            "agent_id": None, "for_ms": 0, "repeat_interval_ms": 4 * 3_600_000, "silenced_until": None,
            "updated_at": None}


def stream(apps: int, per_app: int, batches: int, start_ms: int, seed: int) -> list[tuple[int, list[tuple]]]:
    """`batches` batches per application, round-robin: (app index, [(metric, value, ts)]),
    one point per metric at one timestamp, values above the threshold."""
    rng = random.Random(seed)
    out = []
    for i in range(batches):
        ts = start_ms + i * STEP_MS
        for a in range(apps):
            out.append((a, [(metric(k), round(rng.uniform(0.6, 3.0), 3), ts) for k in range(per_app)]))
    return out


def evaluations(rules: tuple[Rule, ...], points: list[tuple]) -> int:
    """How many rule evaluations `observe` does for these points: per series, one per bucket
    the points reach, for each enabled rule reading it."""
    groups: dict[str, list[Rule]] = {}
    for r in rules:
        if r.enabled:
            groups.setdefault(r.series, []).append(r)
    n = 0
    for group in groups.values():
        width, m = group[0].bucket_ms, group[0].metric
        n += len({t - t % width for mm, _, t in points if mm == m}) * len(group)
    return n


def run_engine(apps: int, per_app: int, batches: int, seed: int) -> dict:
    tenant = "t_bench"
    rules = {a: tuple(Rule.from_record(rule_record(tenant, f"app_bench{a:03d}", a, k)) for k in range(per_app))
             for a in range(apps)}
    start = now_ms() - 60_000
    warm = [(a, [(metric(k), CROSSING_VALUE, start - STEP_MS) for k in range(per_app)]) for a in range(apps)]
    items = stream(apps, per_app, batches, start, seed)
    expected = sum(evaluations(rules[a], pts) for a, pts in items)

    # Once, untimed: count the engine's own evaluations (calls of its step function).
    counted = [0]
    step = evaluate._step

    def counting_step(*a, **kw):
        counted[0] += 1
        return step(*a, **kw)

    states = {a: evaluate.new_state() for a in rules}
    for a, pts in warm:
        evaluate.observe(states[a], list(rules[a]), pts, now_ms())
    evaluate._step = counting_step
    try:
        for a, pts in items:
            evaluate.observe(states[a], list(rules[a]), pts, now_ms())
    finally:
        evaluate._step = step
    if counted[0] != expected:
        raise BenchError(f"the engine evaluated {counted[0]} times, the bench counted {expected}")
    firing = sum(rs["state"] == "firing" for s in states.values() for rs in s["rules"].values())
    if firing != apps * per_app:
        raise BenchError(f"{firing} rules firing after the engine's stream, expected {apps * per_app}")

    passes = []
    for _ in range(3):
        states = {a: evaluate.new_state() for a in rules}
        for a, pts in warm:
            evaluate.observe(states[a], list(rules[a]), pts, now_ms())
        outputs = 0
        t0, c0 = time.perf_counter(), time.process_time()
        wall = now_ms()
        for i, (a, pts) in enumerate(items):
            if i % WORKER_BATCH == 0:
                wall = now_ms()
            outputs += len(evaluate.observe(states[a], list(rules[a]), pts, wall))
        passes.append((time.perf_counter() - t0, time.process_time() - c0, outputs))
    seconds, cpu, outputs = min(passes)
    return {"evaluations": expected, "seconds": seconds, "cpu": cpu, "rate": expected / seconds,
            "passes_s": [round(p[0], 3) for p in passes], "outputs": outputs}


# --- SMTP ------------------------------------------------------------------------------------

class Mailbox:
    """aiosmtpd handler: every accepted message with the monotonic time DATA reached it."""

    def __init__(self):
        self.mails: list[tuple[float, list[str], str, str]] = []  # (at, rcpt_tos, subject, message-id)

    async def handle_DATA(self, server, session, envelope):
        at = time.monotonic()
        msg = BytesParser(policy=policy.default).parsebytes(envelope.original_content or envelope.content,
                                                            headersonly=True)
        self.mails.append((at, list(envelope.rcpt_tos), str(msg["Subject"]), str(msg["Message-ID"])))
        return "250 Message accepted for delivery"


# --- Kafka reading ---------------------------------------------------------------------------

class Reader:
    """A group-less reader of one topic from given offsets."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                                  "enable.auto.commit": False, "fetch.max.bytes": 52_428_800})
        # Watermarks through a consumer of their own: behind an assigned consumer's fetches
        # (fetch.wait.max.ms) each query would wait up to half a second.
        self.meta = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                              "enable.auto.commit": False})
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.next: dict[int, int] | None = None

    def ends(self) -> dict[int, int]:
        return {tp.partition: self.meta.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in self.tps}

    def start_at_end(self) -> None:
        self.next = self.ends()
        self.consumer.assign([TopicPartition(tp.topic, tp.partition, self.next[tp.partition]) for tp in self.tps])

    def read(self, on_message, deadline: Deadline, what: str, until_end: bool = True, timeout: float = 0.2) -> None:
        """Up to the current ends (until_end), or one poll."""
        ends = self.ends() if until_end else None
        while True:
            for msg in self.consumer.consume(10_000, timeout=timeout):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise BenchError(f"reading {msg.topic()}: {msg.error()}")
                self.next[msg.partition()] = msg.offset() + 1
                on_message(msg)
            if not until_end or all(self.next[p] >= e for p, e in ends.items()):
                return
            deadline.check(what)

    def close(self) -> None:
        self.consumer.close()
        self.meta.close()


# --- the stack -------------------------------------------------------------------------------

class Stack:
    def __init__(self, workdir: Path, smtp_url: str):
        self.workdir, self.smtp_url = workdir, smtp_url
        self.prefix = f"bench{uuid.uuid4().hex[:8]}."
        self.kafka = LocalKafka(workdir / "kafka")
        self.procs: dict[str, object] = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start_broker(self) -> str:
        fetch()
        self.bootstrap = self.kafka.start()
        ensure_topics(self.bootstrap, self.prefix)
        self.env = {k: v for k, v in os.environ.items() if k not in ("CLICKHOUSE_URL",)}
        self.env.update(KAFKA_BOOTSTRAP_SERVERS=self.bootstrap, SOPHRA_TOPIC_PREFIX=self.prefix,
                        SOPHRA_DATA_DIR=str(self.workdir), SOPHRA_WORKER_ID=self.prefix + "worker",
                        SOPHRA_NOTIFIER_GROUP=self.prefix + "notifier", SOPHRA_SINK_GROUP=self.prefix + "sink",
                        SOPHRA_SMTP_URL=self.smtp_url, SOPHRA_PORT=str(self.port), SOPHRA_PUBLIC_URL=self.url,
                        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
        return self.bootstrap

    def spawn(self, name: str, *args: str):
        with open(self.workdir / f"{name}.log", "ab") as log:
            # cwd: the worker's Faust app writes a <worker id>-data folder there
            self.procs[name] = spawn([sys.executable, "-m", "sophra", *args], stdout=log, env=self.env,
                                     cwd=self.workdir)
        return self.procs[name]

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc is not None and proc.poll() is not None:
                raise BenchError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def stop(self, name: str):
        proc = self.procs.get(name)
        if proc is None:
            return None
        if name == "api" and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # its Ctrl-C (uvicorn re-raises a SIGTERM after shutting down)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        code = terminate(proc)
        self.procs[name] = None
        return code

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join((self.workdir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_problems(self, name: str) -> dict:
        try:
            text = (self.workdir / f"{name}.log").read_text(errors="replace").splitlines()
        except OSError:
            return {"errors": 0, "warnings": 0, "samples": []}
        bad = [line for line in text if any(w in line for w in ("ERROR", "CRITICAL", "Traceback", "[E]"))]
        warn = [line for line in text if "WARNING" in line or "[W]" in line]
        samples, seen = [], set()
        for line in bad + warn:
            key = line[24:120]
            if key not in seen:
                seen.add(key)
                samples.append(line[:300])
        return {"errors": len(bad), "warnings": len(warn), "samples": samples[:6]}

    def close(self) -> None:
        for name in ("notifier", "api", "worker", *self.procs):
            self.stop(name)
        self.kafka.stop()


def wait_api(stack: Stack, deadline: Deadline) -> None:
    while True:
        try:
            if httpx.get(f"{stack.url}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        stack.check_alive()
        deadline.check("waiting for the api's /healthz")
        time.sleep(0.1)


async def post_many(url: str, key: str, requests: list[tuple[str, dict]], clients: int = 8) -> list[dict]:
    queue = list(enumerate(requests))
    out: list[dict | None] = [None] * len(requests)

    async def client():
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            while queue:
                i, (path, body) = queue.pop(0)
                res = await http.post(path, json=body)
                if res.status_code not in (200, 201, 202):
                    raise BenchError(f"POST {path}: {res.status_code} {res.text[:300]}")
                out[i] = res.json()

    await asyncio.gather(*(client() for _ in range(clients)))
    return out


def setup(stack: Stack, apps: int, per_app: int, deadline: Deadline) -> tuple[str, list[str], dict]:
    """Key on the enterprise plan, the applications and their rules; returns
    (key, application ids, rule id -> (app index, k))."""
    email = f"bench-{uuid.uuid4().hex[:8]}@sophra.local"
    res = httpx.post(f"{stack.url}/api/keys", json={"email": email}, timeout=30)
    if res.status_code != 201:
        raise BenchError(f"POST /api/keys: {res.status_code} {res.text[:200]}")
    key = res.json()["key"]
    subprocess.run([sys.executable, "-m", "sophra", "plan", email, "enterprise"], env=stack.env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=stack.workdir)
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        while http.get("/v1/applications").headers.get("X-RateLimit-Limit") != "unlimited":
            deadline.check("waiting for the api to see the enterprise plan")
            time.sleep(0.1)
    app_ids = [a["id"] for a in asyncio.run(post_many(stack.url, key, [
        ("/v1/applications", {"name": f"bench app {a:03d}"}) for a in range(apps)]))]
    made = asyncio.run(post_many(stack.url, key, [
        (f"/v1/applications/{app_ids[a]}/alerts", rule_body(a, k)) for a in range(apps) for k in range(per_app)]))
    rules = {r["id"]: (i // per_app, i % per_app) for i, r in enumerate(made)}
    return key, app_ids, rules


def points_body(per_app: int, value: float, ts: int) -> dict:
    return {"points": [{"metric": metric(k), "value": value, "timestamp": ts} for k in range(per_app)]}


def warm_up(stack: Stack, key: str, app_ids: list[str], rules: dict, per_app: int, deadline: Deadline) -> dict:
    """Below-threshold points until every rule published a status for them; returns
    {"rounds", "tenant"}."""
    reader = Reader(stack.bootstrap, stack.prefix + APP_ALERT_STATUS.name, APP_ALERT_STATUS.partitions)
    reader.start_at_end()
    sent: dict[int, int] = {}      # app index -> timestamp of its latest warm-up point
    ok: set[str] = set()
    tenant = [None]

    def on_status(msg):
        _, r = codec.decode(msg.value())
        tenant[0] = r["tenant"]
        if r["rule_id"] in rules:
            a = rules[r["rule_id"]][0]
            if r["evaluated_at"] == sent.get(a) and r["state"] == "ok":
                ok.add(r["rule_id"])

    rounds = 0
    try:
        with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            while len(ok) < len(rules):
                rounds += 1
                if rounds > 6:
                    raise BenchError(f"after 6 warm-up rounds only {len(ok)} of {len(rules)} rules have a status")
                missing = sorted({a for rid, (a, _) in rules.items() if rid not in ok})
                for a in missing:
                    sent[a] = now_ms()
                    res = http.post(f"/v1/applications/{app_ids[a]}/metrics", json=points_body(per_app, WARM_VALUE,
                                                                                                sent[a]))
                    if res.status_code != 202:
                        raise BenchError(f"warm-up POST: {res.status_code} {res.text[:200]}")
                until = time.monotonic() + 10
                while len(ok) < len(rules) and time.monotonic() < until:
                    reader.read(on_status, deadline, "reading warm-up statuses", until_end=False)
                    stack.check_alive()
                    deadline.check("waiting for warm-up statuses")
    finally:
        reader.close()
    return {"rounds": rounds, "tenant": tenant[0]}


def latency_run(stack: Stack, mailbox: Mailbox, key: str, app_ids: list[str], rules: dict, per_app: int,
                deadline: Deadline, email_timeout: float) -> dict:
    alerts = Reader(stack.bootstrap, stack.prefix + APP_ALERTS.name, APP_ALERTS.partitions)
    alerts.start_at_end()
    before = len(mailbox.mails)
    acked: dict[int, tuple[float, int]] = {}   # app index -> (monotonic, wall ms) of its 202
    ts_of: dict[int, int] = {}
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        http.get("/healthz")  # open the connection before the first timed POST
        for a, app_id in enumerate(app_ids):
            ts_of[a] = now_ms()
            res = http.post(f"/v1/applications/{app_id}/metrics", json=points_body(per_app, CROSSING_VALUE, ts_of[a]))
            acked[a] = (time.monotonic(), now_ms())
            if res.status_code != 202:
                raise BenchError(f"crossing POST: {res.status_code} {res.text[:200]}")
    posting = acked[len(app_ids) - 1][0] - acked[0][0]
    by_rcpt = {recipient(a, k): rid for rid, (a, k) in rules.items()}
    want = len(rules)
    until = time.monotonic() + email_timeout

    def covered() -> int:
        return len({r for m in mailbox.mails[before:] for r in m[1] if r in by_rcpt})

    while covered() < want and time.monotonic() < until:
        stack.check_alive()
        deadline.check("waiting for the emails")
        time.sleep(0.05)
    complete_at = time.monotonic()
    time.sleep(3)  # anything more (a duplicate) arrives now or not at all in this run

    mails = mailbox.mails[before:]
    first: dict[str, float] = {}
    copies: dict[str, int] = {}
    unexpected, wrong_subject = [], []
    apps_name = {a: f"bench app {a:03d}" for a in range(len(app_ids))}
    for at, rcpts, subject, _mid in mails:
        known = [r for r in rcpts if r in by_rcpt]
        if not known:
            unexpected.append((rcpts, subject))
            continue
        for r in known:
            rid = by_rcpt[r]
            a, k = rules[rid]
            copies[rid] = copies.get(rid, 0) + 1
            first[rid] = min(first.get(rid, at), at)
            if subject != f"[FIRING] {rule_name(a, k)} — {apps_name[a]}":
                wrong_subject.append(subject)
    lat = sorted((first[rid] - acked[rules[rid][0]][0]) * 1000 for rid in first)

    # The worker's share: 202 -> the firing transition's CreateTime on app.alerts.
    fired: dict[str, int] = {}
    transitions = []

    def on_transition(msg):
        _, r = codec.decode(msg.value())
        transitions.append((r["rule_id"], r["state"], r["notify"]))
        if r["rule_id"] in rules and r["state"] == "firing" and r["rule_id"] not in fired:
            fired[r["rule_id"]] = msg.timestamp()[1]

    alerts.read(on_transition, deadline, "reading the transitions")
    alerts.close()
    worker_share = sorted(fired[rid] - acked[rules[rid][0]][1] for rid in fired)
    return {
        "rules": want, "emails": len(mails), "rules_emailed": len(first), "missing": want - len(first),
        "duplicates": sum(c - 1 for c in copies.values()), "unexpected": len(unexpected),
        "wrong_subject": len(wrong_subject), "wrong_subject_samples": wrong_subject[:3],
        "p50_ms": pct(lat, 50) if lat else None, "p99_ms": pct(lat, 99) if lat else None,
        "max_ms": lat[-1] if lat else None, "min_ms": lat[0] if lat else None,
        "posting_s": posting, "all_in_s": complete_at - acked[0][0],
        "emails_per_s": (len(mails) - 1) / (mails[-1][0] - mails[0][0]) if len(mails) > 1 else None,
        "transitions": len(transitions), "firing_transitions": len(fired),
        "other_transitions": [t for t in transitions if t[1] != "firing"][:5],
        "worker_p50_ms": pct(worker_share, 50) if worker_share else None,
        "worker_p99_ms": pct(worker_share, 99) if worker_share else None,
        "last_ts": max(ts_of.values()),
    }


def worker_run(stack: Stack, tenant: str, app_ids: list[str], rules: dict, per_app: int, batches: int,
               start_ms: int, seed: int, deadline: Deadline) -> dict:
    """Produce the stream to app.metrics with the worker running; time until every rule's
    status reflects its application's last batch."""
    worker = stack.procs["worker"]
    statuses = Reader(stack.bootstrap, stack.prefix + APP_ALERT_STATUS.name, APP_ALERT_STATUS.partitions)
    transitions = Reader(stack.bootstrap, stack.prefix + APP_ALERTS.name, APP_ALERTS.partitions)
    statuses.start_at_end()
    transitions.start_at_end()
    ids = IdGenerator(31)  # a node id the api (0) does not use
    topic = stack.prefix + APP_METRICS.name
    items = stream(len(app_ids), per_app, batches, start_ms, seed)
    last_ts = {}
    encoded = []
    for a, pts in items:
        record = {"tenant": tenant, "application_id": app_ids[a], "id": ids.next_id(), "received_at": now_ms(),
                  "points": [{"metric": m, "value": v, "timestamp": t} for m, v, t in pts]}
        encoded.append((entity_key(tenant, app_ids[a]), codec.encode("app_metric_batch", record)))
        last_ts[a] = pts[0][2]
    expected = per_app * len(items)  # one evaluation per rule per batch (see stream())
    producer = Producer(producer_config(stack.bootstrap))
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    cpu0 = proc_cpu(worker.pid)
    t0 = time.time()
    for key, value in encoded:
        produce(producer, topic, key, value, on_delivery)
        producer.poll(0)
    if producer.flush(60) or errors:
        raise BenchError(f"producing the stream failed: {errors[:3] or 'records left undelivered'}")
    produced = time.time()

    done: dict[str, int] = {}
    first_out = [None]
    count = [0]

    def on_status(msg):
        count[0] += 1
        ts = msg.timestamp()[1]
        first_out[0] = ts if first_out[0] is None else min(first_out[0], ts)
        _, r = codec.decode(msg.value())
        rid = r["rule_id"]
        if rid in rules and rid not in done and r["evaluated_at"] == last_ts[rules[rid][0]]:
            done[rid] = ts

    last_total, idle = -1, 0
    while True:
        stack.check_alive()
        deadline.check(f"waiting for the worker's statuses ({len(done)} of {len(rules)} rules done)")
        total = sum(statuses.ends().values())
        idle = idle + 1 if total == last_total else 0
        last_total = total
        if idle >= 8:  # 2 s without a new status: read them back
            statuses.read(on_status, deadline, "reading the statuses")
            if len(done) == len(rules):
                break
            idle = 0
        time.sleep(0.25)
    seen, cpu1 = time.time(), proc_cpu(worker.pid)
    moved: dict[str, int] = {}
    moved_samples = []

    def on_transition(msg):
        _, r = codec.decode(msg.value())
        kind = f"{r['previous_state']}->{r['state']} ({r['notify']})"
        moved[kind] = moved.get(kind, 0) + 1
        if len(moved_samples) < 3:
            moved_samples.append({k: r[k] for k in ("rule_id", "previous_state", "state", "notify", "value", "at",
                                                    "started_at", "wall_at")})

    transitions.read(on_transition, deadline, "reading the transitions")
    statuses.close()
    transitions.close()
    end = max(done.values()) / 1000
    return {"batches": len(items), "points": len(items) * per_app, "evaluations": expected,
            "seconds": end - t0, "rate": expected / (end - t0), "produce_s": produced - t0,
            "first_status_s": first_out[0] / 1000 - t0, "cpu": cpu1 - cpu0, "cpu_window_s": seen - t0,
            "statuses": count[0], "transitions": sum(moved.values()), "transition_kinds": moved,
            "transition_samples": moved_samples, "t0_ms": int(t0 * 1000), "last_ts": max(last_ts.values())}


# --- main ------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", type=int, default=1000, help="rules in all, spread evenly over the applications")
    ap.add_argument("--apps", type=int, default=100, help="applications")
    ap.add_argument("--batches", type=int, default=200,
                    help="metric batches per application in the throughput streams (engine and worker)")
    ap.add_argument("--email-timeout", type=float, default=120, help="seconds to wait for every email")
    ap.add_argument("--timeout", type=float, default=600, help="budget for the whole run, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, broker data)")
    args = ap.parse_args()
    if args.rules % args.apps or args.rules < args.apps:
        raise SystemExit("--rules must be a multiple of --apps")
    per_app = args.rules // args.apps
    deadline = Deadline(args.timeout)
    info = machine()
    seed = 7
    print(f"{info['date']} · nproc {info['nproc']} · {info['machine']} · Python {info['python']} · "
          f"load average {info['loadavg_1m_at_start']} at start", flush=True)
    print(f"{args.apps} applications x {per_app} rules = {args.rules} rules "
          f"(bench_m<k> > {THRESHOLD}, window 1m, mean, one email action each)", flush=True)

    engine = run_engine(args.apps, per_app, args.batches, seed)
    print(f"engine: {engine['evaluations']:,} evaluations, best of 3 passes {engine['seconds']:.2f} s "
          f"(passes {engine['passes_s']})", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="sophra-bench-alerts-"))
    mailbox = Mailbox()
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    stack = Stack(workdir, f"smtp://127.0.0.1:{smtp_port}")
    problems = {}
    failed = None
    lat = wk = None
    try:
        bootstrap = stack.start_broker()
        print(f"broker {bootstrap}, topic prefix {stack.prefix}, logs in {workdir}", flush=True)
        t = time.monotonic()
        stack.spawn("api", "api", "--with-sink")
        stack.spawn("worker", "worker")
        stack.spawn("notifier", "notifier")
        wait_api(stack, deadline)
        key, app_ids, rules = setup(stack, args.apps, per_app, deadline)
        print(f"stack up, {len(app_ids)} applications and {len(rules)} rules created in "
              f"{time.monotonic() - t:.1f} s", flush=True)
        warm = warm_up(stack, key, app_ids, rules, per_app, deadline)
        print(f"warm-up: every rule has a status after {warm['rounds']} round(s)", flush=True)
        lat = latency_run(stack, mailbox, key, app_ids, rules, per_app, deadline, args.email_timeout)
        print(f"alert latency: {lat['rules_emailed']} of {lat['rules']} rules emailed", flush=True)
        for name in ("notifier", "api"):
            problems[name] = {"exit": stack.stop(name), **stack.log_problems(name)}
        wk = worker_run(stack, warm["tenant"], app_ids, rules, per_app, args.batches, lat["last_ts"] + STEP_MS,
                        seed, deadline)
    except BenchError as exc:
        failed = str(exc)
    finally:
        for name in ("notifier", "api", "worker"):
            if stack.procs.get(name) is not None:
                problems[name] = {"exit": stack.stop(name), **stack.log_problems(name)}
        stack.close()
        smtp.stop()
        if not args.keep and not failed:
            shutil.rmtree(workdir, ignore_errors=True)

    def fmt(v, unit=" ms"):
        return "n/a" if v is None else f"{v:,.0f}{unit}"

    rows = []
    if lat:
        rows += [
            (f"alert latency, 202 -> SMTP DATA ({lat['rules_emailed']} rules)",
             f"p50 {fmt(lat['p50_ms'])}, p99 {fmt(lat['p99_ms'])}, max {fmt(lat['max_ms'])} "
             f"(min {fmt(lat['min_ms'])})"),
            ("  of which 202 -> firing transition on app.alerts (worker)",
             f"p50 {fmt(lat['worker_p50_ms'])}, p99 {fmt(lat['worker_p99_ms'])}"),
            ("  emails", f"{lat['emails']} received: {lat['missing']} rules missing, {lat['duplicates']} duplicates, "
                         f"{lat['unexpected']} unexpected, {lat['wrong_subject']} with another Subject"),
            ("  timeline", f"{args.apps} POSTs in {lat['posting_s']:.2f} s; last email {lat['all_in_s']:.2f} s "
                           f"after the first 202; {fmt(lat['emails_per_s'], '')} emails/s first to last"),
        ]
    if engine:
        rows.append(("rule evaluations/s, engine (observe, in-process)",
                     f"{engine['rate']:,.0f} ({engine['evaluations']:,} in {engine['seconds']:.2f} s)"))
    if wk:
        rows += [
            ("rule evaluations/s, Faust worker (app.metrics -> app.alert_status)",
             f"{wk['rate']:,.0f} ({wk['evaluations']:,} in {wk['seconds']:.2f} s, "
             f"{wk['cpu']:.1f} s worker CPU: {wk['evaluations'] / wk['cpu']:,.0f} per CPU-second)"),
            ("  worker / engine", f"{wk['rate'] / engine['rate']:.3f} (engine {engine['rate'] / wk['rate']:.1f}x)"),
            ("  stream", f"{wk['batches']:,} batches, {wk['points']:,} points, produced in {wk['produce_s']:.2f} s; "
                         f"{wk['statuses']:,} statuses, {wk['transitions']} transitions "
                         f"{json.dumps(wk['transition_kinds'], ensure_ascii=False) if wk['transitions'] else ''}"),
        ]
    for name, p in problems.items():
        rows.append((f"{name} log", f"exit {p['exit']}, {p['errors']} error lines, {p['warnings']} warning lines"))
    width = max(len(r[0]) for r in rows) if rows else 10
    print()
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    for name, p in problems.items():
        for line in p["samples"]:
            print(f"  {name}: {line}")
    if failed:
        print(f"\nFAILED: {failed} (logs kept in {workdir})")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min)")
    summary = {**info, "loadavg_1m_at_end": round(os.getloadavg()[0], 2), "rules": args.rules, "apps": args.apps, "batches": args.batches,
               "alert_latency": lat and {k: (round(v, 1) if isinstance(v, float) else v) for k, v in lat.items()
                                         if k not in ("last_ts",)},
               "engine": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in engine.items()},
               "worker": wk and {k: (round(v, 3) if isinstance(v, float) else v) for k, v in wk.items()},
               "worker_over_engine": round(wk["rate"] / engine["rate"], 4) if wk else None,
               "logs": {n: {k: v for k, v in p.items() if k != "samples"} for n, p in problems.items()},
               "failed": failed}
    print(json.dumps(summary, ensure_ascii=False))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
