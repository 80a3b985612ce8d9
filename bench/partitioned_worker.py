"""`sophra worker` with the agent topics at another partition count: the worker stage's
scaling rows (bench/stage_worker.py) create their topics so, under a prefix of their own.

    python bench/partitioned_worker.py PARTITIONS [sophra worker options]

The count is declared once, in pipeline/topics.py's specs, which the worker reads for
its tables and their changelogs; this sets it on those shared spec objects before the
worker starts (the specs are frozen dataclasses, hence object.__setattr__).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import topics  # noqa: E402

AGENT_TOPICS = (topics.AGENT_VITALS, topics.AGENT_EVENTS, topics.ARI_INTERVENTIONS, topics.ARI_STATUS)

if __name__ == "__main__":
    n = int(sys.argv.pop(1))
    for spec in AGENT_TOPICS:
        object.__setattr__(spec, "partitions", n)
    from sophra.cli import main

    sys.argv[1:1] = ["worker"]
    raise SystemExit(main())
