"""ARI throughput: vitals per second through one Faust worker (`python -m sophra worker`), and,
in the same run, over the same pre-loaded topic, through a plain confluent-kafka consumer that
does the same protocol work in this process.

1. Start a local broker in a temp dir (or use $KAFKA_BOOTSTRAP_SERVERS), create the topics
   under a fresh prefix and pre-load N vitals records for M agents: per-agent healthy noise
   with incidents (loop/hallucination bursts, token spikes, directive conflicts, bad data) so
   all four protocols fire. Encoded with schemas/codec, keyed b"<tenant>/<agent>", produced
   with pipeline/producer.producer_config. One throwaway read of the topic warms the broker.
2. Faust worker: a `python -m sophra worker` subprocess with its own worker id (consumer
   group). Done = every agent's last `ari_status` version on the output topic equals the id
   of its last vitals record (the end-to-end signal: every vital applied and its outputs
   acknowledged by Kafka). Start-up is excluded by timing from the first output record to
   the last, both by their Kafka CreateTime (set by the worker's producer at send); the
   first batch (at most BATCH = 500 vitals) is processed before the first output, so it is
   not counted: rate = (N - 500) / (last output - first output).
3. Plain consumer, in-process, own consumer group: decode, engine step per record (state in
   a dict), per batch only each agent's last status and each intervention's last version
   are encoded and produced (like the worker's apply_batch), flush = wait for delivery,
   then commit. Same rate formula on its own output topic (its first batch is known
   exactly). A second variant also writes each touched agent's state as JSON to a
   compacted changelog topic per batch, the durability the worker's Faust table gives
   (committing a batch's offsets only once its state records are delivered).
4. Both must end with the same last status per agent, or the run fails.

Usage: python bench/ari_throughput.py [--records 100000] [--agents 1000] [--timeout 600]
"""
import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

from pipeline.producer import producer_config  # noqa: E402
from stage import produce  # noqa: E402  (bench/, this script's folder, is on the path)
from pipeline.topics import (AGENT_EVENTS, AGENT_VITALS, ARI_INTERVENTIONS, ARI_STATUS, TopicSpec,  # noqa: E402
                             ensure_topics)
from pipeline.worker.anomalies import Delivered  # noqa: E402
from pipeline.worker.app import BATCH, apply_batch  # noqa: E402
from schemas import codec  # noqa: E402
from sophra.processes import spawn, terminate  # noqa: E402

TENANT = "t_bench"
T0 = 1_795_000_000_000
STEP_MS = 30_000
FIRST_ID = 1_000_000


class BenchError(RuntimeError):
    pass


class Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def check(self, what: str) -> None:
        if time.monotonic() > self.end:
            raise BenchError(f"timed out ({self.seconds:.0f} s budget) while {what}")

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


# -- the data ---------------------------------------------------------------------------------

def make_vitals(n: int, m: int, seed: int) -> list[tuple[bytes, dict]]:
    """n vitals round-robin over m agents (agent j % m, snapshot j // m), ids increasing."""
    rnd = random.Random(seed)
    profiles = []
    for a in range(m):
        tokens = rnd.uniform(800, 6000)
        profiles.append({"agent": f"agent-{a:05d}", "tokens": tokens, "limit": int(tokens * rnd.uniform(6, 20)),
                         "halluc": rnd.uniform(0.005, 0.03), "loops": rnd.uniform(2, 10),
                         "model": rnd.choice(["m1", "m2", "m3"]), "incident": None, "left": 0})
    out = []
    for j in range(n):
        a, t = j % m, j // m
        p = profiles[a]
        if p["left"] == 0 and t >= 8 and rnd.random() < 0.02:
            p["incident"] = rnd.choices(["burnout", "tokens", "conflicts", "quality"], [35, 35, 20, 10])[0]
            p["left"] = {"burnout": rnd.randint(3, 6), "tokens": rnd.randint(2, 5), "conflicts": rnd.randint(1, 3),
                         "quality": 1}[p["incident"]]
        tokens = max(0, int(rnd.gauss(p["tokens"], p["tokens"] * 0.06)))
        halluc = min(1.0, max(0.0, rnd.gauss(p["halluc"], p["halluc"] * 0.25)))
        loops = max(0, int(rnd.gauss(p["loops"], 1.5)))
        conflicts = rnd.choice([0, 0, 0, 0, 1])
        metadata = {"tasksCompleted": rnd.randint(0, 20), "model": p["model"]}
        health = "green"
        if p["left"]:
            p["left"] -= 1
            kind = p["incident"]
            if kind == "burnout":
                loops, health = rnd.randint(60, 150), "amber"
                if rnd.random() < 0.5:
                    halluc = rnd.uniform(0.08, 0.3)
            elif kind == "tokens":
                tokens, health = int(p["tokens"] * rnd.uniform(1.5, 3.0)), "amber"
            elif kind == "conflicts":
                conflicts, health = rnd.randint(3, 7), "red"
            elif rnd.random() < 0.5:  # bad data: a metadata type change, or tokens over the limit
                metadata["tasksCompleted"] = "many"
            else:
                tokens, health = p["limit"] + rnd.randint(1, 1000), "red"
        record = {"tenant": TENANT, "id": FIRST_ID + j, "agent_id": p["agent"], "agent_name": None,
                  "token_consumption": tokens, "token_limit": p["limit"], "hallucination_rate": round(halluc, 4),
                  "loop_frequency": loops, "directive_conflicts": conflicts, "overall_health": health,
                  "metadata": json.dumps(metadata), "recorded_at": T0 + t * STEP_MS + a}
        out.append((f"{TENANT}/{p['agent']}".encode(), record))
    return out


def preload(bootstrap: str, topic: str, vitals: list[tuple[bytes, dict]], deadline: Deadline) -> dict[bytes, int]:
    """Produce the vitals; returns the last vitals id per key."""
    producer = Producer(producer_config(bootstrap))
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    last_id = {}
    for key, record in vitals:
        value = codec.encode("agent_vital", record)
        produce(producer, topic, key, value, on_delivery, check=lambda: deadline.check("pre-loading the vitals"))
        producer.poll(0)
        last_id[key] = record["id"]
    if producer.flush(max(1.0, deadline.left())) or errors:
        raise BenchError(f"pre-load failed: {errors[:3] or 'records left undelivered'}")
    return last_id


# -- reading topics -------------------------------------------------------------------------

def partitions(topic: str, spec: TopicSpec, parts: dict | None = None) -> list[TopicPartition]:
    """Every partition of the topic; `parts` overrides the spec's count (a bench's own topics)."""
    return [TopicPartition(topic, p) for p in range((parts or {}).get(spec.name, spec.partitions))]


def end_offsets(bootstrap: str, tps: list[TopicPartition]) -> dict[tuple[str, int], int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks", "enable.auto.commit": False})
    try:
        return {(tp.topic, tp.partition): c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
    finally:
        c.close()


class TopicReader:
    """Group-less reader of whole topics from the beginning, in increments up to the current end."""

    def __init__(self, bootstrap: str, tps: list[TopicPartition], on_message):
        self.bootstrap = bootstrap
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-reader-{uuid.uuid4().hex[:8]}",
                                  "enable.auto.commit": False, "fetch.max.bytes": 52_428_800})
        self.tps = tps
        self.assigned = False  # assigned at the first drain: until then it fetches nothing
        self.next = {(tp.topic, tp.partition): 0 for tp in tps}
        self.on_message = on_message

    def high_watermarks(self) -> dict[tuple[str, int], int]:
        return {(tp.topic, tp.partition): self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
                for tp in self.tps}

    def drain(self, deadline: Deadline, what: str) -> None:
        ends = self.high_watermarks()
        if not self.assigned:
            self.consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in self.tps])
            self.assigned = True
        while any(self.next[tp] < end for tp, end in ends.items()):
            deadline.check(what)
            for msg in self.consumer.consume(10_000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise BenchError(f"reading {msg.topic()}: {msg.error()}")
                self.next[(msg.topic(), msg.partition())] = msg.offset() + 1
                self.on_message(msg)

    def close(self) -> None:
        self.consumer.close()


class Outputs:
    """What a run produced: last status per agent, intervention versions, output timestamps."""

    def __init__(self, status_topic: str):
        self.status_topic = status_topic
        self.last_status: dict[bytes, dict] = {}
        self.interventions: dict[str, int] = {}
        self.records = 0
        self.first_ts = self.last_ts = None

    def __call__(self, msg) -> None:
        self.records += 1
        ts = msg.timestamp()[1] / 1000.0
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        kind, record = codec.decode(msg.value())
        if msg.topic() == self.status_topic:
            prev = self.last_status.get(msg.key())
            if prev is None or record["version"] >= prev["version"]:
                self.last_status[msg.key()] = record
        else:
            iid = record["intervention_id"]
            self.interventions[iid] = max(self.interventions.get(iid, 0), record["version"])

    def complete(self, last_id: dict[bytes, int]) -> bool:
        return len(self.last_status) == len(last_id) and all(
            self.last_status[k]["version"] == v for k, v in last_id.items() if k in self.last_status)


def warm_up(bootstrap: str, topic: str, n: int, deadline: Deadline, parts: dict | None = None) -> None:
    seen = []
    reader = TopicReader(bootstrap, partitions(topic, AGENT_VITALS, parts), lambda m: seen.append(1))
    try:
        reader.drain(deadline, "warming up (one read of the vitals topic)")
    finally:
        reader.close()
    if len(seen) != n:
        raise BenchError(f"the vitals topic holds {len(seen)} records, expected {n}")


# -- (a) the Faust worker ---------------------------------------------------------------------

def proc_cpu(pid: int) -> float:
    """user+system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss(pid: int) -> int:
    """Resident set size of a process in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


WORKER_COMMAND = ("-m", "sophra", "worker")


def run_faust(bootstrap: str, prefix: str, workdir: Path, last_id: dict[bytes, int], n: int,
              deadline: Deadline, *, workers: int = 1, command: tuple = WORKER_COMMAND, wrap: tuple = (),
              parts: dict | None = None, group: str = "") -> dict:
    """`workers` worker processes in one group (`command` after the interpreter, `wrap`
    before it, e.g. a profiler), until every agent's last status is out. `parts`: the
    partition count per TopicSpec when the topics were made with other counts; `group` sets
    the worker id (consumer group) apart from other runs' over the same topics."""
    worker_id = f"{prefix}worker{group}"
    status_topic, iv_topic = prefix + ARI_STATUS.name, prefix + ARI_INTERVENTIONS.name
    outputs = Outputs(status_topic)
    reader = TopicReader(bootstrap, partitions(status_topic, ARI_STATUS, parts)
                         + partitions(iv_topic, ARI_INTERVENTIONS, parts), outputs)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SOPHRA_TOPIC_PREFIX": prefix,
           "SOPHRA_WORKER_ID": worker_id, "PYTHONPATH": os.pathsep.join(
               p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    logs = [workdir / f"worker{group}-{i}.log" for i in range(workers)]
    procs = []
    try:
        started = time.time()
        for i, log_path in enumerate(logs):
            cwd = workdir / f"worker{group}-{i}"  # Faust keeps a <worker id>-data folder in its working directory
            cwd.mkdir(exist_ok=True)
            with open(log_path, "wb") as log:
                procs.append(spawn([*wrap, sys.executable, *command], stdout=log, cwd=cwd,
                                   env={**env, "SOPHRA_WORKER_INSTANCE_ID": f"{worker_id}-{i}"}))
        first_seen = cpu_first = rss_first = None
        last_total, idle_polls = -1, 0
        while True:
            for proc, log_path in zip(procs, logs):
                if proc.poll() is not None:
                    raise BenchError(f"a worker exited with {proc.returncode}:\n{_tail(log_path)}")
            if time.monotonic() > deadline.end:
                deadline.check(f"waiting for the worker's outputs (log {logs[0]}):\n{_tail(logs[0])}")
            total = sum(reader.high_watermarks().values())
            if total and first_seen is None:
                first_seen = time.time()
                cpu_first = sum(proc_cpu(_python_pid(p)) for p in procs)
                rss_first = sum(proc_rss(_python_pid(p)) for p in procs)
            idle_polls = idle_polls + 1 if total and total == last_total else 0
            last_total = total
            # Read the outputs only once the worker has been quiet for a second, so this
            # observer does not take CPU from the worker while it works.
            if idle_polls >= 4:
                reader.drain(deadline, "reading the worker's outputs")
                if outputs.complete(last_id):
                    break
                idle_polls = 0
            time.sleep(0.25)
        done_seen = time.time()
        cpu_done = sum(proc_cpu(_python_pid(p)) for p in procs)
        rss_done = sum(proc_rss(_python_pid(p)) for p in procs)
        committed = wait_committed(bootstrap, worker_id, prefix, deadline, parts=parts)
    finally:
        reader.close()
        for p in procs:  # a wrapping profiler writes its output once the worker under it exits
            if (pid := _python_pid(p)) != p.pid:
                os.kill(pid, signal.SIGTERM)
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    pass
        codes = [terminate(p) for p in procs]
    window = outputs.last_ts - outputs.first_ts
    counted = n - BATCH
    return {"name": "Faust worker (python -m sophra worker)" + (f" x{workers}" if workers > 1 else ""),
            "rate": counted / window, "window": window,
            "counted": counted, "startup": outputs.first_ts - started, "wall": outputs.last_ts - started,
            "cpu": cpu_done - cpu_first, "cpu_note": "process, first output seen .. completion seen",
            "rss_first": rss_first, "rss_done": rss_done,
            "outputs": outputs, "committed": committed, "exit": codes[0], "exits": codes,
            "detect_lag": done_seen - outputs.last_ts}


def _python_pid(proc) -> int:
    """The worker's own pid: a wrapping profiler (py-spy record) runs it as its child."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    try:
        kids = children.read_text().split()
    except OSError:
        return proc.pid
    return int(kids[0]) if kids and not Path(f"/proc/{proc.pid}/exe").resolve().name.startswith("python") \
        else proc.pid


def wait_committed(bootstrap: str, group: str, prefix: str, deadline: Deadline, within: float = 20,
                   parts: dict | None = None) -> float | None:
    """Seconds until the group's committed offsets reach the end of its source topics (None: not within)."""
    tps = (partitions(prefix + AGENT_VITALS.name, AGENT_VITALS, parts)
           + partitions(prefix + AGENT_EVENTS.name, AGENT_EVENTS, parts))
    ends = end_offsets(bootstrap, tps)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < within:
            deadline.check("waiting for the worker's committed offsets")
            got = {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout=10)}
            if all(ends[k] == 0 or got[k] >= ends[k] for k in ends):
                return time.monotonic() - t0
            time.sleep(0.25)
        return None
    finally:
        c.close()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- (b) the plain confluent-kafka consumer ---------------------------------------------------

def run_plain(bootstrap: str, prefix: str, out_prefix: str, last_id: dict[bytes, int], n: int, changelog: bool,
              deadline: Deadline) -> dict:
    ensure_topics(bootstrap, out_prefix, specs=(ARI_INTERVENTIONS, ARI_STATUS))
    status_topic, iv_topic = out_prefix + ARI_STATUS.name, out_prefix + ARI_INTERVENTIONS.name
    changelog_topic = out_prefix + "agent_state-changelog"
    if changelog:
        ensure_topics(bootstrap, "", specs=(TopicSpec(changelog_topic, AGENT_VITALS.partitions, retention_ms=-1,
                                                      compacted=True),))
    sources = [prefix + AGENT_VITALS.name, prefix + AGENT_EVENTS.name]
    ends = end_offsets(bootstrap, partitions(sources[0], AGENT_VITALS) + partitions(sources[1], AGENT_EVENTS))
    position = {k: 0 for k in ends}

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": out_prefix + "plain",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    producer = Producer(producer_config(bootstrap))
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    states: dict[bytes, dict] = {}
    detectors = Delivered()  # the anomaly watch's, saved when due (pipeline/worker/anomalies.py)
    consumer.subscribe(sources)
    t_first_msg = cpu0 = None
    first_batch = 0
    pending_commit: list[TopicPartition] = []  # offsets whose state records are not yet delivered
    try:
        while any(position[k] < end for k, end in ends.items()):
            deadline.check("running the plain consumer")
            msgs = consumer.consume(BATCH, timeout=0.05)
            if not msgs:
                continue
            if t_first_msg is None:
                t_first_msg, cpu0, first_batch = time.time(), _self_cpu(), len(msgs)
            batch_end: dict[tuple[str, int], int] = {}
            for msg in msgs:
                if msg.error():
                    raise BenchError(f"plain consumer: {msg.error()}")
                batch_end[(msg.topic(), msg.partition())] = msg.offset() + 1
            # the worker's own batch step, with the state in a dict instead of a Faust table
            step = apply_batch(states.get, ((m.key(), m.value(), (m.topic(), m.partition(), m.offset())) for m in msgs),
                               detectors)
            touched, outputs = step.states, step.outputs
            states.update(touched)
            detectors.save(step.detectors)  # delivered by this batch's flush
            # (these histories are too short for insights: the detector speaks after a day of data)
            for key, kind, record in outputs.values():
                _produce(producer, status_topic if kind == "ari_status" else iv_topic, key,
                         codec.encode(kind, record), on_delivery, deadline)
            producer.flush(max(1.0, deadline.left()))  # outputs delivered (and any earlier state records)
            if errors:
                raise BenchError(f"plain consumer: delivery failed: {errors[:3]}")
            offsets = [TopicPartition(t, p, o) for (t, p), o in batch_end.items()]
            if changelog:
                # outputs before state, as in the worker; a batch's offsets are committed once
                # its state records are delivered too, i.e. after the next batch's flush
                for key in touched:
                    _produce(producer, changelog_topic, key, json.dumps(states[key]).encode(), on_delivery, deadline)
                for key, d in step.detectors.items():
                    _produce(producer, changelog_topic, b"detectors/" + key, json.dumps(d).encode(), on_delivery,
                             deadline)
                if pending_commit:
                    consumer.commit(offsets=pending_commit, asynchronous=True)
                pending_commit = offsets
            else:
                consumer.commit(offsets=offsets, asynchronous=True)
            position.update(batch_end)
        producer.flush(max(1.0, deadline.left()))
        if errors:
            raise BenchError(f"plain consumer: delivery failed: {errors[:3]}")
        consumer.commit(asynchronous=False)
        t_done, cpu_done = time.time(), _self_cpu()
    finally:
        consumer.close()
    outputs_read = Outputs(status_topic)
    reader = TopicReader(bootstrap, partitions(status_topic, ARI_STATUS) + partitions(iv_topic, ARI_INTERVENTIONS),
                         outputs_read)
    try:
        reader.drain(deadline, "reading the plain consumer's outputs")
    finally:
        reader.close()
    if not outputs_read.complete(last_id):
        raise BenchError("the plain consumer's last statuses do not match the last vitals ids")
    window = outputs_read.last_ts - outputs_read.first_ts
    counted = n - first_batch
    name = "plain confluent-kafka, state in a dict" + (" + changelog" if changelog else "")
    return {"name": name, "rate": counted / window, "window": window, "counted": counted,
            "cpu": cpu_done - cpu0,
            "cpu_note": "this process, first message .. final commit",
            "e2e_rate": n / (t_done - t_first_msg), "e2e": t_done - t_first_msg, "outputs": outputs_read}


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, on_delivery, deadline: Deadline) -> None:
    produce(producer, topic, key, value, on_delivery, check=lambda: deadline.check("producing outputs"))


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# -- main -----------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000, help="vitals records to pre-load (default 100000)")
    ap.add_argument("--agents", type=int, default=1_000, help="agents they come from (default 1000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed of the made-up histories")
    ap.add_argument("--timeout", type=float, default=600, help="fail if the whole run takes longer (default 600 s)")
    ap.add_argument("--no-changelog-variant", action="store_true",
                    help="skip the plain consumer variant that also writes its state to a changelog topic")
    args = ap.parse_args()
    if args.records <= BATCH or args.agents < 1:
        ap.error(f"--records must be above {BATCH} and --agents at least 1")

    deadline = Deadline(args.timeout)

    def on_alarm(*_):  # backstop if a blocking call outlives the budget
        raise BenchError(f"timed out ({args.timeout:.0f} s budget)")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout) + 60)

    workdir = Path(tempfile.mkdtemp(prefix="ari-bench-"))
    kafka = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    try:
        if not bootstrap:
            from deploy.local_kafka import LocalKafka, fetch

            fetch()
            kafka = LocalKafka(workdir / "kafka")
            bootstrap = kafka.start(timeout=min(120, deadline.left()))
            print(f"local broker at {bootstrap} (data {workdir / 'kafka'})", flush=True)
        ensure_topics(bootstrap, prefix, specs=(AGENT_VITALS, AGENT_EVENTS, ARI_INTERVENTIONS, ARI_STATUS))

        t = time.monotonic()
        vitals = make_vitals(args.records, args.agents, args.seed)
        last_id = preload(bootstrap, prefix + AGENT_VITALS.name, vitals, deadline)
        del vitals
        print(f"pre-loaded {args.records} vitals for {len(last_id)} agents into {prefix}{AGENT_VITALS.name} "
              f"in {time.monotonic() - t:.1f} s", flush=True)
        warm_up(bootstrap, prefix + AGENT_VITALS.name, args.records, deadline)

        faust = run_faust(bootstrap, prefix, workdir, last_id, args.records, deadline)
        print(f"faust worker done: {faust['rate']:.0f} vitals/s", flush=True)
        runs = [faust]
        variants = [False] if args.no_changelog_variant else [False, True]
        for i, changelog in enumerate(variants):
            run = run_plain(bootstrap, prefix, f"{prefix}plain{i}.", last_id, args.records, changelog, deadline)
            print(f"{run['name']} done: {run['rate']:.0f} vitals/s", flush=True)
            runs.append(run)

        # same engine, same records in the same order per agent: the same last status per agent
        ref = faust["outputs"]
        for run in runs[1:]:
            if run["outputs"].last_status != ref.last_status:
                raise BenchError(f"{run['name']}: last statuses differ from the worker's")
            if run["outputs"].interventions != ref.interventions:
                raise BenchError(f"{run['name']}: interventions differ from the worker's")
        report(args, runs, faust)
        return 0
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        if kafka:
            kafka.stop()
        elif bootstrap:
            _delete_topics(bootstrap, prefix)
        shutil.rmtree(workdir, ignore_errors=True)


def _delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    mine = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if mine:
        for fut in admin.delete_topics(mine, operation_timeout=30).values():
            try:
                fut.result(30)
            except Exception:
                pass


def report(args, runs: list[dict], faust: dict) -> None:
    outs = faust["outputs"]
    by_protocol = {p: sum(1 for i in outs.interventions if i.endswith(f"_p{p}")) for p in (1, 2, 3, 4)}
    print()
    print(f"ARI throughput: {args.records} vitals, {args.agents} agents, nproc {os.cpu_count()} "
          f"(broker, worker and this script share the machine)")
    print(f"interventions per protocol {by_protocol}; every agent's last status identical across runs")
    print(f"{'':50} {'vitals/s':>9} {'timed s':>8} {'CPU s':>7} {'vs Faust':>8}")
    for run in runs:
        print(f"{run['name']:50} {run['rate']:9.0f} {run['window']:8.2f} {run['cpu']:7.2f} "
              f"{run['rate'] / faust['rate']:7.2f}x")
    print()
    print(f"vitals/s = (records - first batch) / (last output CreateTime - first output CreateTime); "
          f"first batch = {BATCH} for Faust (upper bound), exact for plain")
    print(f"Faust: start-up (spawn to first output) {faust['startup']:.2f} s, spawn to last output "
          f"{faust['wall']:.2f} s; committed offsets reached the end "
          + (f"{faust['committed']:.1f} s after completion was seen" if faust["committed"] is not None
             else "NOT within 20 s") + f"; CPU = {faust['cpu_note']}")
    for run in runs[1:]:
        print(f"{run['name']}: first message to final commit {run['e2e']:.2f} s = {run['e2e_rate']:.0f} vitals/s "
              f"end to end; CPU = {run['cpu_note']}")


if __name__ == "__main__":
    sys.exit(main())
