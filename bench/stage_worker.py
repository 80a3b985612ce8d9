"""Worker stage (issue 13): vitals/s through ARI on the Faust worker (`sophra worker`),
beside a plain confluent-kafka consumer running the same `apply_batch` in the same run.

The measuring is bench/ari_throughput.py's (its README section says how): per round both
read the same freshly pre-loaded vitals topic (--agents agents round-robin, made-up histories on which
all four protocols fire) and must end with the same last status per agent and the same
interventions, or the stage fails. The worker's rate is timed from its first output to
its last (Kafka CreateTime), its first batch not counted; the plain consumer's the same
way. Worker and plain consumer alternate, --rounds times (each round its own topics, as a
run reads its output topics whole); the best of each is reported,
with the CPU each spent per vital (worker: its process from /proc; plain: this process).

Reported only (no target), how it grows: the worker with the agent topics at 1, 2 and 4
partitions (under a prefix of their own, bench/partitioned_worker.py), with 1 worker
process and, from 2 partitions, 2 in one group (--scale-records vitals, 1,000 agents; with 2 the timed window holds the
group's rebalance when the second joins);
and the worker's resident memory per 10,000 agents (--memory-agents agents, 4 vitals
each: RSS at completion less RSS at its first output, scaled to 10,000 agents).

--profile PATH runs the first worker under `py-spy record --gil` (raw collapsed stacks to
PATH; py-spy must be installed in the venv, which the lock file does not do).

Usage: python bench/stage_worker.py [--bootstrap HOST:PORT] [--quick] [--json OUT]
           [--records 100000] [--agents 1000] [--rounds 2] [--scale-records 40000]
           [--memory-agents 10000] [--no-scaling] [--profile PATH]
"""
from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage import ROOT, Row, Target, arguments, broker, write_rows  # noqa: E402

import ari_throughput as ari  # noqa: E402
from partitioned_worker import AGENT_TOPICS  # noqa: E402
from pipeline.topics import AGENT_VITALS, ensure_topics  # noqa: E402

STAGE = "ARI on the Faust worker"


def load(bootstrap: str, prefix: str, records: int, agents: int, deadline, parts: dict | None = None):
    """Topics under `prefix` (the agent topics at `parts` counts), pre-loaded and read once."""
    specs = [dataclasses.replace(s, partitions=parts[s.name]) if parts else s for s in AGENT_TOPICS]
    ensure_topics(bootstrap, prefix, specs=specs)
    last_id = ari.preload(bootstrap, prefix + AGENT_VITALS.name, ari.make_vitals(records, agents, seed=1), deadline)
    ari.warm_up(bootstrap, prefix + AGENT_VITALS.name, records, deadline, parts)
    return last_id


def same_outputs(faust: dict, plain: dict) -> None:
    if plain["outputs"].last_status != faust["outputs"].last_status:
        raise ari.BenchError("the plain consumer's last statuses differ from the worker's")
    if plain["outputs"].interventions != faust["outputs"].interventions:
        raise ari.BenchError("the plain consumer's interventions differ from the worker's")


def main() -> int:
    ap = arguments(__doc__)
    ap.add_argument("--records", type=int, help="vitals for the main rows (default 100,000; --quick 20,000)")
    ap.add_argument("--agents", type=int, default=1000, help="agents they come from (default 1,000)")
    ap.add_argument("--rounds", type=int, help="worker/plain alternations (default 2; --quick 1)")
    ap.add_argument("--scale-records", type=int, help="vitals per scaling run (default 40,000; --quick 10,000)")
    ap.add_argument("--memory-agents", type=int, default=10_000, help="agents of the memory run (default 10,000)")
    ap.add_argument("--no-scaling", action="store_true", help="only the worker beside the plain consumer")
    ap.add_argument("--profile", type=Path, help="run the first worker under py-spy record, raw stacks here")
    ap.add_argument("--timeout", type=float, default=1500, help="the whole stage, seconds (default 1500)")
    args = ap.parse_args()
    records = args.records or (20_000 if args.quick else 100_000)
    rounds = args.rounds or (1 if args.quick else 2)
    scale_records = args.scale_records or (10_000 if args.quick else 40_000)
    deadline = ari.Deadline(args.timeout)
    workdir = Path(tempfile.mkdtemp(prefix="sophra-bench-worker-"))
    run_id = uuid.uuid4().hex[:8]
    prefixes = []

    def prefix(name: str) -> str:
        prefixes.append(f"bench-worker-{run_id}-{name}.")
        return prefixes[-1]

    rows = []
    try:
        with broker(args.bootstrap) as bootstrap:
            try:
                fausts, plains = [], []
                for r in range(rounds):
                    # each round its own topics: a run reads its output topics whole
                    main_prefix = prefix(f"main{r}")
                    last_id = load(bootstrap, main_prefix, records, args.agents, deadline)
                    print(f"  pre-loaded {records:,} vitals for {len(last_id):,} agents", flush=True)
                    wrap = (("py-spy", "record", "--gil", "-r", "200", "-f", "raw", "-o", str(args.profile), "--")
                            if args.profile and r == 0 else ())
                    if wrap:
                        wrap = (str(Path(sys.executable).parent / wrap[0]),) + wrap[1:]
                    fausts.append(ari.run_faust(bootstrap, main_prefix, workdir, last_id, records, deadline,
                                                wrap=wrap))
                    plains.append(ari.run_plain(bootstrap, main_prefix, f"{main_prefix}plain{r}.", last_id, records,
                                                changelog=False, deadline=deadline))
                    same_outputs(fausts[-1], plains[-1])
                    print(f"  round {r + 1}: worker {fausts[-1]['rate']:,.0f} vitals/s "
                          f"({fausts[-1]['cpu'] / fausts[-1]['counted'] * 1e6:,.0f} us CPU a vital), plain "
                          f"{plains[-1]['rate']:,.0f} ({plains[-1]['cpu'] / records * 1e6:,.0f} us)", flush=True)
                f, p = max(fausts, key=lambda x: x["rate"]), max(plains, key=lambda x: x["rate"])
                outs = f["outputs"]
                by_protocol = {n: sum(1 for i in outs.interventions if i.endswith(f"_p{n}")) for n in (1, 2, 3, 4)}
                rates = {name: ", ".join(f"{x['rate']:,.0f}" for x in runs)
                         for name, runs in (("worker", fausts), ("plain", plains))}
                note = (f"{records:,} vitals of {args.agents:,} agents, 6 partitions; best of {rounds} alternating "
                        f"rounds: worker {rates['worker']}, plain {rates['plain']} vitals/s; same last status per agent and "
                        f"same {len(outs.interventions):,} interventions (by protocol {by_protocol}); worker "
                        f"start-up {f['startup']:.1f} s not counted")
                rows.append(Row(STAGE, "vitals/s vs plain consumer", f["rate"], "vitals/s",
                                baseline="plain confluent-kafka consumer, same apply_batch", baseline_value=p["rate"],
                                target=Target(">=", 0.5, ratio=True), note=note))
                rows.append(Row(STAGE, "CPU per vital", f["cpu"] / f["counted"] * 1e6, "us",
                                baseline="plain consumer's CPU per vital", baseline_value=p["cpu"] / records * 1e6,
                                note="worker: its process (/proc) from first output to completion seen; "
                                     "plain: this process (getrusage), first message to final commit"))
                if not args.no_scaling:
                    rows += scaling(bootstrap, prefix, workdir, scale_records, args.memory_agents, deadline)
            finally:
                for pre in prefixes:
                    ari._delete_topics(bootstrap, pre)
    except ari.BenchError as exc:
        print(f"stage_worker: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_rows(args.json, rows)
    return 0


def scaling(bootstrap: str, prefix, workdir: Path, records: int, memory_agents: int, deadline) -> list[Row]:
    rows, base = [], None
    for parts in (1, 2, 4):
        counts = {s.name: parts for s in AGENT_TOPICS}
        for workers in (1, 2) if parts > 1 else (1,):
            pre = prefix(f"p{parts}x{workers}")  # each run its own output topics, which it reads whole
            last_id = load(bootstrap, pre, records, 1000, deadline, counts)
            run = ari.run_faust(bootstrap, pre, workdir, last_id, records, deadline, workers=workers,
                                command=(str(ROOT / "bench" / "partitioned_worker.py"), str(parts)), parts=counts)
            base = base or run["rate"]
            what = f"{parts} partition{'s' if parts > 1 else ''}, {workers} worker process{'es' if workers > 1 else ''}"
            print(f"  {what}: {run['rate']:,.0f} vitals/s", flush=True)
            rows.append(Row(STAGE + " (scaling)", f"vitals/s, {what}", run["rate"], "vitals/s",
                            baseline="1 partition, 1 worker process" if parts > 1 else None,
                            baseline_value=base if parts > 1 else None,
                            note=f"{records:,} vitals of 1,000 agents; CPU {run['cpu']:.1f} s (all workers); "
                                 f"start-up {run['startup']:.1f} s not counted"))
    pre = prefix("mem")
    n = 4 * memory_agents
    last_id = load(bootstrap, pre, n, memory_agents, deadline)
    run = ari.run_faust(bootstrap, pre, workdir, last_id, n, deadline)
    grown = run["rss_done"] - run["rss_first"]
    per = grown * 10_000 / (memory_agents - min(ari.BATCH, memory_agents)) / 2**20
    rows.append(Row(STAGE + " (scaling)", "worker RSS per 10,000 agents", per, "MiB",
                    note=f"{memory_agents:,} agents, 4 vitals each ({n:,}): RSS {run['rss_first'] / 2**20:,.0f} MiB "
                         f"at the first output (up to {ari.BATCH} agents in) and {run['rss_done'] / 2**20:,.0f} MiB "
                         f"at completion; {run['rate']:,.0f} vitals/s"))
    return rows


if __name__ == "__main__":
    sys.exit(main())
