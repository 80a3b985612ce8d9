"""ARI end to end on real parts: histories produced to the real topics, the real Faust
worker, the sink, ClickHouse, and GET /api/agents/{id}/ari."""
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from confluent_kafka import Producer

from pipeline.accounts import tenant_for
from pipeline.producer import producer_config
from pipeline.store.clickhouse import connect
from pipeline.topics import AGENT_EVENTS, AGENT_VITALS, entity_key
from schemas import codec
from sophra.processes import terminate

from . import ari_histories as H
from .conftest import eventually
from .test_ari_engine import latest, run

pytestmark = pytest.mark.integration

EMAIL = "ari@test.sophra"
TENANT = tenant_for(EMAIL)
TODAY = int(datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)
SHIFT = TODAY + 60_000 - H.T0  # move the histories to today, so interventions_today counts them


def today(records):
    return [{**r, "tenant": TENANT, "recorded_at": r["recorded_at"] + SHIFT} for r in records]


def histories():
    events, storm = H.conflict_storm()
    return {"burnout": (today(H.burnout()), []), "conflicts": (today(storm), today(events)),
            "tokens": (today(H.token_spike()), []), "corrupt": (today(H.corrupt()), []),
            "recovers": (today(H.burnout_and_recovery()), []),
            "healthy": (today(H.healthy_noise(n=60)), []), "young": (today([H.steady(i, "young") for i in range(3)]), [])}


def start_worker(s):
    """`sophra worker` for the api's topics, its output in the data folder (worker-N.log), so
    a failure can show what the worker said."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
           "SOPHRA_TOPIC_PREFIX": s.topic_prefix, "SOPHRA_WORKER_ID": s.worker_id}
    log = s.data_dir / f"worker-{len(list(s.data_dir.glob('worker-*.log')))}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sophra", "worker", "--loglevel", "info"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def worker_said(proc) -> str:
    """The end of a worker's output, and whether it still runs: for a failed assertion."""
    state = "running" if proc.poll() is None else f"exited {proc.returncode}"
    return f"worker {state}; the end of {proc.log}:\n" + "\n".join(proc.log.read_text().splitlines()[-40:])


def produce(s, records):
    p = Producer(producer_config(s.kafka_bootstrap_servers))
    for kind, rec in records:
        topic = AGENT_VITALS if kind == "agent_vital" else AGENT_EVENTS
        p.produce(s.topic(topic.name), key=entity_key(rec["tenant"], rec["agent_id"]), value=codec.encode(kind, rec))
    assert p.flush(30) == 0


def ordered(hist):
    """Events before the vitals recorded after them, as an agent would send them."""
    out = []
    for vitals, events in hist.values():
        out += sorted([("agent_event", e) for e in events] + [("agent_vital", v) for v in vitals],
                      key=lambda kr: kr[1]["recorded_at"])
    return out


def stored_interventions(s):
    ch = connect(s.clickhouse_dsn, s.clickhouse_database)
    rows = ch.query("SELECT tenant, agent_id, intervention_id, protocol, severity, description, tokens_saved, details,"
                    " toUnixTimestamp64Milli(opened_at), toUnixTimestamp64Milli(closed_at), version,"
                    " outcome, outcome_details, tokens_saved_measured"
                    " FROM ari_interventions FINAL ORDER BY opened_at, intervention_id, agent_id").result_rows
    cols = ["tenant", "agent_id", "intervention_id", "protocol", "severity", "description", "tokens_saved", "details",
            "opened_at", "closed_at", "version", "outcome", "outcome_details", "tokens_saved_measured"]
    return [dict(zip(cols, r)) for r in rows]


def expected_interventions(hist):
    out = []
    for vitals, events in hist.values():
        out += latest(run(vitals, events)[1])
    return sorted(out, key=lambda v: (v["opened_at"], v["intervention_id"], v["agent_id"]))


def snapshots(s) -> dict:
    ch = connect(s.clickhouse_dsn, s.clickhouse_database)
    return dict(ch.query("SELECT agent_id, snapshots FROM ari_status FINAL").result_rows)


def expected_snapshots(hist) -> dict:
    return {agent: len(v) for agent, (v, _) in hist.items()}


def statuses_done(s, hist):
    return snapshots(s) == expected_snapshots(hist)


@pytest.fixture
def api(running_api):
    return running_api()


def test_histories_get_the_right_protocols_through_the_worker(api):
    s, hist = api.settings, histories()
    key = api.new_key(EMAIL)
    worker = start_worker(s)
    try:
        produce(s, ordered(hist))
        assert eventually(lambda: statuses_done(s, hist), 90)
        assert eventually(lambda: stored_interventions(s) == expected_interventions(hist), 30)
    finally:
        assert terminate(worker) == 0

    with api.client(key) as http:
        def ari(agent):
            res = http.get(f"/api/agents/{agent}/ari")
            assert res.status_code == 200
            return res.json()

        burnout = ari("burnout")
        assert burnout["ready"] is True and burnout["snapshots"] == 17
        assert [(i["protocol"], i["name"], i["severity"], i["status"], i["id"]) for i in burnout["interventions"]] == [
            (1, "Nerf Vague", "medium", "closed", "iv_10012_p1")]
        assert burnout["interventions"][0]["description"] == "Burnout risk detected — loop frequency spike"
        assert burnout["stats"] == {"interventions_today": 1, "tokens_saved": 100, "conflicts_resolved": 0,
                                    "tokens_saved_measured": 0}
        assert burnout["checkups"] == {"auth": {"result": "ok", "text": "ALIGNÉ"},
                                       "integ": {"result": "ok", "text": "SAIN"},
                                       "charge": {"result": "ok", "text": "OPTIMAL"}}

        conflicts = ari("conflicts")
        [iv] = conflicts["interventions"]
        assert (iv["protocol"], iv["severity"], iv["status"]) == (2, "high", "closed")
        assert iv["details"]["pattern"]["recurring_details"] == [["System prompt vs user instruction mismatch", 4]]
        assert conflicts["stats"] == {"interventions_today": 1, "tokens_saved": 0, "conflicts_resolved": 1,
                                     "tokens_saved_measured": 0}

        tokens = ari("tokens")
        assert [(i["protocol"], i["severity"], i["tokens_saved"]) for i in tokens["interventions"]] == [(4, "high", 5800)]
        assert tokens["stats"]["tokens_saved"] == 5800

        # the episode closed and the 3 snapshots after it were measured: the measure beside the estimate
        recovers = ari("recovers")
        [iv] = recovers["interventions"]
        assert (iv["outcome"], iv["tokens_saved"], iv["tokens_saved_measured"]) == ("improved", 800, 1400)
        assert iv["outcome_details"]["metrics"]["loop_frequency"] == {"before": 80.0, "after": 5.0}
        assert recovers["stats"]["tokens_saved_measured"] == 1400
        assert (burnout["interventions"][0]["outcome"], burnout["interventions"][0]["tokens_saved_measured"]) == (
            None, None)  # closed, but its after window is not full

        corrupt = ari("corrupt")
        assert [(i["protocol"], i["severity"]) for i in corrupt["interventions"]] == [(3, "high")]

        healthy = ari("healthy")
        assert healthy["interventions"] == [] and healthy["stats"] == {
            "interventions_today": 0, "tokens_saved": 0, "conflicts_resolved": 0, "tokens_saved_measured": 0}

        assert ari("young") == {
            "success": True, "agent_id": "young", "ready": False, "snapshots": 3,
            "message": "ARI starts after 5 snapshots; this agent has 3 so far",
            "stats": {"interventions_today": 0, "tokens_saved": 0, "conflicts_resolved": 0,
                      "tokens_saved_measured": 0},
            "checkups": {}, "interventions": []}
        assert http.get("/api/agents/nobody/ari").status_code == 404
    with api.client(api.new_key()) as other:
        assert other.get("/api/agents/burnout/ari").status_code == 404


def test_a_worker_stopped_mid_stream_ends_where_an_uninterrupted_one_would(api):
    s, hist = api.settings, histories()
    records = ordered(hist)
    half = len(records) // 2
    worker = start_worker(s)
    try:
        produce(s, records[:half])
        ch = connect(s.clickhouse_dsn, s.clickhouse_database)
        assert eventually(lambda: ch.query("SELECT count() FROM ari_status").result_rows[0][0] > 0, 60)
        produce(s, records[half:])  # the worker has applied part of the stream; stop it as the rest arrives
        assert terminate(worker) == 0
        applied_before_stop = ch.query("SELECT sum(snapshots) FROM ari_status FINAL").result_rows[0][0]
        worker = start_worker(s)
        # A restart rejoins the group and recovers its table from the changelog: in two full
        # runs (the session's shared broker) that took over 90 s; alone it takes seconds.
        assert eventually(lambda: statuses_done(s, hist), 240), (
            f"snapshots per agent {snapshots(s)} != {expected_snapshots(hist)}; " + worker_said(worker))
        assert eventually(lambda: stored_interventions(s) == expected_interventions(hist), 30)
    finally:
        terminate(worker)
    assert 0 < applied_before_stop < sum(len(v) for v, _ in hist.values())
    # ids are unique per agent (two histories here open theirs at the same snapshot id)
    assert ch.query("SELECT count(), uniqExact(agent_id, intervention_id) FROM ari_interventions FINAL"
                    ).result_rows == [(5, 5)]
