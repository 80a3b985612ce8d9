"""What every stage benchmark shares: its result rows, its command line, its broker.

A stage script (bench/stage_*.py) measures one stage of the platform beside its own
baseline in the same run and writes its rows as JSON (`--json PATH`); `bench/run.py`
runs them one after another on one broker and prints the table. Each script also runs
alone: without `--bootstrap` (or $KAFKA_BOOTSTRAP_SERVERS) it starts its own broker.

A row is one figure against its baseline or its absolute target:

    Row(stage="POST /api/vitals", measure="requests/s", value=812, unit="req/s",
        baseline="bare endpoint, same uvicorn settings", baseline_value=1490,
        target=Target(">=", 0.7, ratio=True))

`ratio` is value / baseline_value; a `ratio=True` target compares that ratio, any other
target the value itself. `met` is None when a row has no target (reported only).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Target:
    op: str  # ">=" or "<="
    bound: float
    ratio: bool = False  # compare value / baseline_value, not the value

    def met(self, x: float) -> bool:
        return x >= self.bound if self.op == ">=" else x <= self.bound

    def __str__(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {self.bound:g}{'×' if self.ratio else ''}"


@dataclass
class Row:
    stage: str
    measure: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    target: Target | None = None
    note: str = ""
    ratio: float | None = field(default=None, init=False)
    met: bool | None = field(default=None, init=False)

    def __post_init__(self):
        if self.baseline_value:
            self.ratio = self.value / self.baseline_value
        if self.target is not None:
            x = self.ratio if self.target.ratio else self.value
            self.met = None if x is None else self.target.met(x)

    def to_json(self) -> dict:
        d = asdict(self)
        d["target"] = str(self.target) if self.target else None
        return d


def arguments(description: str) -> argparse.ArgumentParser:
    """The options every stage script takes; add its own to the parser it returns."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
                    help="Kafka to use (default $KAFKA_BOOTSTRAP_SERVERS, else a local broker of its own)")
    ap.add_argument("--quick", action="store_true", help="smaller loads, for a check that it runs (figures are noisier)")
    ap.add_argument("--json", type=Path, help="write the result rows here")
    return ap


def write_rows(path: Path | None, rows: list[Row]) -> None:
    for r in rows:
        print(format_row(r), flush=True)
    if path:
        path.write_text(json.dumps([r.to_json() for r in rows], indent=1))


def format_row(r: Row | dict) -> str:
    d = r.to_json() if isinstance(r, Row) else r
    base = (f" vs {d['baseline_value']:,.1f} ({d['baseline']}) = {d['ratio']:.2f}×" if d.get("baseline_value")
            else "")
    verdict = {True: "met", False: "MISSED", None: "-"}[d.get("met")]
    target = f" target {d['target']}: {verdict}" if d.get("target") else ""
    return f"{d['stage']}: {d['measure']} {d['value']:,.1f} {d['unit']}{base}{target}"


def produce(producer, topic: str, key: bytes | None, value: bytes, on_delivery=None, wait: float = 0.05,
            check=None) -> None:
    """`producer.produce`, waiting for room while librdkafka's local queue is full
    (BufferError): a pre-load produces faster than the broker acknowledges. `check()`
    runs at each wait (e.g. a deadline that raises)."""
    while True:
        try:
            producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(wait)
            if check:
                check()


def free_port() -> int:
    """A loopback TCP port that is free now (for a server the bench starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    """The given Kafka, or a local broker in a temp dir for as long as the block runs."""
    if bootstrap:
        yield bootstrap
        return
    from deploy.local_kafka import LocalKafka, fetch

    fetch()
    workdir = Path(tempfile.mkdtemp(prefix="sophra-bench-kafka-"))
    kafka = LocalKafka(workdir / "kafka")
    try:
        yield kafka.start(timeout=120)
    finally:
        kafka.stop()
        shutil.rmtree(workdir, ignore_errors=True)
