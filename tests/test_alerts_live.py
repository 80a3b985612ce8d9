"""Alerts end to end on real parts: rules through the api, metrics through the real
broker, the real Faust worker evaluating them, the sink landing transitions in ClickHouse."""
import os
import subprocess
import sys
import time

import pytest

from pipeline.store.clickhouse import connect
from sophra.processes import terminate

from .conftest import eventually

pytestmark = pytest.mark.integration

REFERENCE_RULE = {"name": "High Error Rate", "condition": {"metric": "error_rate", "operator": ">", "threshold": 0.05},
                  "actions": [{"type": "email", "recipients": ["admin@company.com"]},
                              {"type": "slack", "channel": "#alerts"}]}


def start(s, command: str, **env):
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers, "SOPHRA_TOPIC_PREFIX": s.topic_prefix,
           "SOPHRA_WORKER_ID": s.worker_id, **env}
    return subprocess.Popen([sys.executable, "-m", "sophra", command], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def transitions(s):
    ch = connect(s.clickhouse_dsn, s.clickhouse_database)
    return ch.query("SELECT rule_id, previous_state, state, notify, value FROM alert_transitions FINAL "
                    "ORDER BY at, wall_at").result_rows


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def test_reference_rule_fires_and_resolves_through_the_worker(running_api):
    api = running_api()
    s = api.settings
    worker = start(s, "worker")
    try:
        with api.client() as http:
            app_id = http.post("/v1/applications", json={"name": "My Application"}).json()["id"]
            rule_id = http.post(f"/v1/applications/{app_id}/alerts", json=REFERENCE_RULE).json()["id"]
            t = now_ms() - 60_000
            points = [{"metric": "error_rate", "value": v, "timestamp": iso(t + i * 1000)}
                      for i, v in enumerate([0.01, 0.02, 0.2])]
            assert http.post(f"/v1/applications/{app_id}/metrics", json={"points": points}).status_code == 202
            assert eventually(lambda: transitions(s), 60) == [(rule_id, "ok", "firing", "firing", pytest.approx(0.23 / 3))]
    finally:
        terminate(worker)
