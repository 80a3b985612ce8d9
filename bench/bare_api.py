"""The api stages' baseline (bench/stage_api_vitals.py): a bare FastAPI app on the api's own
HTTP server settings (api/server.py) whose POST /api/vitals reads the body and answers the
JSON shape of the real route's 200, with no validation, no key, no Kafka. What the real
route costs beyond it is Sophra's own work.

    python bench/bare_api.py --port 8081
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi import FastAPI, Request  # noqa: E402

from api.server import http_server, run  # noqa: E402

app = FastAPI(title="bare")
_next_id = iter(range(1 << 40, 1 << 53))


@app.post("/api/vitals")
async def vitals(request: Request) -> dict:
    await request.body()
    return {"success": True, "health": "green", "vital": {
        "id": next(_next_id), "agent_id": "agent-bench", "token_consumption": 1200, "hallucination_rate": 0.01,
        "loop_frequency": 0, "directive_conflicts": 0, "overall_health": "green",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}}


async def main(port: int) -> int:
    server = http_server(app, "127.0.0.1", port)
    await server.serve()
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    sys.exit(run(main(ap.parse_args().port)))
