"""Stage `sophra replay`: records/s of a replay over a pre-loaded history, beside reading
the same topics alone, in the same run (bench/README.md, "replay").

1. Pre-load `agent.vitals` and `agent.events` under a fresh topic prefix: --records
   records (200,000; --quick 50,000) for --agents agents (2,000; --quick 500), about 95 %
   vitals (bench/ari_throughput.py's made-up histories: healthy noise with incidents, so
   every protocol fires) and 5 % events (directive conflicts with details and metadata,
   tool errors), keyed and encoded as the api does.
2. Baseline, "reading alone": a plain confluent-kafka consumer, every partition of both
   topics assigned, `consume(num_messages=10000)` up to the high watermarks, each record
   decoded with schemas/codec (decode included, as replay must decode too).
3. Subject: `python -m sophra replay --from <the middle of the history> --only ari` as a subprocess
   on the external-broker path (KAFKA_BOOTSTRAP_SERVERS, CLICKHOUSE_URL=chdb://<temp>,
   a fresh worker id and sink group), the whole command: preconditions, reading,
   deriving, deleting, producing, inserting, writing the worker's states. Its rate is
   records read / the seconds its summary line reports (replay's own work; the
   interpreter's start and imports are in the row's note as wall time).
4. Baseline and replay alternate (full: twice each; --quick: once), and the best of each
   is kept (the machine is shared: the best is the least disturbed). Before a second
   replay the sink group's offsets are set to the end of the derived topics: replay
   inserted those rows itself, so there is nothing for it to land first.
5. Checked, else exit 1: every replay read every record, skipped none, saw every agent,
   and wrote exactly the interventions (opened since --from) and statuses the engine
   derives here over the same records (pipeline.replay.derive); ClickHouse then holds
   exactly those rows.

    .venv/bin/python bench/stage_replay.py [--bootstrap HOST:PORT] [--quick] [--json OUT]
"""
from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from stage import ROOT, Row, Target, arguments, broker, produce, write_rows

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402

from ari_throughput import make_vitals  # noqa: E402  (the worker bench's histories)
from pipeline.producer import producer_config  # noqa: E402
from pipeline.replay import derive  # noqa: E402
from pipeline.topics import AGENT_EVENTS, AGENT_VITALS, ARI_INTERVENTIONS, ARI_STATUS, ensure_topics  # noqa: E402
from schemas import codec  # noqa: E402

SUMMARY = re.compile(r"replay done: (\d+) records read \((\d+) skipped\), (\d+) agents, (\d+) interventions written, "
                     r"(\d+) rows deleted, (\d+) statuses, ([\d.]+)s(?: \((.*)\))?")
EVENT_SHARE = 0.05


class StageError(RuntimeError):
    pass


def make_history(n: int, agents: int, seed: int = 13) -> tuple[list, list]:
    """(vitals, events) as (key, record) lists: n records in all, EVENT_SHARE of them events."""
    n_events = int(n * EVENT_SHARE)
    vitals = make_vitals(n - n_events, agents, seed)
    rnd = random.Random(seed)
    events = []
    for k, (key, v) in enumerate(rnd.sample(vitals, n_events)):
        conflict = rnd.random() < 0.8
        events.append((key, {
            "tenant": v["tenant"], "id": 10**12 + k, "agent_id": v["agent_id"],
            "event_type": "directive_conflict" if conflict else "tool_error",
            "details": rnd.choice(["System prompt vs user instruction", "Policy vs tool output"]) if conflict
            else "timeout",
            "metadata": '{"instruction_a": "answer in JSON", "instruction_b": "answer in prose"}' if conflict
            else "{}",
            "recorded_at": v["recorded_at"] - 1}))  # just before that snapshot
    return vitals, events


def preload(bootstrap: str, prefix: str, vitals: list, events: list) -> None:
    producer, errors = Producer(producer_config(bootstrap)), []
    for topic, kind, records in ((prefix + AGENT_VITALS.name, "agent_vital", vitals),
                                 (prefix + AGENT_EVENTS.name, "agent_event", events)):
        for key, record in records:
            value = codec.encode(kind, record)
            produce(producer, topic, key, value, lambda err, _m: err and errors.append(err))
            producer.poll(0)
    if producer.flush(120) or errors:
        raise StageError(f"pre-load failed: {errors[:3] or 'records left undelivered'}")


def expected(vitals: list, events: list, since: int) -> tuple[int, int, int]:
    """(agents, interventions opened since `since`, statuses) as the engine derives them here."""
    per_key: dict[bytes, list] = {}
    for kind, records in (("agent_vital", vitals), ("agent_event", events)):
        for key, record in records:
            per_key.setdefault(key, []).append((kind, record))
    interventions = statuses = 0
    for records in per_key.values():
        _, ivs, status = derive(records)
        interventions += sum(1 for v in ivs.values() if v["opened_at"] >= since)
        statuses += status is not None
    return len(per_key), interventions, statuses


def read_alone(bootstrap: str, prefix: str, specs=(AGENT_VITALS, AGENT_EVENTS)) -> tuple[int, float]:
    """Every record of the topics (replay's two by default) read and decoded by a plain consumer:
    (records, seconds). stage_rebuild.py reads its topics with it too."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-read-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "enable.partition.eof": False, "fetch.wait.max.ms": 20})
    try:
        ends = {(prefix + spec.name, p): c.get_watermark_offsets(TopicPartition(prefix + spec.name, p), timeout=30)[1]
                for spec in specs for p in range(spec.partitions)}
        want = sum(ends.values())
        t0 = time.perf_counter()
        c.assign([TopicPartition(t, p, 0) for t, p in ends])
        got = 0
        while got < want:
            for msg in c.consume(num_messages=10_000, timeout=0.5):
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        raise StageError(f"reading {msg.topic()}: {msg.error()}")
                    continue
                codec.decode(msg.value())
                got += 1
        return got, time.perf_counter() - t0
    finally:
        c.close()


def mark_derived_landed(bootstrap: str, prefix: str, group: str) -> None:
    """Commit the sink group at the end of the derived topics: replay inserted those rows itself."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = []
        for spec in (ARI_INTERVENTIONS, ARI_STATUS):
            for p in range(spec.partitions):
                tp = TopicPartition(prefix + spec.name, p)
                tp.offset = c.get_watermark_offsets(tp, timeout=30)[1]
                tps.append(tp)
        c.commit(offsets=tps, asynchronous=False)
    finally:
        c.close()


def run_replay(env: dict, since_iso: str) -> tuple[dict, float]:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "sophra", "replay", "--from", since_iso, "--only", "ari"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    m = SUMMARY.search(res.stdout)
    if res.returncode != 0 or not m:
        raise StageError(f"sophra replay exited {res.returncode}: {res.stdout[-500:]} {res.stderr[-2000:]}")
    keys = ("records", "skipped", "agents", "interventions", "deleted", "statuses")
    got = dict(zip(keys, map(int, m.groups()[:6])))
    got["seconds"] = float(m.group(7))
    got["phases"] = m.group(8) or ""
    return got, wall


def main() -> int:
    ap = arguments(__doc__)
    ap.add_argument("--records", type=int, help="records pre-loaded (default 200,000; --quick 50,000)")
    ap.add_argument("--agents", type=int, help="agents (default 2,000; --quick 500)")
    args = ap.parse_args()
    n = args.records or (50_000 if args.quick else 200_000)
    agents = args.agents or (500 if args.quick else 2_000)
    rounds = 1 if args.quick else 2
    tag = uuid.uuid4().hex[:8]
    prefix = f"bench-replay-{tag}."
    workdir = Path(tempfile.mkdtemp(prefix="sophra-bench-replay-"))
    try:
        with broker(args.bootstrap) as bootstrap:
            ensure_topics(bootstrap, prefix)
            vitals, events = make_history(n, agents)
            snapshots = (n - len(events)) // agents
            # the middle of the history: half of it only builds the baselines
            # the middle of the history (a whole second): half of it only builds the baselines
            since = (vitals[0][1]["recorded_at"] + (snapshots // 2) * 30_000) // 1000 * 1000
            since_iso = datetime.fromtimestamp(since // 1000, timezone.utc).isoformat()
            print(f"pre-loading {len(vitals):,} vitals and {len(events):,} events for {agents:,} agents", flush=True)
            preload(bootstrap, prefix, vitals, events)
            want_agents, want_ivs, want_statuses = expected(vitals, events, since)
            env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SOPHRA_TOPIC_PREFIX": prefix,
                   "CLICKHOUSE_URL": f"chdb://{workdir / 'clickhouse'}", "CLICKHOUSE_DATABASE": "bench",
                   "SOPHRA_WORKER_ID": f"bench-replay-worker-{tag}", "SOPHRA_SINK_GROUP": f"bench-replay-sink-{tag}"}
            # the database as a running deployment has it: migrated (replay migrates too, a no-op then)
            subprocess.run([sys.executable, "-c", "from pipeline.store.migrate import migrate; "
                            f"migrate({env['CLICKHOUSE_URL']!r}, {env['CLICKHOUSE_DATABASE']!r})"],
                           cwd=ROOT, env=env, check=True, timeout=300)
            reads, replays = [], []
            for i in range(rounds):
                got, secs = read_alone(bootstrap, prefix)
                if got != n:
                    raise StageError(f"reading alone saw {got} records, {n} were pre-loaded")
                reads.append(n / secs)
                print(f"round {i + 1}: reading alone {n / secs:,.0f} records/s", flush=True)
                if i:
                    mark_derived_landed(bootstrap, prefix, env["SOPHRA_SINK_GROUP"])
                got, wall = run_replay(env, since_iso)
                want = {"records": n, "skipped": 0, "agents": want_agents, "interventions": want_ivs,
                        "statuses": want_statuses}
                if {k: got[k] for k in want} != want:
                    raise StageError(f"replay's summary {got} is not what the engine derives here: {want}")
                replays.append((n / got["seconds"], got["seconds"], wall, got["phases"]))
                print(f"round {i + 1}: replay {n / got['seconds']:,.0f} records/s ({got['seconds']:.1f} s: "
                      f"{got['phases']}; {wall:.1f} s with start-up)", flush=True)
        check_clickhouse(workdir / "clickhouse", want_ivs, want_statuses)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    read_rate = max(reads)
    rate, secs, wall, phases = max(replays)
    what = (f"{n:,} records ({n - len(events):,} vitals, {len(events):,} events) of {agents:,} agents, 6 partitions, "
            f"--from the middle; best of {rounds}")
    write_rows(args.json, [
        Row("sophra replay", "records/s", rate, "records/s", target=Target(">=", 100_000),
            note=f"{what}; records / the seconds of replay's summary ({secs:.1f} s: {phases}); "
                 f"{wall:.1f} s with the interpreter's start"),
        Row("sophra replay", "vs reading alone", rate, "records/s", baseline="plain consumer, decode included",
            baseline_value=read_rate,
            note=f"{what}; confluent-kafka consume(10000) over every partition of both topics, codec.decode each"),
    ])
    return 0


def check_clickhouse(path: Path, interventions: int, statuses: int) -> None:
    """The rows replay left: exactly the interventions and statuses derived (chdb: one folder per process,
    opened here only after every replay ended)."""
    from pipeline.store.clickhouse import connect

    ch = connect(f"chdb://{path}", "bench")
    got = (ch.query("SELECT count() FROM ari_interventions FINAL").result_rows[0][0],
           ch.query("SELECT count() FROM ari_status FINAL").result_rows[0][0])
    if got != (interventions, statuses):
        raise StageError(f"ClickHouse holds {got[0]} interventions and {got[1]} statuses, "
                         f"expected {interventions} and {statuses}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StageError as exc:
        sys.exit(f"stage replay: {exc}")
