"""ARI, the drift engine: pure functions from an agent's state and one record to the new
state and the records ARI derives. The Faust worker, replay and the benchmark all call
these, so they derive exactly the same things.

State is a JSON-serializable dict (it lives in a Faust table). Outputs are intervention
records (kind `ari_intervention`) and one status record per snapshot (kind `ari_status`).
An intervention's id comes from the snapshot that opened its episode, and each update
carries the id of the snapshot that caused it as its version, so a restart or a replay
re-derives the same ids and ClickHouse keeps one row per intervention. Once an episode
closed (or stayed open OUTCOME_OPEN_AFTER_MS) and 3 more snapshots came, a new version
carries its outcome: did the intervention work (docs/ari.md, Outcomes)?

The rules and their numbers are documented in docs/ari.md; the numbers live in rules.py.
"""
import json
from collections import Counter

from ..bounds import LONG_MAX, clamp
from . import rules as R

METRICS = ("token_consumption", "hallucination_rate", "loop_frequency", "directive_conflicts")


def new_state() -> dict:
    # Which records a state already holds is the worker's business (by Kafka offset:
    # pipeline/worker/offsets.py); the engine applies every record it is given.
    return {"snapshots": 0, "window": [], "recent": [],
            "meta_types": {}, "conflict_events": [], "burnout_run": 0, "token_run": 0, "token_run_excess": 0.0,
            "token_run_peak": [0.0, 0.0, 0.0],
            "episodes": {}, "outcome_rows": [], "measuring": {}}


# -- baseline -----------------------------------------------------------------------------

def baseline(window: list[list[float]]) -> dict | None:
    """Robust center (median) and spread (scaled MAD, floored) of each metric."""
    if not window:
        return None
    out = {}
    for name, values in zip(METRICS, zip(*window)):
        center = _median(values)
        mad = _median([abs(v - center) for v in values])
        spread = max(R.MAD_TO_SIGMA * mad, R.SPREAD_FLOOR[name], R.SPREAD_FLOOR_RATIO * abs(center))
        out[name] = {"center": center, "spread": spread}
    out["n"] = len(window)
    return out


def _median(values) -> float:
    # statistics.median's own arithmetic, without its per-call overhead (the engine's
    # costliest step: 8 medians a snapshot)
    s = sorted(values)
    half = len(s) // 2
    return s[half] if len(s) % 2 else (s[half - 1] + s[half]) / 2


def _spikes(base: dict, name: str, value: float) -> bool:
    b = base[name]
    return value > b["center"] + (R.SPIKE_SIGMAS + R.SMALL_WINDOW_SIGMAS / base["n"]) * b["spread"]


# -- protocol 3: data quality ---------------------------------------------------------------

_JSON_TYPES = {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
               dict: "object", type(None): "null"}


def _json_type(v) -> str:
    return _JSON_TYPES.get(type(v), "unknown")


def quality_flags(state: dict, vital: dict, row: list[float], metadata: dict, base: dict | None) -> list[dict]:
    flags = []
    if vital["token_limit"] <= 0 or not 0.0 <= vital["hallucination_rate"] <= 1.0 or min(row) < 0:
        flags.append({"flag": "impossible", "reason": "a metric is outside its possible range"})
    if vital["token_consumption"] > vital["token_limit"] > 0:
        flags.append({"flag": "overflow", "reason": f"token consumption {vital['token_consumption']} "
                                                    f"over the limit {vital['token_limit']}"})
    center = base["token_consumption"]["center"] if base else 0
    if center >= R.CORRUPTION_MIN_CENTER and row[0] >= R.CORRUPTION_FACTOR * center:
        flags.append({"flag": "corruption", "reason": f"token_consumption {row[0]:g} is {row[0] / center:.0f}x "
                                                      f"its baseline {center:g}"})
    recent = state["recent"][-(R.STUCK_RUN - 1):]
    if (len(recent) == R.STUCK_RUN - 1 and all(r == row for r in recent) and row[0] > 0
            and len({tuple(r) for r in state["window"]}) >= 2):  # the window varied before
        flags.append({"flag": "stuck", "reason": f"the same values {R.STUCK_RUN} snapshots in a row"})
    for key, value in metadata.items():
        seen, now = state["meta_types"].get(key), _json_type(value)
        if seen not in (None, "null") and now != "null" and seen != now:  # null stands for any type
            flags.append({"flag": "metadata_type_change",
                          "reason": f"metadata.{key} changed from {seen} to {now}"})
    return flags


# -- protocol 2: the conflict pattern ---------------------------------------------------------

def conflict_pattern(events: list[list]) -> dict:
    details = Counter(d for d, _ in events if d)
    instructions = Counter(f"{k}={v}" for _, meta in events for k, v in meta.items())
    return {
        "events": len(events),
        "recurring_details": [[d, n] for d, n in details.most_common(R.PATTERN_TOP)],
        "recurring_instructions": [[i, n] for i, n in instructions.most_common(R.PATTERN_TOP) if n >= 2],
    }


def step_event(state: dict, event: dict) -> dict:
    """Remember the agent's directive_conflict events (details, scalar metadata) for protocol 2."""
    if event["event_type"] == "directive_conflict":
        meta = json.loads(event["metadata"] or "{}")
        scalars = {k: str(v) for k, v in meta.items() if isinstance(v, (str, int, float, bool))}
        state["conflict_events"] = (state["conflict_events"] + [[event["details"] or "", scalars]])[
            -R.CONFLICT_EVENTS_KEPT:]
    return state


# -- episodes -------------------------------------------------------------------------------

def _episode(state: dict, vital: dict, protocol: int, active: bool, make) -> dict | None:
    """Open, update or close the protocol's episode; returns the intervention version to emit.

    `make(episode)` fills severity, description, details and tokens_saved of an active one.
    """
    key = str(protocol)
    ep = state["episodes"].get(key)
    if active:
        if ep is None:
            # "before": the outcome's before window, this snapshot included
            ep = {"id": f"iv_{vital['id']}_p{protocol}", "opened_at": vital["recorded_at"], "tokens_saved": 0,
                  "before": list(state.get("outcome_rows", []))}
        before = {k: ep.get(k) for k in ("severity", "description", "details", "tokens_saved")}
        ep["calm"] = 0
        make(ep)
        # a sum over an endless drift: kept within what its Avro long can carry (pipeline/bounds.py)
        ep["tokens_saved"] = min(ep["tokens_saved"], float(LONG_MAX))
        state["episodes"][key] = ep
        if before == {k: ep.get(k) for k in before}:
            return None
        return _intervention(vital, protocol, ep, closed_at=None)
    if ep is None:
        return None
    ep["calm"] += 1
    if ep["calm"] < R.CLOSE_AFTER:
        return None
    del state["episodes"][key]
    closed = _intervention(vital, protocol, ep, closed_at=vital["recorded_at"])
    # a state saved before outcomes were measured, or a young one, has no full "before" window
    if len(ep.get("before", [])) == R.OUTCOME_WINDOW and "outcome" not in ep:
        state.setdefault("measuring", {})[ep["id"]] = {"record": closed, "before": ep["before"], "after": []}
    return closed


def _intervention(vital: dict, protocol: int, ep: dict, closed_at: int | None) -> dict:
    return {"tenant": vital["tenant"], "agent_id": vital["agent_id"], "intervention_id": ep["id"],
            "protocol": protocol, "severity": ep["severity"], "description": ep["description"],
            "tokens_saved": clamp(int(round(ep["tokens_saved"]))), "details": json.dumps(ep["details"], sort_keys=True),
            "opened_at": ep["opened_at"], "closed_at": closed_at, "version": vital["id"],
            "outcome": ep.get("outcome"), "outcome_details": ep.get("outcome_details"),
            "tokens_saved_measured": ep.get("tokens_saved_measured")}


def _worse(a: str | None, b: str) -> str:
    return b if a is None or R.SEVERITY_RANK[b] > R.SEVERITY_RANK[a] else a


# -- outcomes: did the intervention work? ---------------------------------------------------

OUTCOME_COLUMNS = METRICS + ("flagged",)  # an outcome row: the four metrics, then 1.0 if protocol 3 flagged it


def _measure_outcomes(state: dict, vital: dict, orow: list[float]) -> list[dict]:
    """Add this snapshot to the "after" window of every closed intervention still measuring,
    and of every episode open for OUTCOME_OPEN_AFTER_MS; returns the version of each whose
    window is now full, with its outcome (an open episode keeps it for its later versions)."""
    done = []
    for key, ep in state["episodes"].items():
        if ("outcome" not in ep and len(ep.get("before", [])) == R.OUTCOME_WINDOW
                and vital["recorded_at"] - ep["opened_at"] >= R.OUTCOME_OPEN_AFTER_MS):
            ep["after"] = ep.get("after", []) + [orow]
            if len(ep["after"]) == R.OUTCOME_WINDOW:
                ep.update(outcome(int(key), ep["before"], ep.pop("after")))
                done.append(_intervention(vital, int(key), ep, closed_at=None))
    for iv_id, m in list(state.get("measuring", {}).items()):
        m["after"].append(orow)
        if len(m["after"]) == R.OUTCOME_WINDOW:
            del state["measuring"][iv_id]
            done.append({**m["record"], **outcome(m["record"]["protocol"], m["before"], m["after"]),
                         "version": vital["id"]})
    return done


def outcome(protocol: int, before: list[list[float]], after: list[list[float]]) -> dict:
    """Compare the windows (same length) on the protocol's watched metrics: worse if any rose
    by more than OUTCOME_CHANGE, else improved if any fell by more, else unchanged."""
    means = {name: (sum(b) / len(b), sum(a) / len(a))
             for name, b, a in zip(OUTCOME_COLUMNS, zip(*before), zip(*after))}
    verdicts = {_verdict(*means[name]) for name in R.OUTCOME_WATCHED[protocol]}
    result = "worse" if "worse" in verdicts else "improved" if "improved" in verdicts else "unchanged"
    details = {"window": len(after), "watched": list(R.OUTCOME_WATCHED[protocol]),
               "metrics": {name: {"before": round(b, 4), "after": round(a, 4)} for name, (b, a) in means.items()}}
    measured = None
    if protocol in R.TOKENS_SAVED_PROTOCOLS:  # the protocols whose tokens_saved is estimated
        # equal windows: the drop in mean tokens per snapshot x the window = the drop in their sums
        drop = sum(r[0] for r in before) - sum(r[0] for r in after)
        measured = clamp(int(round(max(drop, 0.0))))
    return {"outcome": result, "outcome_details": json.dumps(details, sort_keys=True),
            "tokens_saved_measured": measured}


def _verdict(before: float, after: float) -> str:
    if after > before * (1 + R.OUTCOME_CHANGE):  # from 0, any rise is worse
        return "worse"
    if after < before * (1 - R.OUTCOME_CHANGE):
        return "improved"
    return "unchanged"


# -- one snapshot ---------------------------------------------------------------------------

def step_vital(state: dict, vital: dict, status: bool = True) -> tuple[dict, list[dict], dict | None]:
    """Apply one vitals record: (new state, intervention versions, status record).

    `status=False` skips building the status record (None instead): replay keeps only
    each agent's last one, and the state is the same either way."""
    state["snapshots"] += 1
    row = [float(vital[m]) for m in METRICS]
    metadata = json.loads(vital["metadata"] or "{}")
    base = baseline(state["window"])
    flags = quality_flags(state, vital, row, metadata, base)
    orow = row + [1.0 if flags else 0.0]
    state["outcome_rows"] = (state.get("outcome_rows", []) + [orow])[-R.OUTCOME_WINDOW:]
    # before the protocols: an episode closing on this snapshot measures from the next one
    out: list[dict] = _measure_outcomes(state, vital, orow)
    if state["snapshots"] >= R.MIN_SNAPSHOTS:
        out += _protocols(state, vital, row, base, flags)
    if not flags:  # data flagged as bad never shapes the baseline
        state["window"] = (state["window"] + [row])[-R.BASELINE_WINDOW:]
    state["recent"] = (state["recent"] + [row])[-R.STUCK_RUN:]
    for key, value in metadata.items():
        if value is not None:
            state["meta_types"][key] = _json_type(value)
    if not status:
        return state, [i for i in out if i], None
    record = {"tenant": vital["tenant"], "agent_id": vital["agent_id"], "snapshots": state["snapshots"],
              "checkups": json.dumps(checkups(state, vital) if state["snapshots"] >= R.MIN_SNAPSHOTS else {},
                                     ensure_ascii=False, sort_keys=True),
              "baseline": json.dumps(base or {}, sort_keys=True), "updated_at": vital["recorded_at"],
              "version": vital["id"]}
    return state, [i for i in out if i], record


def _protocols(state, vital, row, base, flags) -> list[dict | None]:
    tokens, halluc, loops, conflicts = row

    def data_trauma(ep):
        ep["severity"] = _worse(ep.get("severity"), max((R.FLAG_SEVERITY[f["flag"]] for f in flags),
                                                        key=R.SEVERITY_RANK.__getitem__))
        kinds = sorted({f["flag"] for f in ep.get("details", {}).get("flags", [])} | {f["flag"] for f in flags})
        ep["description"] = "Data trauma indicators: " + ", ".join(k.replace("_", " ") for k in kinds)
        ep["details"] = {"flags": (ep.get("details", {}).get("flags", []) + flags)[-10:]}

    out = [_episode(state, vital, 3, bool(flags), data_trauma)]
    if flags or base is None:
        return out  # untrustworthy data: the other protocols wait for a clean snapshot

    loop_spike = _spikes(base, "loop_frequency", loops) and loops >= R.BURNOUT_MIN_LOOPS
    halluc_spike = _spikes(base, "hallucination_rate", halluc) and halluc >= R.BURNOUT_MIN_HALLUCINATION
    state["burnout_run"] = state["burnout_run"] + 1 if (loop_spike or halluc_spike) else 0
    excess = max(0.0, tokens - base["token_consumption"]["center"])

    def burnout(ep):
        what = [w for w, hit in (("loop frequency", loop_spike), ("hallucination", halluc_spike)) if hit]
        red = loops > 100 or halluc > 0.15
        ep["severity"] = _worse(ep.get("severity"), "high" if red else "medium")
        ep.setdefault("description", "Burnout risk detected — " + " and ".join(what) + " spike")
        ep["details"] = {"baseline": {m: base[m]["center"] for m in ("loop_frequency", "hallucination_rate")},
                         "peak_loops": max(loops, ep.get("details", {}).get("peak_loops", 0)),
                         "peak_hallucination_rate": max(halluc, ep.get("details", {}).get("peak_hallucination_rate", 0)),
                         "action": "marked for review"}
        ep["tokens_saved"] += excess

    sustained = state["burnout_run"] >= R.BURNOUT_SUSTAIN
    out.append(_episode(state, vital, 1, sustained or ("1" in state["episodes"] and (loop_spike or halluc_spike)),
                        burnout))

    def conflict(ep):
        pattern = conflict_pattern(state["conflict_events"])
        ep["severity"] = _worse(ep.get("severity"), "high" if conflicts >= 5 else "medium")
        peak = max(int(conflicts), ep.get("details", {}).get("peak_conflicts", 0))
        text = f"Directive conflicts above {R.CONFLICT_THRESHOLD} ({peak}) — conflict pattern recorded"
        if pattern["recurring_details"]:
            detail, n = pattern["recurring_details"][0]
            text += f": “{detail}” ×{n}"
        ep["description"] = text
        ep["details"] = {"peak_conflicts": peak, "pattern": pattern}

    out.append(_episode(state, vital, 2, conflicts > R.CONFLICT_THRESHOLD, conflict))

    center = base["token_consumption"]["center"]
    over = center > 0 and tokens > R.TOKEN_DRIFT_RATIO * center and _spikes(base, "token_consumption", tokens)
    state["token_run"] = state["token_run"] + 1 if over else 0
    state["token_run_excess"] = state["token_run_excess"] + (tokens - center) if over else 0.0
    if over and tokens / center > state["token_run_peak"][0]:
        state["token_run_peak"] = [tokens / center, tokens, center]  # [ratio, tokens, center]
    elif not over:
        state["token_run_peak"] = [0.0, 0.0, 0.0]
    opening = "4" not in state["episodes"] and state["token_run"] >= R.TOKEN_SUSTAIN

    def simplify(ep):
        peak = max(ep.get("details", {}).get("peak", [0.0, 0.0, 0.0]), state["token_run_peak"])
        ratio, peak_tokens, peak_center = peak
        ep["severity"] = _worse(ep.get("severity"), "high" if ratio >= R.TOKEN_HIGH_RATIO else "medium")
        ep["description"] = (f"Token consumption at {ratio:.0%} of baseline ({peak_tokens:g} vs {peak_center:g}) — "
                             "optimization recommended")
        ep["details"] = {"baseline_tokens": center, "peak": peak, "peak_ratio": round(ratio, 3),
                         "recommendations": ["trim the prompt and context to what the step needs",
                                             "cache repeated tool results", "cap retries and recursion depth"]}
        # the run's excess before the episode opened counts too: it is the same drift
        ep["tokens_saved"] += state["token_run_excess"] if opening else tokens - center

    out.append(_episode(state, vital, 4, over and (opening or "4" in state["episodes"]), simplify))
    return out


def checkups(state: dict, vital: dict) -> dict:
    episodes = state["episodes"]
    conflicts = vital["directive_conflicts"]
    if conflicts >= 5:
        auth = {"result": "fail", "text": "DÉSALIGNÉ"}
    elif "2" in episodes or conflicts > R.CONFLICT_THRESHOLD:
        auth = {"result": "warn", "text": "CONFLIT"}
    else:
        auth = {"result": "ok", "text": "ALIGNÉ"}
    trauma = episodes.get("3")
    if trauma and trauma["severity"] == "high":
        integ = {"result": "fail", "text": "CORROMPU"}
    elif trauma:
        integ = {"result": "warn", "text": "SUSPECT"}
    else:
        integ = {"result": "ok", "text": "SAIN"}
    load = vital["token_consumption"] / vital["token_limit"] if vital["token_limit"] > 0 else float("inf")
    if load > R.LOAD_FAIL:
        charge = {"result": "fail", "text": "SURCHARGE"}
    elif "4" in episodes or load >= R.LOAD_WARN:
        charge = {"result": "warn", "text": "ÉLEVÉE"}
    else:
        charge = {"result": "ok", "text": "OPTIMAL"}
    return {"auth": auth, "integ": integ, "charge": charge}
