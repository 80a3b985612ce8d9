"""Backtest the predictions' forecaster by rolling origin on NAB-format series, and time
a real prediction request on the embedded default.

Usage: python bench/forecast.py --data DIR [--stride-hours 24] [--horizons 1h,24h] [--latency] [--requests 50]

DIR is laid out like NAB's data folder: <category>/<file>.csv with `timestamp,value`.
For each horizon benchmarked (1h and 24h) every series is resampled to the rollup that
horizon reads (bucket means of 5 min and 1 h; empty buckets interpolated as the api
does), and at origins every --stride-hours plus one bucket the forecaster (pipeline/predictions.py's
forecast_after, the code the api runs) gets the history the api would read (the
lookback before the current bucket) and predicts the buckets after the current one.

- MASE: mean absolute error over every origin and lead, divided by the series' in-sample
  seasonal naive error (mean |y_t - y_{t-m}|, m = one day of buckets), for the forecaster
  and for the seasonal naive forecast itself; geometric mean over the series. Series
  whose scale is 0 (an exactly repeating or flat series) have no MASE and are listed.
- Coverage: the share of actual bucket means inside the forecast's [lower, upper].
- Cost: wall time of each forecaster call.
- --latency: starts `sophra up` on a temp folder, writes 28 days of hourly response
  times for an application (a daily pattern and noise, hourly, and every 5 minutes over the
  last 4 days), waits until the predictions read
  all 672 buckets and times --requests GET .../predictions?horizon=24h (and 1h).
"""
import argparse
import csv
import math
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline import predictions as P  # noqa: E402

BENCH_HORIZONS = ("1h", "24h")


def load(path: Path) -> list[tuple[int, float]]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return [(int(datetime.fromisoformat(r["timestamp"]).replace(tzinfo=timezone.utc).timestamp()), float(r["value"]))
            for r in rows]


def resample(points: list[tuple[int, float]], step_s: int) -> np.ndarray:
    """Bucket means of `step_s`, one per bucket from the first to the last, empty buckets
    interpolated (pipeline.predictions.series)."""
    sums: dict[int, list[float]] = {}
    for t, v in points:
        sums.setdefault(t - t % step_s, []).append(v)
    means = [(b, sum(vs) / len(vs)) for b, vs in sums.items()]
    first, last = min(sums), max(sums)
    return P.series(means, first, last, step_s)


def backtest(y: np.ndarray, horizon: str, stride: int) -> dict | None:
    h = P.HORIZONS[horizon]
    m = h.seasons[0]
    steps = P.HORIZON_S[horizon] // h.step_s
    scale = float(np.mean(np.abs(y[m:] - y[:-m])))
    start = 2 * m + steps + 1  # before this the rules allow only seasonal naive
    err, naive_err, inside, cost, methods = [], [], 0, [], {}
    for c in range(start, len(y) - steps, stride):  # c: the current (still filling) bucket
        history = y[max(0, c - h.buckets):c]
        t0 = time.perf_counter()
        f = P.forecast_after(history, 0, horizon)
        cost.append(time.perf_counter() - t0)
        methods[f.method] = methods.get(f.method, 0) + 1
        actual = y[c + 1:c + 1 + steps]
        err.extend(np.abs(f.mean - actual))
        naive_err.extend(np.abs(y[c + 1 - m:c + 1 - m + steps] - actual))
        inside += int(np.sum((f.lower <= actual) & (actual <= f.upper)))
    if not err:
        return None
    return {"scale": scale, "mae": float(np.mean(err)), "naive_mae": float(np.mean(naive_err)),
            "inside": inside, "n": len(err), "cost": cost, "methods": methods}


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def run_backtests(data: Path, stride_hours: float, horizons: list[str]) -> None:
    files = sorted(data.glob("*/*.csv"))
    print(f"{len(files)} series in {data}")
    for horizon in horizons:
        h = P.HORIZONS[horizon]
        # one bucket more than the stride, so that the origins go round every phase of the
        # day (and of an hour) instead of all forecasting from the same hour of the day
        stride = max(1, int(stride_hours * 3600 // h.step_s)) + 1
        mase, naive_mase, skipped, cost, inside, n, methods = [], [], [], [], 0, 0, {}
        t0 = time.monotonic()
        for path in files:
            r = backtest(resample(load(path), h.step_s), horizon, stride)
            if r is None:
                skipped.append(f"{path.stem} (too short)")
                continue
            cost += r["cost"]
            inside += r["inside"]
            n += r["n"]
            for k, v in r["methods"].items():
                methods[k] = methods.get(k, 0) + v
            if r["scale"] == 0:
                skipped.append(f"{path.stem} (scale 0)")
                continue
            mase.append(max(r["mae"] / r["scale"], 1e-9))
            naive_mase.append(max(r["naive_mae"] / r["scale"], 1e-9))
            print(f"  {horizon} {path.parent.name}/{path.stem}: MASE {mase[-1]:.3f} "
                  f"(seasonal naive {naive_mase[-1]:.3f}), coverage {r['inside'] / r['n']:.3f}, {r['methods']}")
        c = sorted(x * 1000 for x in cost)
        print(f"horizon {horizon} ({h.granularity} buckets, lookback {h.buckets}, stride {stride} buckets): "
              f"{len(mase)} series scored, {n} forecasts of a bucket from {len(cost)} origins, {time.monotonic() - t0:.0f} s")
        print(f"  geometric-mean MASE: forecaster {geomean(mase):.3f}, seasonal naive {geomean(naive_mase):.3f}; "
              f"ratio {geomean([a / b for a, b in zip(mase, naive_mase)]):.3f}")
        print(f"  80 % interval coverage: {inside / n:.3f} ({inside}/{n})")
        print(f"  forecast cost per request: mean {statistics.fmean(c):.1f} ms, median {c[len(c) // 2]:.1f} ms, "
              f"p95 {c[int(len(c) * 0.95)]:.1f} ms, max {c[-1]:.1f} ms")
        print(f"  methods chosen: {methods}")
        if skipped:
            print(f"  not scored: {', '.join(skipped)}")


def measure_latency(requests: int) -> None:
    import tempfile

    import httpx
    from stage import free_port
    from startup_latency import start, stop

    rng = np.random.default_rng(12)
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        proc, _ = start(folder, port)
        try:
            base = f"http://127.0.0.1:{port}"
            key = httpx.post(f"{base}/api/keys", json={"email": f"bench-{time.time_ns()}@sophra.local"}).json()["key"]
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
                app = http.post("/v1/applications", json={"name": "bench"}).json()["id"]
                now = int(time.time())
                hour = now - now % 3600

                def value(t: int) -> float:  # a daily pattern and noise
                    return float(200 + 50 * math.sin(2 * math.pi * (t % 86400) / 86400) + rng.normal(0, 10))

                points = [{"metric": "response_time", "timestamp": (t + 60) * 1000, "value": value(t)}
                          for t in range(hour - 28 * 86400, hour, 3600)]
                # and the last 4 days at 5 minutes, for the 1h horizon
                points += [{"metric": "response_time", "timestamp": (t + 30) * 1000, "value": value(t)}
                           for t in range(hour - 4 * 86400, hour, 300) if t % 3600]
                for i in range(0, len(points), 1000):
                    assert http.post(f"/v1/applications/{app}/metrics", json={"points": points[i:i + 1000]}).status_code == 202
                deadline = time.monotonic() + 120
                while http.get(f"/v1/applications/{app}/predictions").json()["basis"]["buckets"] < 672:
                    if time.monotonic() > deadline:
                        raise SystemExit("the history did not land within 120 s")
                    time.sleep(0.5)
                for horizon in ("24h", "1h"):
                    lat = []
                    for _ in range(requests):
                        t0 = time.perf_counter()
                        res = http.get(f"/v1/applications/{app}/predictions", params={"horizon": horizon})
                        lat.append((time.perf_counter() - t0) * 1000)
                        assert res.status_code == 200
                    lat.sort()
                    print(f"prediction request {horizon} ({res.json()['basis']['buckets']} buckets, "
                          f"{res.json()['basis']['method']}), {requests} sequential: median {lat[len(lat) // 2]:.0f} ms, "
                          f"p95 {lat[int(len(lat) * 0.95)]:.0f} ms, max {lat[-1]:.0f} ms")
        finally:
            stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--stride-hours", type=float, default=24.0)
    ap.add_argument("--horizons", default=",".join(BENCH_HORIZONS))
    ap.add_argument("--latency", action="store_true", help="also time real requests on the embedded default")
    ap.add_argument("--requests", type=int, default=50)
    args = ap.parse_args()
    if args.horizons:  # --horizons "" for the latency alone
        run_backtests(args.data, args.stride_hours, args.horizons.split(","))
    if args.latency:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        measure_latency(args.requests)


if __name__ == "__main__":
    main()
