"""The vitals rate limit across two api replicas: how long one replica's grant takes to
reach the other (the sharing lag), and how often two reports for one agent sent to both
replicas are both granted, by how far apart they are sent.

Setup: a local broker (deploy/local_kafka.py) in a temp dir, chdb there, two api
processes' apps on one set of topics (tests/conftest.py's RunningApi, both in this
process, each on its own thread and event loop; one runs the sink), one key.

1. Lag: --agents agents, one at a time: POST to replica a, then poll replica b's limiter
   (every 0.5 ms) until it holds the agent's window; the lag is from a's 200 to then.
2. Races: for each offset d in --offsets (ms), --agents fresh agents: send the report to
   a, and d ms after a's answer (d = 0: both at once) to b; count the agents both
   replicas granted.

Prints one JSON document. Usage: python bench/vitals_limit_lag.py [--agents 200]
[--offsets 0,2,5,10,20,50]
"""
import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from deploy.local_kafka import LocalKafka, fetch  # noqa: E402
from sophra.settings import Settings  # noqa: E402
from tests.conftest import RunningApi  # noqa: E402


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def races(a, b, key, agents: int, offset_ms: float, tag: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    both = 0
    async with httpx.AsyncClient(base_url=a.url, headers=headers) as ha, \
            httpx.AsyncClient(base_url=b.url, headers=headers) as hb:
        for i in range(agents):
            body = {"agentId": f"race-{tag}-{i}"}
            if offset_ms == 0:
                ra, rb = await asyncio.gather(ha.post("/api/vitals", json=body), hb.post("/api/vitals", json=body))
            else:
                ra = await ha.post("/api/vitals", json=body)
                await asyncio.sleep(offset_ms / 1000)
                rb = await hb.post("/api/vitals", json=body)
            both += ra.status_code == 200 and rb.status_code == 200
    return both


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--offsets", default="0,2,5,10,20,50")
    args = ap.parse_args()
    fetch()
    tmp = Path(tempfile.mkdtemp(prefix="sophra-lag-"))
    with LocalKafka(tmp / "kafka") as kafka:
        t = uuid.uuid4().hex[:8]
        s = Settings(data_dir=tmp, kafka_bootstrap_servers=kafka.bootstrap_servers,
                     clickhouse_url=f"chdb://{tmp / 'clickhouse'}", clickhouse_database=f"lag_{t}",
                     topic_prefix=f"l{t}.", sink_group=f"sink-{t}", worker_id=f"worker-{t}")
        with RunningApi(s) as a, RunningApi(s, run_sink=False) as b:
            key = a.new_key()
            tenant = a.app.state.keys.book.authenticate(key).tenant
            while b.app.state.keys.book.authenticate(key) is None:
                time.sleep(0.01)
            lags = []
            with httpx.Client(base_url=a.url, headers={"Authorization": f"Bearer {key}"}) as http:
                for i in range(args.agents):
                    agent = f"lag-{i}"
                    assert http.post("/api/vitals", json={"agentId": agent}).status_code == 200
                    answered = time.perf_counter()
                    while (tenant, agent) not in b.app.state.vitals_limiter._next:
                        time.sleep(0.0005)
                    lags.append((time.perf_counter() - answered) * 1000)
            out = {"agents": args.agents,
                   "lag_ms": {"p50": round(statistics.median(lags), 1), "p95": round(pct(lags, 0.95), 1),
                              "p99": round(pct(lags, 0.99), 1), "max": round(max(lags), 1)},
                   "both_granted": {}}
            for d in (float(x) for x in args.offsets.split(",")):
                n = asyncio.run(races(a, b, key, args.agents, d, f"{d:g}"))
                out["both_granted"][f"{d:g} ms"] = f"{n} of {args.agents}"
            print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
