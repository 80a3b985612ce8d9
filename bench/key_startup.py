"""How long an api process takes to replay a large key log, and to authenticate a key.

1. Start a local broker in a temp dir (or use $KAFKA_BOOTSTRAP_SERVERS) and create a fresh
   `accounts.keys` topic under a new prefix.
2. Produce --keys `api_key` records with the project's codec and producer settings:
   accounts of --per-account keys each (the first key unauthenticated, the others asked
   for by the account), so the replay applies the real rules (5-key cap, first key) to
   every record.
3. Time `KeyRegistry(...).start()`, which is what the api's start-up waits for: replay
   from offset 0 to the end of the topic. Check every key was admitted.
4. Time `book.authenticate` on known and unknown keys, and `active_for`/`keys_of`.

Usage: .venv/bin/python bench/key_startup.py [--keys 200000] [--per-account 4] [--runs 3]
"""
import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import Producer  # noqa: E402

from pipeline.accounts import KeyRegistry, hash_key, mask, tenant_for  # noqa: E402
from pipeline.producer import producer_config  # noqa: E402
from pipeline.topics import ACCOUNT_KEYS, ensure_topics  # noqa: E402
from schemas import codec  # noqa: E402
from stage import produce  # noqa: E402  (bench/, this script's folder, is on the path)


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread, librdkafka's too
    return r.ru_utime + r.ru_stime


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def produce(bootstrap: str, topic: str, n: int, per_account: int) -> list[str]:
    """The key log; returns the keys (plain text, to authenticate with)."""
    producer = Producer(producer_config(bootstrap, **{"linger.ms": 50, "batch.size": 1_000_000}))
    keys, failed = [], []
    t0 = 1_800_000_000_000
    for i in range(n):
        account, nth = divmod(i, per_account)
        email = f"user{account}@bench.sophra"
        tenant = tenant_for(email)
        key = f"sk_live_bench{i:040d}"
        record = {"key_id": f"key_{i:016x}", "key_hash": hash_key(key), "email": email, "tenant": tenant,
                  "masked": mask(key), "requested_by": None if nth == 0 else tenant, "created_at": t0 + i,
                  "revoked_at": None, "read_only": False}
        produce(producer, topic, record["key_id"].encode(), codec.encode("api_key", record),
                lambda err, _: err and failed.append(err))
        producer.poll(0)
        keys.append(key)
    producer.flush(120)
    if failed or len(producer):
        raise SystemExit(f"produce failed: {failed[:3]} ({len(producer)} undelivered)")
    return keys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--per-account", type=int, default=4, help="keys per account, at most 5")
    ap.add_argument("--runs", type=int, default=3, help="replays to time")
    ap.add_argument("--lookups", type=int, default=200_000)
    args = ap.parse_args()

    kafka = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    try:
        if not bootstrap:
            from deploy.local_kafka import LocalKafka, fetch

            fetch()
            kafka = LocalKafka(Path(tempfile.mkdtemp(prefix="key-bench-")) / "kafka")
            bootstrap = kafka.start()
        prefix = f"keybench{uuid.uuid4().hex[:8]}."
        ensure_topics(bootstrap, prefix, specs=(ACCOUNT_KEYS,))
        topic = prefix + ACCOUNT_KEYS.name
        t = time.monotonic()
        keys = produce(bootstrap, topic, args.keys, args.per_account)
        print(f"produced {len(keys):,} api_key records ({args.keys // args.per_account:,} accounts) "
              f"in {time.monotonic() - t:.1f} s", flush=True)

        starts, cpus, rss_before, rss_one = [], [], rss_mb(), None
        for run in range(args.runs):
            t, c = time.monotonic(), cpu_s()
            registry = KeyRegistry(bootstrap, topic).start(timeout=600)
            starts.append(time.monotonic() - t)
            cpus.append(cpu_s() - c)
            rss_one = rss_one or rss_mb() - rss_before  # what one replayed book holds
            book = registry.book
            if run < args.runs - 1:
                registry.stop()
        assert len(book.by_id) == args.keys and not book.refused, (len(book.by_id), len(book.refused))
        print(f"KeyRegistry.start() to caught up over {args.keys:,} records: "
              + ", ".join(f"{s:.2f} s" for s in starts)
              + f" (median {statistics.median(starts):.2f} s, {args.keys / statistics.median(starts):,.0f} records/s; "
                f"CPU of this process {statistics.median(cpus):.2f} s; RSS +{rss_one:.0f} MB for the book; "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", flush=True)

        rng = random.Random(1)
        sample = [rng.choice(keys) for _ in range(args.lookups)]
        t = time.perf_counter()
        for key in sample:
            book.authenticate(key)
        known = (time.perf_counter() - t) / len(sample) * 1e6
        t = time.perf_counter()
        for i in range(args.lookups):
            book.authenticate(f"sk_live_unknown{i:036d}")
        unknown = (time.perf_counter() - t) / args.lookups * 1e6
        assert all(book.authenticate(k) is not None for k in sample[:1000])
        emails = [f"user{rng.randrange(args.keys // args.per_account)}@bench.sophra" for _ in range(args.lookups)]
        t = time.perf_counter()
        for email in emails:
            book.active_for(email)
            book.keys_of(tenant_for(email))
        account = (time.perf_counter() - t) / len(emails) * 1e6
        print(f"authenticate: {known:.2f} µs per known key, {unknown:.2f} µs per unknown key; "
              f"active_for + keys_of (with tenant_for): {account:.2f} µs per account "
              f"({args.lookups:,} calls each)", flush=True)
        registry.stop()
    finally:
        if kafka:
            kafka.stop()


if __name__ == "__main__":
    main()
