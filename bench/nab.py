"""NAB benchmark: runs pipeline/anomaly (the worker's detector code) and NAB's windowed
Gaussian baseline over NAB-format data, writes NAB results files and scores them by NAB's
rules (bench/nab_scoring.py) for every profile.

    .venv/bin/python bench/nab.py [--data DIR] [--windows FILE] [--profiles FILE] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import nab_scoring  # noqa: E402
from pipeline import anomaly  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "nab"


def parse_ts(text: str) -> float:
    text = text.strip()
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()


def read_series(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return ([r["timestamp"] for r in rows], np.array([parse_ts(r["timestamp"]) for r in rows]),
            np.array([float(r["value"]) for r in rows]))


def ours(ts: np.ndarray, xs: np.ndarray) -> list[float]:
    state = anomaly.new_state()
    return [anomaly.update(state, float(t), float(x)).score for t, x in zip(ts, xs)]


def windowed_gaussian(ts: np.ndarray, xs: np.ndarray) -> list[float]:
    """NAB's windowedGaussian baseline as NAB describes it: the score is 1 - Q(|z|), Q the
    normal tail probability, of the value under a normal fitted to the last 6400 values,
    refitted after every value until the window is full and every 100 values after that;
    the first value scores 0."""
    window_size, step = 6400, 100
    window: list[float] = []
    buffer: list[float] = []
    mean, std = 0.0, 1.0
    out = []
    for x in xs:
        if window:
            z = abs(x - mean) / std
            out.append(1.0 - 0.5 * math.erfc(z / math.sqrt(2.0)))
        else:
            out.append(0.0)
        if len(window) < window_size:
            window.append(float(x))
            refit = True
        else:
            buffer.append(float(x))
            refit = len(buffer) == step
            if refit:
                window = window[step:] + buffer
                buffer = []
        if refit:
            mean, std = float(np.mean(window)), float(np.std(window))
            if std == 0.0:
                std = 0.000001
    return out


DETECTORS = {"sophra": ours, "windowedGaussian": windowed_gaussian}


def window_rows(ts: np.ndarray, windows: list[list[str]]) -> list[tuple[int, int]]:
    out = []
    for start, end in windows:
        a = int(np.searchsorted(ts, parse_ts(start), side="left"))
        b = int(np.searchsorted(ts, parse_ts(end), side="right")) - 1
        if b >= a:
            out.append((a, b))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=SHARED / "data")
    p.add_argument("--windows", type=Path, default=SHARED / "combined_windows.json")
    p.add_argument("--profiles", type=Path, default=SHARED / "profiles.json")
    p.add_argument("--out", type=Path, default=Path("/tmp/sophra-nab-results"))
    p.add_argument("--detectors", default=",".join(DETECTORS))
    args = p.parse_args(argv)

    windows = json.loads(args.windows.read_text())
    profiles = json.loads(args.profiles.read_text())
    names = args.detectors.split(",")
    prepared: dict[str, list] = {d: [] for d in names}
    cost_us: dict[str, list[float]] = {d: [0.0, 0] for d in names}
    for rel in sorted(windows):
        path = args.data / rel
        if not path.exists():
            continue
        raw_ts, ts, xs = read_series(path)
        wrows = window_rows(ts, windows[rel])
        category, fname = rel.split("/")
        for d in names:
            t0 = time.perf_counter()
            scores = DETECTORS[d](ts, xs)
            cost_us[d][0] += (time.perf_counter() - t0) * 1e6
            cost_us[d][1] += len(xs)
            out = args.out / category / f"{d}_{fname}"
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["timestamp", "value", "anomaly_score"])
                for r, x, s in zip(raw_ts, xs, scores):
                    w.writerow([r, repr(float(x)), repr(float(s))])
            prepared[d].append(nab_scoring.prepare(scores, wrows))

    print(f"{'detector':18s}" + "".join(f"{p:>22s}" for p in profiles) + f"{'us/point':>10s}")
    for d in names:
        line = f"{d:18s}"
        for prof in profiles.values():
            r = nab_scoring.score_corpus(prepared[d], prof["CostMatrix"])
            line += f"{r['score']:12.1f} (t={r['threshold']:.4g})".rjust(22)
        line += f"{cost_us[d][0] / max(cost_us[d][1], 1):10.1f}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
