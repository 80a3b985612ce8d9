"""`sophra replay` of deployment verdicts on the real broker and engine: a verdict that a
changed threshold turns is replaced exactly (rows and insights), `--only deployments`
leaves ARI's rows alone, and a worker restarted after replay resumes from the replayed
`app_state`."""
import json
import os
import subprocess
import sys

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline import deployments as D
from pipeline.insights import insight_id
from pipeline.producer import producer_config
from pipeline.replay import ReplayError, replay
from pipeline.replay.common import partition_of as of
from pipeline.replay.deployments import changelog_topic
from pipeline.store.clickhouse import connect
from pipeline.store.migrate import migrate
from pipeline.topics import APP_DEPLOYMENTS, APP_INSIGHTS, APP_METRICS, ensure_topics
from pipeline.worker.anomalies import WATCH
from schemas import codec
from sophra.processes import terminate

from .conftest import eventually
from .test_replay import COLS, POST_FROM, PRE_FROM, land_all, read_topic, stored

pytestmark = pytest.mark.integration

MIN = 60_000
T0 = 1_795_000_000_000           # 2026-11-18T11:06:40Z
FROM = T0 + 10 * MIN
TENANT = "t_dep"
KEY_A, KEY_B = b"t_dep/app_a", b"t_dep/app_b"
DEP_COLS = ["id", "application_id", "status", "reason", "completed_at", "revision"]


def pending(app, dep_id, started_at, version):
    return {"tenant": TENANT, "id": dep_id, "application_id": app, "version": version, "description": None,
            "changes": "[]", "rollback_on_error": False, "health_check_url": None, "health_url": None,
            "status": "pending", "reason": None, "started_at": started_at, "completed_at": None, "revision": 0,
            "probed": False, "probe_failure": None}


def batch(app, batch_id, start, minutes, error_rate, response_time=100.0, offset=0):
    points = [{"metric": m, "value": v, "timestamp": start + offset + i * MIN}
              for i in range(minutes) for m, v in (("error_rate", error_rate), ("response_time", response_time))]
    return {"tenant": TENANT, "application_id": app, "id": batch_id, "received_at": start, "points": points}


D1_AT, D2_AT = T0 + 20 * MIN, T0 + 40 * MIN
# In the order produced. app_a: an old deployment (before --from), then one whose after-data
# (error rate 0.01 -> 0.04) fails the default rise of 0.02 and passes a rise of 0.05.
# app_b: one that fails either way (0.01 -> 0.2).
HISTORY = [
    (KEY_A, "app_deployment", pending("app_a", "deploy_old", T0 + 2 * MIN, "v1")),
    (KEY_A, "app_metric_batch", batch("app_a", 1, D1_AT - 14 * MIN, 14, 0.01)),
    (KEY_A, "app_deployment", pending("app_a", "deploy_d1", D1_AT, "v2")),
    (KEY_A, "app_metric_batch", batch("app_a", 2, D1_AT, 6, 0.04, offset=1000)),
    (KEY_B, "app_metric_batch", batch("app_b", 3, D2_AT - 14 * MIN, 14, 0.01)),
    (KEY_B, "app_deployment", pending("app_b", "deploy_d2", D2_AT, "v7")),
    (KEY_B, "app_metric_batch", batch("app_b", 4, D2_AT, 6, 0.2, offset=1000)),
]
D1_DONE, D2_DONE = D1_AT + 1000 + 5 * MIN, D2_AT + 1000 + 5 * MIN  # the newest point when each became due
D1_FAILED = ("deploy_d1", "app_a", "failed", "error rate rose from 0.01 to 0.04", D1_DONE, 2)
D1_SUCCESS = ("deploy_d1", "app_a", "success", None, D1_DONE, 2)
D2_FAILED = ("deploy_d2", "app_b", "failed", "error rate rose from 0.01 to 0.2", D2_DONE, 2)
# rows before --from stay as they are, whatever replay derives for them
OLD_ROW = ("deploy_old", "app_a", "success", "old rules", T0 + 3 * MIN, 2)
GONE_ROW = ("deploy_gone", "app_a", "failed", "old rules", T0 + 30 * MIN, 2)  # no longer derived: must go


def produce(s, records):
    p = Producer(producer_config(s.kafka_bootstrap_servers))
    for key, kind, record in records:
        spec = APP_DEPLOYMENTS if kind == "app_deployment" else APP_METRICS
        p.produce(s.topic(spec.name), key=key, value=codec.encode(kind, record))
        assert p.flush(10) == 0  # one at a time: each record's Kafka timestamp is at or after the one before


@pytest.fixture
def env(make_settings):
    """The history on the source topics; an old row before --from and a stale one after it
    in app_deployments; ARI rows the deployments part must not touch."""
    s = make_settings()
    ensure_topics(s.kafka_bootstrap_servers, s.topic_prefix)
    migrate(s.clickhouse_dsn, s.clickhouse_database)
    produce(s, HISTORY)
    ch = connect(s.clickhouse_dsn, s.clickhouse_database)
    started = {"deploy_old": T0 + 2 * MIN, "deploy_gone": T0 + 25 * MIN}
    ch.insert("app_deployments", [[TENANT, i, app, "v0", None, "[]", False, None, None, status, reason, started[i],
                                   done, rev] for i, app, status, reason, done, rev in (OLD_ROW, GONE_ROW)],
              column_names=["tenant", "id", "application_id", "version", "description", "changes",
                            "rollback_on_error", "health_check_url", "health_url", "status", "reason", "started_at",
                            "completed_at", "revision"])
    ch.insert("ari_interventions", [[r[c] for c in COLS] for r in (PRE_FROM, POST_FROM)], column_names=COLS)
    return s, ch


def deployments(ch):
    return ch.query("SELECT id, application_id, status, reason, toUnixTimestamp64Milli(completed_at), revision "
                    "FROM app_deployments FINAL ORDER BY id").result_rows


def insights(ch):
    return ch.query("SELECT id, application_id, title, description, toUnixTimestamp64Milli(timestamp), version "
                    "FROM app_insights FINAL WHERE type = 'deployment' ORDER BY application_id").result_rows


def insight(app, dep_id, version, reason, done):
    return (insight_id(TENANT, app, "deployment", dep_id), app, f"Deployment {version} failed", reason, done, done)


def states(s):
    out = {}
    for partition, key, value in read_topic(s.kafka_bootstrap_servers, changelog_topic(s.worker_id)):
        out.setdefault(key, []).append((partition, json.loads(value)))
    return out


def test_a_verdict_a_changed_threshold_turns_is_replaced_exactly(env, monkeypatch):
    s, ch = env
    first = replay(s, s.kafka_bootstrap_servers, FROM, only=("deployments",))
    assert first.ari is None
    assert deployments(ch) == [D1_FAILED, D2_FAILED, OLD_ROW]  # deploy_gone deleted, deploy_old left
    assert insights(ch) == [insight("app_a", "deploy_d1", "v2", D1_FAILED[3], D1_DONE),
                            insight("app_b", "deploy_d2", "v7", D2_FAILED[3], D2_DONE)]
    r = first.deployments
    assert (r.records, r.skipped, r.applications, r.deployments, r.insights, r.deleted, r.landed) == (
        7, 0, 2, 2, 2, 3, 3)  # landed first: the three pending records; deleted: two of them and deploy_gone
    assert first.summary().startswith("replay done: deployments: 7 records read (0 skipped), 2 applications, "
                                      "2 deployments written, 2 insights, 3 rows deleted, ")
    assert list(first.phases) == ["preconditions", "deployments"]

    monkeypatch.setattr(D, "ERROR_RATE_RISE", 0.05)  # the rule change: 0.01 -> 0.04 is no longer a failure
    second = replay(s, s.kafka_bootstrap_servers, FROM, only=("deployments",))
    assert deployments(ch) == [D1_SUCCESS, D2_FAILED, OLD_ROW]
    assert insights(ch) == [insight("app_b", "deploy_d2", "v7", D2_FAILED[3], D2_DONE)]  # deploy_d1's is gone
    r = second.deployments
    assert (r.deployments, r.insights, r.deleted, r.landed) == (2, 1, 2, 4)  # landed: the first run's records
    # ARI's rows are not the deployments part's: untouched, the one after --from included
    assert [r["intervention_id"] for r in stored(ch)] == ["iv_old_p4", "iv_stale_p4"]

    # The sink consuming replay's records collapses them onto the same rows.
    land_all(s, topics=(APP_DEPLOYMENTS, APP_INSIGHTS))
    assert deployments(ch) == [D1_SUCCESS, D2_FAILED, OLD_ROW]
    assert insights(ch) == [insight("app_b", "deploy_d2", "v7", D2_FAILED[3], D2_DONE)]

    # The worker's app_state: each application's recomputed state, once per replay, applied
    # up to the watermarks taken at its start (the second's include the revisions the first
    # wrote to app.deployments: one per application); the second decided under the new rule.
    log = states(s)
    assert set(log) == {KEY_A, KEY_B}
    for key, done in ((KEY_A, ["deploy_old", "deploy_d1"]), (KEY_B, ["deploy_d2"])):
        assert len(log[key]) == 2
        partition = log[key][0][0]
        for run, (part, state) in enumerate(log[key]):
            assert part == partition == partition_of(key)
            assert (state["open"], state["probing"], state["done"]) == ({}, {}, done)
            assert WATCH not in state
            n = {APP_DEPLOYMENTS: sum(1 for k, kind, _ in HISTORY if kind == "app_deployment"
                                      and partition_of(k) == partition)
                 + run * sum(1 for k in (KEY_A, KEY_B) if partition_of(k) == partition),
                 APP_METRICS: sum(1 for k, kind, _ in HISTORY if kind == "app_metric_batch"
                                  and partition_of(k) == partition)}
            assert state["offsets"] == {f"{s.topic(t.name)}/{partition}": c - 1 for t, c in n.items() if c}


def partition_of(key):
    return of(key, APP_METRICS.partitions)


def test_a_worker_restarted_after_replay_resumes_from_the_replayed_state(env, tmp_path):
    s, ch = env
    replay(s, s.kafka_bootstrap_servers, FROM, only=("deployments",))
    replayed = {key: entries[-1][1] for key, entries in states(s).items()}
    revisions_before = [codec.decode(v)[1] for _, _, v in read_topic(s.kafka_bootstrap_servers,
                                                                    s.topic(APP_DEPLOYMENTS.name))]
    env_vars = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
                "SOPHRA_TOPIC_PREFIX": s.topic_prefix, "SOPHRA_WORKER_ID": s.worker_id}
    log_path = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "sophra", "worker"], env=env_vars,
                              stdout=subprocess.DEVNULL, stderr=log_path.open("w"))
    d3_at = D2_AT + 30 * MIN
    try:
        # app_b deploys again; its after-data decides it (0.2 before it, 0.2 after: success)
        produce(s, [(KEY_B, "app_metric_batch", batch("app_b", 5, d3_at - 14 * MIN, 14, 0.2)),
                    (KEY_B, "app_deployment", pending("app_b", "deploy_d3", d3_at, "v8")),
                    (KEY_B, "app_metric_batch", batch("app_b", 6, d3_at, 6, 0.2, offset=1000))])

        def decided():
            return next((st for _, st in reversed(states(s).get(KEY_B, []))
                         if "deploy_d3" in st.get("done", [])), None)
        state = eventually(decided, 180)
        assert state, "the worker did not decide deploy_d3:\n" + "\n".join(log_path.read_text().splitlines()[-40:])
    finally:
        assert terminate(worker) == 0
    # It went on from the replayed state: deploy_d2 still decided, deploy_d3 after it.
    assert state["done"] == ["deploy_d2", "deploy_d3"] and state["open"] == {}
    # Nothing replay applied was derived again: the only new revisions are deploy_d3's.
    after = [codec.decode(v)[1] for _, _, v in read_topic(s.kafka_bootstrap_servers, s.topic(APP_DEPLOYMENTS.name))]
    new = [(r["id"], r["status"], r["revision"]) for r in after if r not in revisions_before]
    assert sorted(new) == [("deploy_d3", "in_progress", 1), ("deploy_d3", "pending", 0), ("deploy_d3", "success", 2)]
    # app_a got no record of its own: whatever the worker wrote for it holds replay's decisions
    for _, st in states(s)[KEY_A]:
        assert st["done"] == replayed[KEY_A]["done"] and st["minutes"] == replayed[KEY_A]["minutes"]


def test_replay_refuses_when_retention_dropped_deployment_history_after_from(env):
    s, ch = env
    topic = s.topic(APP_DEPLOYMENTS.name)
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap_servers})
    # app_a's first record there (deploy_old's pending) is gone: the next one started after --from
    [done] = admin.delete_records([TopicPartition(topic, partition_of(KEY_A), 1)]).values()
    done.result(10)
    with pytest.raises(ReplayError, match=rf"{topic}\[{partition_of(KEY_A)}\] keeps history only from "
                                          r"2026-11-18T11:26:40\+00:00; choose a later --from"):
        replay(s, s.kafka_bootstrap_servers, FROM, only=("deployments",))
    assert deployments(ch) == [GONE_ROW, OLD_ROW]  # untouched
