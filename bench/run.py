"""`make bench` / `python bench/run.py`: every stage beside its own baseline, one table.

Runs each stage script (bench/stage_*.py) in its own process, one after another, on
one Kafka broker (started here unless --bootstrap or $KAFKA_BOOTSTRAP_SERVERS names
one), so no two measurements share the machine. Each script measures its stage and
its baseline in the same run; this prints their rows, the ratio and whether the
target is met, with the date and the machine, and exits 1 if a stage failed to run
(a missed target is reported, not an error: the figures are what the run is for).

    python bench/run.py [--only api_vitals,worker] [--quick] [--json results.json]
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage import ROOT, arguments, broker, format_row  # noqa: E402

# In issue 13's order, then `sophra rebuild` (issue 15) and the OTLP ingest (issue 14); each is bench/stage_<name>.py.
STAGES = ("api_vitals", "api_metrics", "worker", "sink", "latency", "queries", "replay", "rebuild", "otlp")


def machine() -> str:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def main() -> int:
    ap = arguments(__doc__)
    ap.add_argument("--only", help=f"comma-separated stages, of {', '.join(STAGES)}")
    ap.add_argument("--timeout", type=float, default=1800, help="per stage, seconds (default 1800)")
    args = ap.parse_args()
    chosen = args.only.split(",") if args.only else list(STAGES)
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        ap.error(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows, failed = [], []
    with broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, str(ROOT / "bench" / f"stage_{name}.py"), "--bootstrap", bootstrap,
                   "--json", str(out)] + (["--quick"] if args.quick else [])
            print(f"\n== {name}: {' '.join(cmd[1:])}", flush=True)
            t = time.monotonic()
            try:
                code = subprocess.run(cmd, cwd=ROOT, timeout=args.timeout).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
            if code != 0 or not out.exists():
                failed.append(f"{name} (exit {code})")
                continue
            got = json.loads(out.read_text())
            print(f"== {name}: {len(got)} rows in {time.monotonic() - t:.0f} s", flush=True)
            rows += got

    print(f"\nSophra stage benchmarks, {started}, {machine()}" + (" (--quick)" if args.quick else ""))
    for r in rows:
        print("  " + format_row(r))
    met = [r for r in rows if r.get("met") is True]
    missed = [r for r in rows if r.get("met") is False]
    print(f"targets met {len(met)}, missed {len(missed)}" + (f"; stages that did not run: {', '.join(failed)}"
                                                              if failed else ""))
    if args.json:
        args.json.write_text(json.dumps({"date": started, "machine": machine(), "quick": args.quick,
                                         "rows": rows, "failed": failed}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
