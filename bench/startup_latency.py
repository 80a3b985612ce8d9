"""Measure what a user of `make run` feels, on this machine, with the Kafka jars cached:

- cold start: from launching `sophra up` on an empty data folder to the URL answering;
- warm start: the same on the data folder the first run left;
- write-to-readable: from a POST /api/vitals answered 200 to the record being returned
  by GET /api/agents/{id}/vitals (read from ClickHouse), over N sequential records;
- stop: from SIGINT to every process gone.

Usage: python bench/startup_latency.py [--records 200]
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

from stage import free_port


def start(data_dir: str, port: int) -> tuple[subprocess.Popen, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL")}
    env.update(SOPHRA_DATA_DIR=data_dir, SOPHRA_PORT=str(port))
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "sophra", "up"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return proc, time.monotonic() - t0
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"sophra up exited with {proc.returncode}")
        time.sleep(0.02)


def stop(proc: subprocess.Popen) -> float:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(60)
    return time.monotonic() - t0


def enterprise_key(url: str, data_dir: str) -> str:
    """A new account's key on the `sophra up` at `url` (data folder `data_dir`), put on the
    enterprise plan with `sophra plan` so the hourly quota never refuses a benchmark."""
    email = f"bench-{time.time_ns()}@sophra.local"
    key = httpx.post(f"{url}/api/keys", json={"email": email}).json()["key"]
    env = {**os.environ, "SOPHRA_DATA_DIR": data_dir}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    subprocess.run([sys.executable, "-m", "sophra", "plan", email, "enterprise"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return key


def write_to_readable(port: int, n: int) -> list[float]:
    lat = []
    key = httpx.post(f"http://127.0.0.1:{port}/api/keys", json={"email": f"bench-{time.time_ns()}@sophra.local"}).json()["key"]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}) as http:
        for i in range(n):
            agent = f"bench-{i}"
            assert http.post("/api/vitals", json={"agentId": agent, "metrics": {"loopCount": i}}).status_code == 200
            t0 = time.monotonic()
            while http.get(f"/api/agents/{agent}/vitals").status_code != 200:
                time.sleep(0.005)
            lat.append(time.monotonic() - t0)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        proc, cold = start(data, port)
        lat = sorted(write_to_readable(port, args.records))
        stopped = stop(proc)
        proc, warm = start(data, port)
        stop(proc)
    q = statistics.quantiles(lat, n=100)
    print(f"cold start (empty data dir, jars cached): {cold:.2f} s")
    print(f"warm start (existing data dir):           {warm:.2f} s")
    print(f"write-to-readable over {len(lat)} records: p50 {q[49]*1000:.0f} ms, "
          f"p95 {q[94]*1000:.0f} ms, max {lat[-1]*1000:.0f} ms")
    print(f"stop (SIGINT to all processes gone):      {stopped:.2f} s")


if __name__ == "__main__":
    main()
