"""Record released schema versions: ``python -m schemas.snapshot [schema_dir]``.

For each kind whose current fingerprint is not yet in ``history/<kind>/``, check the
current schema is backward and forward compatible with every historical version
(``schemas.compat``), then copy the .avsc there verbatim. Exits 1 (writing nothing
for that kind) on incompatibility.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from schemas.codec import SCHEMA_DIR, Registry, history_name
from schemas.compat import compatibility_problems


def snapshot(root: Path | str = SCHEMA_DIR, out=print) -> int:
    reg = Registry(root)
    status = 0
    for kind in reg.kinds():
        fp = reg.fingerprint(kind)
        dest = reg.root / "history" / kind / history_name(fp)
        if dest.exists():
            out(f"{kind}: {fp:016x} already in history")
            continue
        current = reg.current_schema(kind)
        problems = [f"vs {old:016x}: {p}"
                    for old, schema in sorted(reg.history(kind).items())
                    for p in compatibility_problems(schema, current)]
        if problems:
            out(f"{kind}: NOT snapshotted, incompatible with released versions:")
            for p in problems:
                out(f"  {p}")
            status = 1
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(reg.path(kind), dest)
        out(f"{kind}: added {dest} (commit it)")
    return status


if __name__ == "__main__":
    sys.exit(snapshot(*sys.argv[1:2]))
