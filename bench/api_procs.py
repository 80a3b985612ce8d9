"""What the api stages (stage_api_vitals.py, stage_api_metrics.py) share: the processes they
measure (`sophra api`, `sophra up`, the bare baseline app), their CPU time from /proc, keys,
wrk runs, and counting what landed on a topic."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from confluent_kafka import Consumer, TopicPartition

from stage import ROOT, free_port

TICK = os.sysconf("SC_CLK_TCK")
WRK = "/usr/bin/wrk"


class BenchError(RuntimeError):
    pass


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime: fields 14 and 15


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Served:
    """A process answering HTTP on a loopback port."""
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, path: str, timeout: float = 180) -> "Served":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.log.name} exited with {self.proc.returncode}: {self.tail()}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise BenchError(f"{self.log.name} did not answer {path} in {timeout:.0f} s: {self.tail()}")

    def tail(self) -> str:
        try:
            return self.log.read_text()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(cmd: list[str], env: dict, log: Path, port: int) -> Served:
    out = open(log, "ab")
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return Served(proc, port, log)


def sophra(command: str, bootstrap: str | None, prefix: str, data_dir: Path, log_dir: Path) -> Served:
    """`sophra api` (alone: no sink) or `sophra up` (worker, notifier, api + sink) on a free port."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {"SOPHRA_DATA_DIR": str(data_dir), "SOPHRA_PORT": str(port), "SOPHRA_TOPIC_PREFIX": prefix,
           "SOPHRA_HOST": "127.0.0.1"}
    env.pop("CLICKHOUSE_URL", None)
    if bootstrap:
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    return start([sys.executable, "-m", "sophra", command], env, log_dir / f"{command}-{port}.log", port)


def bare(log_dir: Path) -> Served:
    port = free_port()
    return start([sys.executable, str(ROOT / "bench" / "bare_api.py"), "--port", str(port)], {},
                 log_dir / f"bare-{port}.log", port)


def new_key(url: str) -> tuple[str, str]:
    """(key, email) of a new account."""
    email = f"bench-{uuid.uuid4().hex[:12]}@bench.sophra"
    res = httpx.post(f"{url}/api/keys", json={"email": email}, timeout=30)
    if res.status_code != 201:
        raise BenchError(f"POST /api/keys answered {res.status_code}: {res.text[:300]}")
    return res.json()["key"], email


def wrk(url: str, script: Path, seconds: float, connections: int, threads: int = 2, env: dict | None = None,
        ) -> dict:
    """One wrk run; the JSON line its script's done() prints."""
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script), url]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})},
                         timeout=seconds + 60)
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    if res.returncode != 0 or not lines:
        raise BenchError(f"wrk failed ({res.returncode}): {res.stderr[-500:]} {res.stdout[-500:]}")
    return json.loads(lines[-1])


def topic_records(bootstrap: str, topic: str) -> int:
    """Records on a topic: the sum of its partitions' high watermarks (fresh topics, no compaction)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-count-{uuid.uuid4().hex[:8]}"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    finally:
        c.close()
