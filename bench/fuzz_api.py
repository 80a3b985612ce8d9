"""A long schemathesis run against the real api: at least --requests requests (default
10,000) over every operation of /openapi.json, generated to fit the schema and to break
it, with a valid key of an enterprise account (no hourly quota in the way).

Setup: a local broker (deploy/local_kafka.py) and chdb in a temp dir, the api in this
process with the ClickHouse sink (tests/conftest.py's RunningApi), real ids for the path
parameters (tests/fuzzing.py). Rounds of --examples per operation and generation mode
run with seeds 0, 1, 2, ... until the requests reach --requests.

Prints the counts by status and by operation, and every problem (a 5xx, or a 4xx not in
the error shape) with a curl command to replay it; exits 1 if there was any.
Usage: python bench/fuzz_api.py [--requests 10000] [--examples 50]
"""
import argparse
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy.local_kafka import LocalKafka, fetch  # noqa: E402
from sophra.settings import Settings  # noqa: E402
from tests import fuzzing  # noqa: E402
from tests.conftest import RunningApi  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--examples", type=int, default=50, help="per operation and generation mode, per round")
    args = ap.parse_args()
    fetch()
    tmp = Path(tempfile.mkdtemp(prefix="sophra-fuzz-"))
    with LocalKafka(tmp / "kafka") as kafka:
        tag = uuid.uuid4().hex[:8]
        settings = Settings(data_dir=tmp, kafka_bootstrap_servers=kafka.bootstrap_servers,
                            clickhouse_url=f"chdb://{tmp / 'clickhouse'}", clickhouse_database=f"fuzz_{tag}",
                            topic_prefix=f"f{tag}.", sink_group=f"sink-{tag}", worker_id=f"worker-{tag}")
        with RunningApi(settings) as api:
            key = fuzzing.unlimited_key(api)
            ids = fuzzing.fixtures(api.url, key)
            total = fuzzing.Report()
            started, seed = time.monotonic(), 0
            while total.requests < args.requests:
                r = fuzzing.run(api.url, key, args.examples, seed=seed, ids=ids)
                total.statuses.update(r.statuses)
                for label, counts in r.by_operation.items():
                    total.by_operation.setdefault(label, Counter()).update(counts)
                total.problems += r.problems
                total.unsent += r.unsent
                print(f"round {seed}: {r.requests} requests, {len(r.problems)} problems "
                      f"({time.monotonic() - started:.0f} s)", flush=True)
                seed += 1
                if not ids.get("app_id") or r.by_operation.get("DELETE /v1/applications/{app_id}", {}).get(204):
                    ids = fuzzing.fixtures(api.url, key)  # the round's DELETEs may have removed them
            print(fuzzing.summary(total))
            print(f"{total.requests} requests in {time.monotonic() - started:.0f} s; "
                  f"5xx: {sum(n for s, n in total.statuses.items() if s >= 500)}; problems: {len(total.problems)}")
            return 1 if total.problems else 0


if __name__ == "__main__":
    sys.exit(main())
