"""A burst of good and malformed writes at once: every malformed one gets a 400 naming
its field, the api keeps serving, and every acknowledged record is in ClickHouse
exactly once."""
import asyncio
import json

import httpx
import pytest

from pipeline.store.clickhouse import connect

from .conftest import eventually

pytestmark = pytest.mark.integration

MALFORMED = [
    (b"{not json", "body"),
    (b'{"metrics": {}}', "agentId"),
    (b'{"agentId": "x", "metrics": {"hallucinationRate": NaN}}', "metrics.hallucinationRate"),
    (b'{"agentId": "x", "metrics": {"loopCount": -3}}', "metrics.loopCount"),
    (b'{"agentId": "x", "metrics": {"conflictCount": "2"}}', "metrics.conflictCount"),
    (b'{"agentId": "x", "metrics": {"tokenConsumption": 1e400}}', "metrics.tokenConsumption"),
    (b'[1, 2, 3]', "body"),
    (b'{"agentId": "x", "metadata": {"big": "' + b"y" * 70_000 + b'"}}', "body"),
]


def test_malformed_burst_loses_nothing_acknowledged(running_api):
    api = running_api()
    key = api.key

    async def burst():
        async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {key}",
                                                                "Content-Type": "application/json"}) as http:
            good = [http.post("/api/vitals", content=json.dumps({"agentId": f"g{i}", "metrics": {"loopCount": i}}))
                    for i in range(120)]
            events = [http.post("/api/events", content=json.dumps({"agentId": f"g{i}", "type": "tick"}))
                      for i in range(40)]
            bad = [http.post("/api/vitals", content=raw) for raw, _ in MALFORMED for _ in range(10)]
            return await asyncio.gather(*good), await asyncio.gather(*events), await asyncio.gather(*bad)

    good, events, bad = asyncio.run(burst())
    assert [r.status_code for r in good] == [200] * 120
    assert [r.status_code for r in events] == [200] * 40
    assert [(r.status_code, r.json()["field"]) for r in bad] == [(400, f) for _, f in MALFORMED for _ in range(10)]

    ch = connect(api.settings.clickhouse_dsn, api.settings.clickhouse_database)
    vital_ids = sorted(r.json()["vital"]["id"] for r in good)
    event_ids = sorted(r.json()["event"]["id"] for r in events)

    def landed(table):
        return [r[0] for r in ch.query(f"SELECT id FROM {table} ORDER BY id").result_rows]

    assert eventually(lambda: landed("agent_vitals") == vital_ids, 20)  # no FINAL: exactly once, physically
    assert eventually(lambda: landed("agent_events") == event_ids, 20)
    with api.client() as http:
        assert http.get("/api/agents/g7/vitals").json()["vitals"][0]["loop_frequency"] == 7
