"""OTLP stage (issue 14): OTLP/HTTP metrics ingest in points/s per request size, beside the
/v1 JSON metrics path with the same points in the same run (`otlp_ingest.py` measures;
this writes its figures as `make bench` rows). Reported, no target.

It runs under `sophra up` with that command's own embedded broker, as a user's `make run`
would, so --bootstrap is not used: the stage before it has finished with its broker.

Usage: python bench/stage_otlp.py [--quick] [--json OUT] [--sizes 100,1000,5000] [--requests 20]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from otlp_ingest import measure  # noqa: E402
from stage import Row, arguments, write_rows  # noqa: E402


def main() -> int:
    ap = arguments(__doc__)
    ap.add_argument("--sizes", default="100,1000,5000", help="data points per request, comma-separated")
    ap.add_argument("--requests", type=int, help="requests per path and size (default 20; --quick 5)")
    args = ap.parse_args()
    n_requests = args.requests or (5 if args.quick else 20)
    results, expected, to_landed, _ = measure([int(s) for s in args.sizes.split(",")], n_requests)
    by = {(name, size): (rate, p50, p95) for name, size, _, rate, p50, p95 in results}
    rows = []
    for size in sorted({size for _, size in by}):
        v1 = by[("v1-json", size)][0]
        for name in ("otlp-protobuf", "otlp-json"):
            rate, p50, p95 = by[(name, size)]
            rows.append(Row("OTLP ingest", f"{name}, {size:,} points a request", rate, "points/s",
                            baseline="POST /v1/.../metrics, the same points as JSON", baseline_value=v1,
                            note=f"{n_requests} requests, one client, under sophra up; request p50 {p50 * 1000:.0f} ms, "
                                 f"p95 {p95 * 1000:.0f} ms; all {expected:,} points counted by the rollups "
                                 f"{to_landed:.1f} s after the first request"))
    write_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
