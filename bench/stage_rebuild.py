"""Stage `sophra rebuild`: records/s of a rebuild of a pre-loaded history, beside reading
the same topics alone, in the same run (bench/README.md, "rebuild").

1. Pre-load under a fresh topic prefix --records records (200,000; --quick 50,000): 90 %
   on `agent.vitals` and `agent.events` (stage_replay.make_history: 95 % vitals of 2,000
   agents, 5 % events) and 10 % `app.metrics` batches of --points points (10) for 60
   applications, keyed and encoded as the api does.
2. A temp chdb database migrated as a deployment has it, with empty tables (the lost
   engine case: nothing to lose, so no --accept-loss is needed).
3. Baseline, "reading alone": a plain confluent-kafka consumer over every partition of the
   three topics, `consume(10000)`, each record decoded with schemas/codec
   (stage_replay.read_alone).
4. Subject: `python -m sophra rebuild` as a subprocess on the external-broker path
   (KAFKA_BOOTSTRAP_SERVERS, CLICKHOUSE_URL=chdb://<temp>, a fresh sink group), the whole
   command: preconditions, retention check, a fresh database migrated, every record read,
   mapped and inserted with the sink's steps, the swap, the sink group's commit. Its rate
   is records / the seconds of its summary line (the interpreter's start is in the note).
5. Baseline and rebuild alternate (full: twice each; --quick: once); the best of each is
   kept (the machine is shared: the best is the least disturbed). A second rebuild finds
   the tables the first one filled; it replaces them the same way.
6. Checked, else exit 1: every rebuild read every record and inserted exactly the rows
   produced per table; the live database then holds exactly those rows (FINAL counts).

    .venv/bin/python bench/stage_rebuild.py [--bootstrap HOST:PORT] [--quick] [--json OUT] [--records N]
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from stage import ROOT, Row, Target, arguments, broker, produce, write_rows

from confluent_kafka import Producer  # noqa: E402

from stage_replay import StageError, make_history, preload, read_alone  # noqa: E402
from pipeline.producer import producer_config  # noqa: E402
from pipeline.topics import AGENT_EVENTS, AGENT_VITALS, APP_METRICS, ensure_topics, entity_key  # noqa: E402
from schemas import codec  # noqa: E402

SUMMARY = re.compile(r"rebuild done: (\d+) records \((\d+) dead letters\), rows: (.*?); ([\d.]+)s, ([\d,]+) records/s")
METRIC_SHARE = 0.10


def make_batches(n: int, points: int, start: int) -> list[tuple[bytes, dict]]:
    """n app.metrics records of `points` points each, 60 applications of one tenant."""
    out = []
    for k in range(n):
        app = f"app_{k % 60:02d}"
        out.append((entity_key("t_bench", app), {
            "tenant": "t_bench", "application_id": app, "id": 5 * 10**12 + k, "received_at": start + k,
            "points": [{"metric": ("response_time", "error_rate", "throughput")[i % 3], "value": float(k % 97 + i),
                        "timestamp": start + k * 1000 + i} for i in range(points)]}))
    return out


def preload_batches(bootstrap: str, prefix: str, batches: list) -> None:
    producer, errors = Producer(producer_config(bootstrap)), []
    for key, record in batches:
        produce(producer, prefix + APP_METRICS.name, key, codec.encode("app_metric_batch", record),
                lambda err, _m: err and errors.append(err))
        producer.poll(0)
    if producer.flush(120) or errors:
        raise StageError(f"pre-load failed: {errors[:3] or 'records left undelivered'}")


def run_rebuild(env: dict) -> tuple[dict, float]:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "sophra", "rebuild"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    wall = time.perf_counter() - t0
    m = SUMMARY.search(res.stdout)
    if res.returncode != 0 or not m:
        raise StageError(f"sophra rebuild exited {res.returncode}: {res.stdout[-500:]} {res.stderr[-2000:]}")
    rows = {t: int(n) for t, n in (part.rsplit(" ", 1) for part in m.group(3).split(", "))}
    return {"records": int(m.group(1)), "dead_letters": int(m.group(2)), "rows": rows,
            "seconds": float(m.group(4))}, wall


def check_clickhouse(path: Path, rows: dict) -> None:
    """The live database holds exactly the rows produced (opened here only after every rebuild ended)."""
    from pipeline.store.clickhouse import connect

    ch = connect(f"chdb://{path}", "bench")
    got = {t: ch.query(f"SELECT count() FROM {t} FINAL").result_rows[0][0] for t in rows}
    if got != rows:
        raise StageError(f"ClickHouse holds {got}, expected {rows}")


def main() -> int:
    ap = arguments(__doc__)
    ap.add_argument("--records", type=int, help="records pre-loaded (default 200,000; --quick 50,000)")
    ap.add_argument("--points", type=int, default=10, help="points per app.metrics record (default 10)")
    args = ap.parse_args()
    n = args.records or (50_000 if args.quick else 200_000)
    rounds = 1 if args.quick else 2
    n_batches = int(n * METRIC_SHARE)
    tag = uuid.uuid4().hex[:8]
    prefix = f"bench-rebuild-{tag}."
    workdir = Path(tempfile.mkdtemp(prefix="sophra-bench-rebuild-"))
    try:
        with broker(args.bootstrap) as bootstrap:
            ensure_topics(bootstrap, prefix)
            vitals, events = make_history(n - n_batches, 2_000)
            batches = make_batches(n_batches, args.points, vitals[0][1]["recorded_at"])
            print(f"pre-loading {len(vitals):,} vitals, {len(events):,} events and {len(batches):,} metric "
                  f"records of {args.points} points", flush=True)
            preload(bootstrap, prefix, vitals, events)
            preload_batches(bootstrap, prefix, batches)
            want = {"agent_vitals": len(vitals), "agent_events": len(events), "app_metrics": n_batches * args.points}
            env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SOPHRA_TOPIC_PREFIX": prefix,
                   "CLICKHOUSE_URL": f"chdb://{workdir / 'clickhouse'}", "CLICKHOUSE_DATABASE": "bench",
                   "SOPHRA_SINK_GROUP": f"bench-rebuild-sink-{tag}"}
            subprocess.run([sys.executable, "-c", "from pipeline.store.migrate import migrate; "
                            f"migrate({env['CLICKHOUSE_URL']!r}, {env['CLICKHOUSE_DATABASE']!r})"],
                           cwd=ROOT, env=env, check=True, timeout=300)
            reads, rebuilds = [], []
            for i in range(rounds):
                got, secs = read_alone(bootstrap, prefix, (AGENT_VITALS, AGENT_EVENTS, APP_METRICS))
                if got != n:
                    raise StageError(f"reading alone saw {got} records, {n} were pre-loaded")
                reads.append(n / secs)
                print(f"round {i + 1}: reading alone {n / secs:,.0f} records/s", flush=True)
                got, wall = run_rebuild(env)
                if (got["records"], got["dead_letters"], {t: got["rows"].get(t) for t in want}) != (n, 0, want):
                    raise StageError(f"rebuild's summary {got} is not what was produced: {n} records, rows {want}")
                rebuilds.append((n / got["seconds"], got["seconds"], wall))
                print(f"round {i + 1}: rebuild {n / got['seconds']:,.0f} records/s ({got['seconds']:.1f} s; "
                      f"{wall:.1f} s with start-up)", flush=True)
        check_clickhouse(workdir / "clickhouse", want)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    read_rate = max(reads)
    rate, secs, wall = max(rebuilds)
    rows = sum(want.values())
    what = (f"{n:,} records ({len(vitals):,} vitals, {len(events):,} events, {n_batches:,} metric records of "
            f"{args.points} points: {rows:,} rows), 6 partitions a topic; best of {rounds}")
    write_rows(args.json, [
        Row("sophra rebuild", "records/s", rate, "records/s", target=Target(">=", 100_000),
            note=f"{what}; records / the seconds of rebuild's summary ({secs:.1f} s); {wall:.1f} s with the "
                 "interpreter's start"),
        Row("sophra rebuild", "vs reading alone", rate, "records/s", baseline="plain consumer, decode included",
            baseline_value=read_rate,
            note=f"{what}; confluent-kafka consume(10000) over every partition of the three topics, codec.decode each"),
    ])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StageError as exc:
        sys.exit(f"stage rebuild: {exc}")
