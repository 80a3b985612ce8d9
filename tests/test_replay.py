"""`sophra replay` on the real broker and engine: known histories recomputed, stale derived
rows replaced (not duplicated), the worker's state rewritten so a restarted worker resumes."""
import fcntl
import io
import json
import os
import subprocess
import sys

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.producer import producer_config
from pipeline.replay import ReplayError, changelog_topic, parse_only, parse_time, replay, run as run_replay
from pipeline.sink.consumer import Sink
from pipeline.store.clickhouse import connect
from pipeline.store.migrate import migrate
from pipeline.topics import AGENT_EVENTS, AGENT_VITALS, ARI_INTERVENTIONS, ARI_STATUS, ensure_topics, entity_key
from pipeline.worker.anomalies import WATCH
from schemas import codec
from sophra.processes import terminate

from . import ari_histories as H
from .conftest import eventually
from .test_ari_engine import latest, run

pytestmark = pytest.mark.integration

FROM = H.T0 + 5 * H.STEP
COLS = ["tenant", "agent_id", "intervention_id", "protocol", "severity", "description", "tokens_saved", "details",
        "opened_at", "closed_at", "version"]
OUTCOME_COLS = ["outcome", "outcome_details", "tokens_saved_measured"]  # nullable: the stale rows leave them NULL


def histories():
    events, storm = H.conflict_storm()
    # the token drift goes on 2 snapshots past its history, so its outcome is measured (and replayed)
    tokens = H.token_spike() + [H.steady(i, "tokens") for i in range(16, 18)]
    return {"burnout": (H.burnout(), []), "conflicts": (storm, events), "tokens": (tokens, []),
            "healthy": (H.healthy_noise(n=60), [])}


def stale(agent, iv_id, opened_step, **kw):
    return {"tenant": "t_ari", "agent_id": agent, "intervention_id": iv_id, "protocol": 4, "severity": "high",
            "description": "old rules", "tokens_saved": 1, "details": "{}", "opened_at": H.T0 + opened_step * H.STEP,
            "closed_at": None, "version": 99_999, **dict.fromkeys(OUTCOME_COLS), **kw}


PRE_FROM = stale("healthy", "iv_old_p4", 1)          # opened before --from: replay leaves it
POST_FROM = stale("healthy", "iv_stale_p4", 20)      # opened after: no longer derived, must go
OLD_BURNOUT = stale("burnout", "iv_10012_p1", 12, protocol=1)  # same id, higher version than the new one
UNLANDED = stale("healthy", "iv_unlanded_p4", 30)    # on the topic, not yet landed by the sink


@pytest.fixture
def env(make_settings):
    """Histories on the source topics (vitals first, then events: replay orders them), stale
    derived rows in ClickHouse and one derived record the sink hasn't landed yet."""
    s = make_settings()
    bootstrap = s.kafka_bootstrap_servers
    ensure_topics(bootstrap, s.topic_prefix)
    migrate(s.clickhouse_dsn, s.clickhouse_database)
    hist, partition = histories(), {}
    p = Producer(producer_config(bootstrap))
    for spec, kind, i in ((AGENT_VITALS, "agent_vital", 0), (AGENT_EVENTS, "agent_event", 1)):
        for records in hist.values():
            for rec in records[i]:
                p.produce(s.topic(spec.name), key=entity_key(rec["tenant"], rec["agent_id"]),
                          value=codec.encode(kind, rec),
                          on_delivery=lambda err, m: partition.__setitem__(m.key(), m.partition()))
    p.produce(s.topic(ARI_INTERVENTIONS.name), key=b"t_ari/healthy", value=codec.encode("ari_intervention", UNLANDED))
    assert p.flush(30) == 0
    ch = connect(s.clickhouse_dsn, s.clickhouse_database)
    ch.insert("ari_interventions", [[r[c] for c in COLS] for r in (PRE_FROM, POST_FROM, OLD_BURNOUT)],
              column_names=COLS)
    return s, hist, partition, ch


def stored(ch):
    rows = ch.query(f"SELECT {', '.join(COLS[:-3])}, toUnixTimestamp64Milli(opened_at), "
                    f"toUnixTimestamp64Milli(closed_at), version, {', '.join(OUTCOME_COLS)} "
                    "FROM ari_interventions FINAL "
                    "ORDER BY opened_at, agent_id, intervention_id").result_rows
    return [dict(zip(COLS + OUTCOME_COLS, r)) for r in rows]


def expected(hist, since=FROM, until=None, extra=(PRE_FROM,)):
    out = list(extra)
    for vitals, events in hist.values():
        out += [v for v in latest(run(vitals, events)[1])
                if v["opened_at"] >= since and (until is None or v["opened_at"] < until)]
    return sorted(out, key=lambda v: (v["opened_at"], v["agent_id"], v["intervention_id"]))


def statuses(ch):
    rows = ch.query("SELECT agent_id, snapshots, checkups, baseline, toUnixTimestamp64Milli(updated_at), version "
                    "FROM ari_status FINAL ORDER BY agent_id").result_rows
    return {r[0]: {"snapshots": r[1], "checkups": r[2], "baseline": r[3], "updated_at": r[4], "version": r[5]}
            for r in rows}


def expected_statuses(hist):
    out = {}
    for agent, (vitals, events) in hist.items():
        last = run(vitals, events)[2][-1]
        out[agent] = {k: last[k] for k in ("snapshots", "checkups", "baseline", "updated_at", "version")}
    return out


def read_topic(bootstrap, topic):
    """Every record of a topic: [(partition, key, value)] in partition/offset order."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False})
    n = len(c.list_topics(topic, timeout=10).topics[topic].partitions)
    marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(n)}
    c.assign([TopicPartition(topic, p, lo) for p, (lo, _) in marks.items()])
    want, got = sum(hi - lo for lo, hi in marks.values()), []
    while len(got) < want:
        got += [(m.partition(), m.offset(), m.key(), m.value()) for m in c.consume(1000, timeout=0.5) if not m.error()]
    c.close()
    return [(p, k, v) for p, _, k, v in sorted(got)]


def states_in_changelog(s):
    out = {}
    for partition, key, value in read_topic(s.kafka_bootstrap_servers, changelog_topic(s)):
        out.setdefault(key, []).append((partition, json.loads(value)))
    return out


def read_to(s, hist, partition, p):
    """The last offset of partition p of each source topic holding records, as the fixture produced them."""
    ends = {}
    for i, spec in enumerate((AGENT_VITALS, AGENT_EVENTS)):
        n = sum(len(records[i]) for agent, records in hist.items() if partition[entity_key("t_ari", agent)] == p)
        if n:
            ends[f"{s.topic(spec.name)}/{p}"] = n - 1
    return ends


def land_all(s, topics=(ARI_INTERVENTIONS, ARI_STATUS)):
    """Run the real sink until it has committed everything on the derived topics."""
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap_servers, "group.id": s.sink_group})
    tps = [TopicPartition(s.topic(t.name), p) for t in topics for p in range(t.partitions)]

    def caught_up():
        return all(max(tp.offset, 0) >= c.get_watermark_offsets(tp, timeout=10)[1]
                   for tp in c.committed(tps, timeout=10))

    sink = Sink(s, s.kafka_bootstrap_servers).start()
    try:
        assert eventually(caught_up, 30)
    finally:
        sink.stop()
        c.close()


def test_replay_replaces_derived_rows_and_rewrites_the_worker_state(env):
    s, hist, partition, ch = env
    out = io.StringIO()
    first = replay(s, s.kafka_bootstrap_servers, FROM, out=out)

    want = expected(hist)
    assert [(r["agent_id"], r["intervention_id"], r["protocol"], r["severity"]) for r in want] == [
        ("healthy", "iv_old_p4", 4, "high"),             # the stale row opened before --from stays
        ("conflicts", "iv_10008_p2", 2, "high"),
        ("tokens", "iv_10011_p4", 4, "high"),
        ("burnout", "iv_10012_p1", 1, "medium")]         # replaced, although its old version was higher
    assert stored(ch) == want                            # no iv_stale_p4, no iv_unlanded_p4, nothing for healthy
    assert [(r["outcome"], r["tokens_saved_measured"]) for r in want if r["agent_id"] == "tokens"] == [
        ("improved", 4000)]
    assert statuses(ch) == expected_statuses(hist)
    n_records = sum(len(v) + len(e) for v, e in hist.values())
    assert (first.ari.records, first.ari.skipped, first.ari.agents, first.ari.interventions,
            first.ari.statuses) == (n_records, 0, 4, 3, 4)
    assert (first.ari.deleted, first.ari.landed) == (3, 1)       # stale post-from, old burnout, the one landed first
    assert "100.0%" in out.getvalue() and f"{n_records}/{n_records} records" in out.getvalue()
    assert first.summary().startswith(f"replay done: {n_records} records read (0 skipped), 4 agents, "
                                      "3 interventions written, 3 rows deleted")
    # where the time went, phase by phase, adding up to the whole
    assert list(first.phases) == ["preconditions", "read and derive", "replace", "worker states", "deployments",
                                  "alerts"]  # by default every part, each its own progress bar
    assert sum(first.phases.values()) == pytest.approx(first.seconds)
    assert first.summary().endswith(", ".join(f"{k} {v:.1f}s" for k, v in first.phases.items()) + ")")

    second = replay(s, s.kafka_bootstrap_servers, FROM)
    assert stored(ch) == want and statuses(ch) == expected_statuses(hist)
    assert (second.ari.deleted, second.ari.interventions, second.ari.landed) == (3, 3, 7)  # the sink landed the first run's
    land_all(s)                                          # the sink consuming replay's records: collapsed
    assert stored(ch) == want
    assert ch.query("SELECT count(), uniqExact(agent_id, intervention_id) FROM ari_interventions FINAL"
                    ).result_rows == [(4, 4)]
    ch.command("OPTIMIZE TABLE ari_interventions FINAL")
    assert ch.query("SELECT count() FROM ari_interventions").result_rows == [(4,)]

    # The worker's changelog: each agent's final state, once per replay, in its records' partition.
    changelog = states_in_changelog(s)
    assert set(changelog) == {entity_key("t_ari", a) for a in hist}
    for agent, (vitals, events) in hist.items():
        key = entity_key("t_ari", agent)
        final = run(vitals, events)[0]
        assert [(part, {k: v for k, v in st.items() if k != "offsets"}) for part, st in changelog[key]] == [
            (partition[key], final)] * 2
        assert final["snapshots"] == len(vitals)
        # applied up to where replay read each topic's partition (for the worker's offset check)
        assert changelog[key][-1][1]["offsets"] == read_to(s, hist, partition, partition[key])


def test_a_worker_restarted_after_replay_resumes_from_the_replayed_state(env, tmp_path):
    s, hist, partition, _ = env
    replay(s, s.kafka_bootstrap_servers, FROM)
    derived_before = {t: len(read_topic(s.kafka_bootstrap_servers, s.topic(t.name)))
                      for t in (ARI_INTERVENTIONS, ARI_STATUS)}
    env_vars = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
                "SOPHRA_TOPIC_PREFIX": s.topic_prefix, "SOPHRA_WORKER_ID": s.worker_id}
    log_path = tmp_path / "worker.log"  # what the worker said, for a failure's message
    worker = subprocess.Popen([sys.executable, "-m", "sophra", "worker", "--loglevel", "info"], env=env_vars,
                              stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    try:
        new = H.steady(17, "burnout")
        p = Producer(producer_config(s.kafka_bootstrap_servers))
        p.produce(s.topic(AGENT_VITALS.name), key=b"t_ari/burnout", value=codec.encode("agent_vital", new))
        assert p.flush(10) == 0
        # The new worker group reads the topics from the start and skips, by offset, every
        # record replay applied: only the burnout agent's state is written again, with the
        # one new snapshot.
        def resumed():
            log = states_in_changelog(s)
            burnout = log.get(b"t_ari/burnout", [])
            return len(burnout) >= 2 and log
        # a first start recovers six changelogs; on a loaded 2-core machine that took over 90 s once
        log = eventually(resumed, 180)
        assert log, "the worker did not write its states:\n" + "\n".join(log_path.read_text().splitlines()[-40:])
    finally:
        assert terminate(worker) == 0
    assert {k: len(v) for k, v in log.items()} == {entity_key("t_ari", a): 2 if a == "burnout" else 1 for a in hist}
    for agent, (vitals, events) in hist.items():
        p = partition[entity_key("t_ari", agent)]
        state = log[entity_key("t_ari", agent)][-1][1]
        offsets = state.pop("offsets")
        watch = state.pop(WATCH, None)  # the anomaly watch rides in the state the worker writes (not replay's)
        assert (watch is not None) == (agent == "burnout")
        assert state == run(vitals + ([new] if agent == "burnout" else []), events)[0]
        # applied up to the offsets replay read to; the burnout agent's up to its new snapshot
        in_partition = sum(len(vs) for a, (vs, _) in hist.items() if partition[entity_key("t_ari", a)] == p)
        assert offsets[f"{s.topic(AGENT_VITALS.name)}/{p}"] == in_partition - (agent != "burnout")
    # Nothing already applied was derived again: only the new snapshot's status.
    after = {t: read_topic(s.kafka_bootstrap_servers, s.topic(t.name)) for t in (ARI_INTERVENTIONS, ARI_STATUS)}
    assert len(after[ARI_INTERVENTIONS]) == derived_before[ARI_INTERVENTIONS]
    assert len(after[ARI_STATUS]) == derived_before[ARI_STATUS] + 1
    newest = [codec.decode(v)[1] for _, k, v in after[ARI_STATUS] if k == b"t_ari/burnout"][-1]
    assert (newest["agent_id"], newest["snapshots"], newest["version"]) == ("burnout", 18, new["id"])


def test_replay_within_from_and_to_touches_only_that_window(env):
    s, hist, _, ch = env
    since, until = H.T0 + 9 * H.STEP, H.T0 + 12 * H.STEP
    result = replay(s, s.kafka_bootstrap_servers, since, until)
    # Only the token spike (opened at step 11) is in the window. The conflict storm (8) is
    # before it, the burnout (12) and the stale rows (1, 20, 30) outside it: left as they were.
    assert stored(ch) == expected(hist, since, until, extra=(PRE_FROM, POST_FROM, OLD_BURNOUT, UNLANDED))
    assert [r["intervention_id"] for r in stored(ch) if r["description"] != "old rules"] == ["iv_10011_p4"]
    assert (result.ari.interventions, result.ari.deleted) == (1, 0)


def test_replay_refuses_while_the_worker_runs(env):
    s, _, _, ch = env
    member = Consumer({"bootstrap.servers": s.kafka_bootstrap_servers, "group.id": s.worker_id})
    member.subscribe([s.topic(AGENT_VITALS.name)])
    try:
        assert eventually(lambda: (member.poll(0.1), member.assignment())[1], 30)  # joined
        with pytest.raises(ReplayError, match=f"the worker \\({s.worker_id}\\) is running"):
            replay(s, s.kafka_bootstrap_servers, FROM)
    finally:
        member.close()
    assert {r["intervention_id"] for r in stored(ch)} == {"iv_old_p4", "iv_stale_p4", "iv_10012_p1"}  # untouched


def test_replay_refuses_when_retention_dropped_history_after_from(env):
    s, _, partition, ch = env
    topic = s.topic(AGENT_VITALS.name)
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap_servers})
    [done] = admin.delete_records([TopicPartition(topic, partition[b"t_ari/burnout"], 8)]).values()
    done.result(10)
    with pytest.raises(ReplayError, match=r"agent.vitals\[\d\] keeps history only from 2026-11-18T11:10:40"):
        replay(s, s.kafka_bootstrap_servers, FROM)
    assert {r["intervention_id"] for r in stored(ch)} == {"iv_old_p4", "iv_stale_p4", "iv_10012_p1"}  # untouched


def test_replay_refuses_when_retention_emptied_a_partition_it_needs(env):
    s, _, partition, ch = env
    topic = s.topic(AGENT_VITALS.name)
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap_servers})
    p = partition[b"t_ari/burnout"]  # burnout has an intervention since FROM in ClickHouse (OLD_BURNOUT)
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap_servers, "group.id": "marks"})
    _, end = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
    c.close()
    [done] = admin.delete_records([TopicPartition(topic, p, end)]).values()
    done.result(10)
    with pytest.raises(ReplayError, match=rf"retention emptied {topic}\[{p}\] \(offsets 0\.\.{end - 1} are gone\)"):
        replay(s, s.kafka_bootstrap_servers, FROM)
    assert {r["intervention_id"] for r in stored(ch)} == {"iv_old_p4", "iv_stale_p4", "iv_10012_p1"}  # untouched


def test_embedded_replay_refuses_while_sophra_up_holds_the_data_folder(make_settings, tmp_path):
    from deploy.local_kafka import is_fetched

    if not is_fetched():
        pytest.skip("the local broker's jars are not fetched")
    s = make_settings(kafka_bootstrap_servers=None, data_dir=tmp_path)
    (tmp_path / "kafka").mkdir()
    with open(tmp_path / "kafka" / ".local_kafka.lock", "w") as lock:  # what a running `sophra up` holds
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ReplayError, match="stop `sophra up` first"):
            run_replay(s, FROM)


def test_parse_time():
    assert parse_time("2026-11-18T11:06:40Z") == 1_795_000_000_000
    assert parse_time("2026-11-18T12:06:40.5+01:00") == 1_795_000_000_500
    assert parse_time("2026-11-18T11:06:40") == 1_795_000_000_000  # no zone: UTC
    assert parse_time("2026-11-18") == 1_794_960_000_000
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        parse_time("yesterday")


def test_parse_only():
    assert parse_only(None) == ("ari", "deployments", "alerts")
    assert parse_only(["alerts,ari"]) == parse_only(["alerts", "ari"]) == ("ari", "alerts")  # replay's order
    with pytest.raises(ValueError, match="--only takes ari, deployments, alerts \\(got insights\\)"):
        parse_only(["ari,insights"])


def test_cli_help_and_a_cli_run(env, tmp_path):
    res = subprocess.run([sys.executable, "-m", "sophra", "replay", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--from ISO" in res.stdout and "--to ISO" in res.stdout
    assert "--only PART" in res.stdout
    s, hist, _, _ = env
    # chdb serves one data folder per process and this one holds the session's: the
    # subprocess gets its own ClickHouse folder (the rows it writes are checked above).
    base = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers, "SOPHRA_TOPIC_PREFIX": s.topic_prefix,
            "SOPHRA_WORKER_ID": s.worker_id, "SOPHRA_SINK_GROUP": s.sink_group,
            "CLICKHOUSE_URL": f"chdb://{tmp_path / 'ch'}"}
    assert parse_time("2026-11-18T11:09:10Z") == FROM
    cmd = [sys.executable, "-m", "sophra", "replay", "--from", "2026-11-18T11:09:10Z"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=base, timeout=120)
    n_records = sum(len(v) + len(e) for v, e in hist.values())
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"replay done: {n_records} records read (0 skipped), 4 agents, "
                                 "3 interventions written, 1 rows deleted"), res.stdout  # the unlanded one
    assert f"100.0% {n_records}/{n_records} records" in res.stderr
    # the other parts ran too: no application records; the vitals, but no alert rule watching them
    n_vitals = sum(len(v) for v, _ in hist.values())
    assert "; deployments: 0 records read (0 skipped), 0 applications, 0 deployments written" in res.stdout
    assert f"; alerts: {n_vitals} records read (0 skipped), 0 subjects, 0 rules, 0 transitions" in res.stdout
    res = subprocess.run(cmd[:-1] + ["soon"], capture_output=True, text=True, env=base, timeout=60)
    assert res.returncode == 1 and "sophra replay: not an ISO 8601 time: 'soon'" in res.stderr
    res = subprocess.run(cmd + ["--only", "ari,insights"], capture_output=True, text=True, env=base, timeout=60)
    assert res.returncode == 1 and "sophra replay: --only takes ari, deployments, alerts (got insights)" in res.stderr


def test_replay_in_child_processes_writes_what_one_process_writes(env):
    s, hist, partition, ch = env
    assert len(set(partition.values())) > 1  # the agents' records are in several partitions: two children work
    result = replay(s, s.kafka_bootstrap_servers, FROM, out=io.StringIO(), processes=2)
    assert stored(ch) == expected(hist)
    assert statuses(ch) == expected_statuses(hist)
    n_records = sum(len(v) + len(e) for v, e in hist.values())
    a = result.ari
    assert (a.records, a.skipped, a.agents, a.interventions, a.statuses, a.deleted, a.landed) == (
        n_records, 0, 4, 3, 4, 3, 1)
    changelog = states_in_changelog(s)
    assert set(changelog) == {entity_key("t_ari", a) for a in hist}
    for agent, (vitals, events) in hist.items():
        key = entity_key("t_ari", agent)
        [(part, state)] = changelog[key]
        assert part == partition[key]
        assert state.pop("offsets") == read_to(s, hist, partition, partition[key])
        assert state == run(vitals, events)[0]
