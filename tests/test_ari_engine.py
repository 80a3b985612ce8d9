"""The drift engine on made-up histories with known answers (pure, no broker)."""
import copy
import json

from pipeline.ari.engine import baseline, new_state, outcome, step_event, step_vital

from .ari_histories import (burnout, burnout_and_recovery, conflict_storm, corrupt, healthy_noise, steady, token_spike,
                            vital, T0, STEP)


def run(vitals, events=()):
    """Feed events (by time) and vitals in order; return final state, intervention versions, statuses."""
    state, versions, statuses = new_state(), [], []
    queue = sorted([("e", e) for e in events] + [("v", v) for v in vitals], key=lambda x: x[1]["recorded_at"])
    for kind, rec in queue:
        if kind == "e":
            state = step_event(state, rec)
        else:
            state, out, status = step_vital(state, rec)
            versions += out
            if status:
                statuses.append(status)
    return state, versions, statuses


def latest(versions):
    """One row per intervention: its highest version, as ClickHouse's ReplacingMergeTree keeps."""
    rows = {}
    for v in versions:
        if v["intervention_id"] not in rows or v["version"] >= rows[v["intervention_id"]]["version"]:
            rows[v["intervention_id"]] = v
    return sorted(rows.values(), key=lambda v: v["opened_at"])


def test_baseline_is_median_and_scaled_mad_with_floors():
    window = [[1900, 0.02, 5, 0], [2100, 0.02, 5, 0], [1900, 0.02, 6, 0], [2100, 0.02, 4, 0]]
    b = baseline(window)
    assert b["token_consumption"] == {"center": 2000.0, "spread": 1.4826 * 100}
    assert b["hallucination_rate"] == {"center": 0.02, "spread": 0.01}        # floor
    assert b["loop_frequency"] == {"center": 5.0, "spread": 2.0}              # floor above 1.4826 * 0.5
    assert b["directive_conflicts"] == {"center": 0.0, "spread": 1.0}


def test_healthy_noisy_agent_triggers_nothing():
    state, versions, statuses = run(healthy_noise())
    assert versions == []
    assert json.loads(statuses[-1]["checkups"]) == {"auth": {"result": "ok", "text": "ALIGNÉ"},
                                                    "integ": {"result": "ok", "text": "SAIN"},
                                                    "charge": {"result": "ok", "text": "OPTIMAL"}}
    assert state["snapshots"] == 200


def test_nothing_before_the_fifth_snapshot():
    _, versions, statuses = run([vital(0, loops=500, conflicts=9)] + [steady(i, conflicts=9) for i in range(1, 4)])
    assert versions == []
    assert [s["checkups"] for s in statuses] == ["{}"] * 4
    _, versions, _ = run([steady(i, conflicts=9) for i in range(5)])
    assert [v["protocol"] for v in versions] == [2]  # the fifth snapshot is judged


def test_sustained_loop_spike_is_one_burnout_intervention():
    _, versions, _ = run(burnout())
    [iv] = latest(versions)
    assert (iv["protocol"], iv["severity"], iv["description"]) == (
        1, "medium", "Burnout risk detected — loop frequency spike")
    assert iv["intervention_id"] == "iv_10012_p1"            # opened by the third spiking snapshot
    assert (iv["opened_at"], iv["closed_at"]) == (T0 + 12 * STEP, T0 + 15 * STEP)
    assert iv["tokens_saved"] == 100 + 0                     # token excess over baseline while open: 2100, then 1900


def test_a_single_outlier_is_not_burnout():
    history = [steady(i) for i in range(10)] + [steady(10, loops=400, halluc=0.4)] + [steady(i) for i in range(11, 15)]
    assert run(history)[1] == []


def test_red_hallucination_spike_is_high_severity():
    history = [steady(i) for i in range(8)] + [steady(i, halluc=0.3) for i in range(8, 11)]
    [iv] = latest(run(history)[1])
    assert (iv["protocol"], iv["severity"], iv["description"]) == (
        1, "high", "Burnout risk detected — hallucination spike")


def test_conflict_storm_records_its_pattern_and_resolves():
    events, vitals = conflict_storm()
    state, versions, statuses = run(vitals, events)
    [iv] = latest(versions)
    assert (iv["protocol"], iv["severity"], iv["intervention_id"]) == (2, "high", "iv_10008_p2")
    assert iv["description"] == ("Directive conflicts above 2 (6) — conflict pattern recorded: "
                                 "“System prompt vs user instruction mismatch” ×4")
    assert json.loads(iv["details"]) == {"peak_conflicts": 6, "pattern": {
        "events": 4, "recurring_details": [["System prompt vs user instruction mismatch", 4]],
        "recurring_instructions": [["instruction_a=answer in JSON", 4], ["instruction_b=answer in prose", 4]]}}
    assert iv["closed_at"] == T0 + 12 * STEP                 # two calm snapshots close (resolve) it
    # snapshots 7..12: calm, 3 conflicts, 4, 6, then 1 while the episode waits to close, closed
    assert [json.loads(s["checkups"])["auth"]["text"] for s in statuses[7:13]] == [
        "ALIGNÉ", "CONFLIT", "CONFLIT", "DÉSALIGNÉ", "CONFLIT", "ALIGNÉ"]


def test_token_spike_recommends_optimization_with_tokens_saved_from_the_excess():
    _, versions, statuses = run(token_spike())
    [iv] = latest(versions)
    # Two snapshots in a row over 130 % make drift: the second (id 10011) opens the episode.
    assert (iv["protocol"], iv["severity"], iv["intervention_id"]) == (4, "high", "iv_10011_p4")
    assert iv["description"] == "Token consumption at 200% of baseline (4000 vs 2000) — optimization recommended"
    # The run's excess counts from its first snapshot. Spiking snapshots enter the baseline
    # (only bad data is left out), so its median moves from 2000 to 2100 after the first:
    # 2000 + 1900 + 1900.
    assert iv["tokens_saved"] == 5800
    assert iv["closed_at"] == T0 + 14 * STEP
    assert json.loads(statuses[10]["checkups"])["charge"] == {"result": "ok", "text": "OPTIMAL"}  # one is noise
    assert json.loads(statuses[11]["checkups"])["charge"] == {"result": "warn", "text": "ÉLEVÉE"}


def test_a_single_token_outlier_is_not_drift():
    history = [steady(i) for i in range(10)] + [vital(10, tokens=5000)] + [steady(i) for i in range(11, 15)]
    assert run(history)[1] == []


def test_noisier_healthy_agent_with_nullable_metadata_triggers_nothing():
    import random
    rnd = random.Random(11)
    history = [vital(i, tokens=max(0, int(rnd.gauss(3000, 900))), halluc=min(0.049, max(0.0, rnd.gauss(0.025, 0.01))),
                     loops=max(0, int(rnd.gauss(15, 6))), conflicts=rnd.choice([0, 1, 2]),
                     metadata={"lastError": rnd.choice([None, "timeout"]), "retries": rnd.choice([None, 1, 2])})
               for i in range(300)]
    assert run(history)[1] == []


def test_corrupt_data_is_flagged_and_kept_out_of_the_baseline():
    state, versions, statuses = run(corrupt())
    [iv] = latest(versions)
    assert (iv["protocol"], iv["severity"], iv["intervention_id"]) == (3, "high", "iv_10008_p3")
    assert iv["description"] == "Data trauma indicators: corruption, metadata type change, overflow"
    assert [f["flag"] for f in json.loads(iv["details"])["flags"]] == ["metadata_type_change", "overflow",
                                                                       "corruption"]
    assert iv["closed_at"] == T0 + 12 * STEP
    assert max(row[0] for row in state["window"]) == 2100   # the 250000 never entered the baseline
    assert json.loads(statuses[8]["checkups"])["integ"] == {"result": "warn", "text": "SUSPECT"}
    assert json.loads(statuses[10]["checkups"])["integ"] == {"result": "fail", "text": "CORROMPU"}
    assert not [v for v in versions if v["protocol"] == 4]   # bad data is not token drift


def test_a_stuck_series_is_flagged():
    history = [steady(i) for i in range(6)] + [vital(i, tokens=1234, loops=3) for i in range(6, 11)]
    [iv] = latest(run(history)[1])
    assert (iv["protocol"], iv["severity"], iv["description"], iv["intervention_id"]) == (
        3, "medium", "Data trauma indicators: stuck", "iv_10010_p3")


def test_runs_are_deterministic():
    # Redeliveries are the worker's to skip, by Kafka offset (tests/test_worker_offsets.py).
    events, vitals = conflict_storm()
    once = run(vitals, events)
    assert run(copy.deepcopy(vitals), copy.deepcopy(events)) == once


def test_tokens_saved_stays_within_its_avro_long_however_long_the_drift():
    # A crafted series: token consumption near the top of its type, drifting for ever.
    big = 2**63 - 1
    history = ([vital(i, tokens=2**60 + i, limit=big) for i in range(10)]
               + [vital(i, tokens=2**62, limit=big) for i in range(10, 20)])
    state, versions, _ = run(history)
    drift = [v for v in versions if v["protocol"] == 4]
    assert [v["tokens_saved"] for v in drift][-1] == 2**63 - 1  # clamped, not 2^64
    assert state["episodes"]["4"]["tokens_saved"] == float(2**63 - 1)
    from schemas import codec
    assert codec.decode(codec.encode("ari_intervention", drift[-1]))[1]["tokens_saved"] == 2**63 - 1


def test_a_step_without_its_status_leaves_the_same_state_and_interventions():
    # replay builds only each agent's last status (pipeline/replay.derive)
    events, storm = conflict_storm()
    for vitals, evs in ((burnout(), []), (storm, events), (token_spike(), []), (corrupt(), []),
                        (healthy_noise(n=60), [])):
        with_status, without = run(vitals, evs), new_state()
        versions = []
        queue = sorted([("e", e) for e in evs] + [("v", v) for v in vitals], key=lambda x: x[1]["recorded_at"])
        for kind, rec in queue:
            if kind == "e":
                without = step_event(without, rec)
                continue
            without, out, status = step_vital(without, rec, status=False)
            assert status is None
            versions += out
        assert (without, versions) == with_status[:2]
        assert len(with_status[2]) == len(vitals)


# -- outcomes: did the intervention work? -------------------------------------------------------

def _means(iv):
    return {m: (v["before"], v["after"]) for m, v in json.loads(iv["outcome_details"])["metrics"].items()}


def test_a_burnout_followed_by_recovery_is_improved_with_its_figures():
    state, versions, _ = run(burnout_and_recovery())
    assert [(v["version"], v["outcome"]) for v in versions] == [
        (10012, None), (10013, None), (10015, None), (10018, "improved")]
    [iv] = latest(versions)
    # closed by snapshot 15; the after window is 16, 17, 18; the before window 10, 11, 12 (it opened at 12)
    assert (iv["intervention_id"], iv["closed_at"], iv["version"]) == ("iv_10012_p1", T0 + 15 * STEP, 10018)
    assert json.loads(iv["outcome_details"])["watched"] == ["loop_frequency", "hallucination_rate"]
    assert json.loads(iv["outcome_details"])["window"] == 3
    assert _means(iv) == {"token_consumption": (2500.0, 2033.3333), "hallucination_rate": (0.02, 0.02),
                          "loop_frequency": (80.0, 5.0), "directive_conflicts": (0.0, 0.0),
                          "flagged": (0.0, 0.0)}
    # measured: 3 x 2500 - (2100 + 1900 + 2100); estimated: the excess over the center while open
    assert (iv["tokens_saved_measured"], iv["tokens_saved"]) == (1400, 800)
    assert state["measuring"] == {}  # measured once, then forgotten
    assert [v for v in run(burnout_and_recovery()[:18])[1] if v["outcome"]] == []  # window not full yet


def test_conflicts_back_after_the_episode_are_worse_and_measure_no_tokens():
    events, vitals = conflict_storm()
    _, versions, _ = run(vitals + [steady(i, "conflicts", conflicts=2) for i in range(14, 17)], events)
    [iv] = latest(versions)
    # before: snapshots 6, 7, 8 (0, 0, 3 conflicts); after the close at 12: 13, 14, 15 (1, 2, 2)
    assert (iv["outcome"], iv["version"], iv["tokens_saved_measured"]) == ("worse", 10015, None)
    assert _means(iv)["directive_conflicts"] == (1.0, 1.6667)


def test_token_drift_measures_the_drop_beside_the_estimate():
    _, versions, _ = run(token_spike() + [steady(i, "tokens") for i in range(16, 18)])
    [iv] = latest(versions)
    # before: 1900 + 4000 + 4000 (opened at 11); after the close at 14: 1900 + 2100 + 1900
    assert (iv["outcome"], iv["tokens_saved_measured"], iv["tokens_saved"]) == ("improved", 4000, 5800)


def test_outcome_verdict_is_a_20_percent_change_of_a_watched_metric():
    def rows(tokens, loops=5.0, flagged=0.0):
        return [[tokens, 0.02, loops, 0.0, flagged]] * 3
    assert outcome(4, rows(1000.0), rows(801.0))["outcome"] == "unchanged"
    assert outcome(4, rows(1000.0), rows(799.0))["outcome"] == "improved"
    worse = outcome(4, rows(1000.0), rows(1201.0))
    assert (worse["outcome"], worse["tokens_saved_measured"]) == ("worse", 0)  # tokens rose: nothing saved
    assert outcome(1, rows(1000.0, loops=0.0), rows(1000.0, loops=1.0))["outcome"] == "worse"  # any rise from 0
    # burnout: one watched metric worse outweighs another improved
    assert outcome(1, [[0.0, 0.02, 80.0, 0.0, 0.0]] * 3, [[0.0, 0.1, 5.0, 0.0, 0.0]] * 3)["outcome"] == "worse"
    assert outcome(3, rows(0.0, flagged=1.0), rows(0.0))["outcome"] == "improved"
    assert outcome(3, rows(0.0, flagged=1.0), rows(0.0))["tokens_saved_measured"] is None


def test_an_episode_opened_before_outcomes_were_measured_closes_without_one():
    # a state saved by the previous version: no outcome rows, no "before" in its episode
    history = burnout_and_recovery()
    state = new_state()
    for v in history[:13]:
        state, _, _ = step_vital(state, v)
    del state["outcome_rows"], state["measuring"], state["episodes"]["1"]["before"]
    versions = []
    for v in history[13:]:
        state, out, _ = step_vital(state, v)
        versions += out
    assert [(v["version"], v["outcome"]) for v in versions] == [(10013, None), (10015, None)]
    assert "measuring" not in state


def test_an_episode_still_open_after_the_set_time_is_measured_and_keeps_its_outcome(monkeypatch):
    from pipeline.ari import rules
    monkeypatch.setattr(rules, "OUTCOME_OPEN_AFTER_MS", 5 * STEP)  # 30 min in production: 5 snapshots here
    # loops climbing by 40 a snapshot keep spiking: the episode opened at 12 stays open until 22
    history = ([steady(i, "long") for i in range(10)] + [steady(i, "long", loops=40 * (i - 8)) for i in range(10, 22)]
               + [steady(i, "long") for i in range(22, 30)])
    state, versions, _ = run(history)
    # 17 is 5 snapshots after the opening: the after window is 17, 18, 19, measured while open
    assert [(v["version"], v["closed_at"] is None, v["outcome"]) for v in versions if v["version"] >= 10018] == [
        (10018, True, None), (10019, True, "worse"), (10019, True, "worse"), (10020, True, "worse"),
        (10022, False, "worse")]  # its later versions, the close included, keep the outcome
    [iv] = latest(versions)
    assert _means(iv)["loop_frequency"] == (120.0, 400.0)              # 80, 120, 160 then 360, 400, 440
    assert iv["tokens_saved_measured"] == 6100 - 5900                 # tokens did not drift: noise
    assert state["measuring"] == {}                                  # not measured again once closed
