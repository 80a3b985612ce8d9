"""The web dashboard (docs/dashboard.md): how the api serves it, and the dashboard as a
person uses it, in headless Chromium (Debian's, driven by playwright-core from
tests/browser) against the real api with seeded data (tests/dashboard_seed.py).
Screenshots of every page at 1280 and 390 px land in build/screenshots/."""
import json
import subprocess
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import pytest

from api.routes import dashboard as route
from pipeline import health
from tests import dashboard_seed as S
from tests.conftest import clear_of_the_hour_end, eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
BROWSER_DIR = Path(__file__).parent / "browser"
SHOTS = ROOT / "build" / "screenshots"
PAGES = ("sign-in", "agents", "agent-detail", "applications", "application-detail", "keys")
CSP = "default-src 'self'; script-src 'self'; style-src 'self'"


def test_the_api_serves_the_dashboard_files_only(running_api, monkeypatch):
    api = running_api()
    with api.client(None) as http:
        res = http.get("/", follow_redirects=False)
        assert (res.status_code, res.headers["location"]) == (307, "/dashboard/")
        index = http.get("/dashboard/")
        assert index.status_code == 200 and index.headers["content-type"] == "text/html; charset=utf-8"
        assert '<script type="module" src="app.js"></script>' in index.text
        assert index.headers["cache-control"] == "no-cache"
        assert index.headers["content-security-policy"].startswith(CSP)
        module = http.get("/dashboard/chart.js")
        assert module.headers["content-type"] == "text/javascript; charset=utf-8"
        assert "from './vendor/uPlot.esm.js'" in module.text
        vendor = http.get("/dashboard/vendor/uPlot.esm.js")
        assert vendor.status_code == 200 and "uPlot.js (μPlot)" in vendor.text
        assert vendor.text == (ROOT / "dashboard/node_modules/uplot/dist/uPlot.esm.js").read_text()
        assert http.get("/dashboard/vendor/uPlot.min.css").headers["content-type"] == "text/css; charset=utf-8"
        for path in ("/dashboard/..%2Fpackage.json", "/dashboard/%2E%2E%2Fpackage.json", "/dashboard/.hidden.js",
                     "/dashboard/../api/main.py", "/dashboard/vendor/uPlot.cjs.js", "/dashboard/nothing.js",
                     "/dashboard/node_modules%2Fuplot%2Fpackage.json"):
            assert http.get(path).status_code == 404, path
        monkeypatch.setitem(route.VENDOR, "uPlot.esm.js", ROOT / "dashboard/node_modules/missing/uPlot.esm.js")
        missing = http.get("/dashboard/vendor/uPlot.esm.js")
        assert missing.status_code == 503 and "run `make dashboard`" in missing.text
        onboarding = http.get("/onboarding.html").text
        assert 'href="/dashboard/"' in onboarding


def _buckets(points, step_ms):
    """Mean of each bucket (start in epoch seconds) of (ms, value) points."""
    sums = defaultdict(list)
    for ms, value in points:
        sums[(ms - ms % step_ms) // 1000].append(value)
    return {b: sum(v) / len(v) for b, v in sums.items()}


def _in_range(expected, start_ms, end_ms, step_ms):
    """The buckets the api answers for start..end: the first holds start, the last starts before end."""
    first = (start_ms - start_ms % step_ms) // 1000
    return [[b, expected[b]] for b in sorted(expected) if first <= b < end_ms / 1000]


def _same_points(chart, expected):
    assert len(chart["points"]) == len(expected), chart["metric"]
    for (x, y), (ex, ey) in zip(chart["points"], expected):
        assert x == ex and y == pytest.approx(ey, rel=1e-9), (chart["metric"], x, y, ex, ey)


def _num(v: float, digits: int) -> str:
    """JavaScript's toLocaleString('en-US', {maximumFractionDigits})."""
    text = f"{v:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if digits else text


def test_the_dashboard_in_a_browser(running_api):
    clear_of_the_hour_end(150)  # hourly figures (trend, 24 h summary) stay in one hour
    api = running_api()
    seeded = S.seed(api)
    S.wait_readable(api, seeded)
    cfg = {"base": api.url, "key": seeded.key, "readOnlyKey": seeded.read_only_key, "appId": seeded.app_id,
           "spareKeyId": seeded.spare_key_id, "shots": str(SHOTS)}
    out = subprocess.run(["node", str(BROWSER_DIR / "dashboard.js"), json.dumps(cfg)], capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert "failure" not in seen, seen["failure"]
    app_id = seeded.app_id

    # Sign in: from / to the sign-in page, which links to the onboarding page; the key is
    # kept in session storage and sent as a Bearer header, and sign-out forgets it.
    assert seen["signInUrl"] == f"{api.url}/dashboard/"
    assert seen["getKeyHref"] == "/onboarding.html"
    assert seen["storedKey"] == seeded.key
    assert sorted(seen["authHeaders"]) == sorted([f"Bearer {seeded.key}", f"Bearer {seeded.read_only_key}"])
    assert seen["afterSignOut"] == {"key": None, "hash": "#/sign-in"}

    # Agents overview: rows, status with its icon, stale, ARI, trend; search, filter, sort.
    last_t, last_v, last_meta = seeded.checkout_vitals[-1]
    checkout_status = health.status(health.score(token_consumption=last_v["tokens"], token_limit=100_000,
                                                 hallucination_rate=last_v["hallucination"], loop_count=last_v["loops"],
                                                 conflict_count=last_v["conflicts"]))
    icon = {"active": "●", "warning": "▲", "critical": "✖"}
    now_s = time.time_ns() // 1_000_000_000
    first_hour = now_s - now_s % 3600 - 23 * 3600
    trend_hours = len({t // 3_600_000 for t, _, _ in seeded.checkout_vitals if t // 1000 >= first_hour})
    by_id = {r["id"]: r for r in seen["overview"]}
    assert [r["id"] for r in seen["overview"]][0] == "agent-support"  # default sort: worst status first
    assert by_id["agent-support"] | {"last": None, "trendPoints": None} == {
        "id": "agent-support", "name": "support-agent", "status": "✖ critical", "stale": False, "last": None,
        "trendPoints": None, "ari": "0"}
    assert by_id["agent-billing"] | {"trendPoints": None} == {
        "id": "agent-billing", "name": "billing-agent", "status": "● active ◌ stale", "stale": True, "last": "1 h ago",
        "trendPoints": None, "ari": "0"}
    checkout = by_id["agent-checkout"]
    assert (checkout["status"], checkout["stale"], checkout["ari"], checkout["trendPoints"]) == (
        f"{icon[checkout_status]} {checkout_status}", False, "1", trend_hours)
    assert seen["searchBill"] == ["billing-agent"] and seen["searchCheckout"] == ["checkout-bot"]
    assert seen["filterStale"] == ["billing-agent"] and seen["filterCritical"] == ["support-agent"]
    assert seen["sortNameAsc"] == ["billing-agent", "checkout-bot", "support-agent"]
    assert seen["sortNameDesc"] == ["support-agent", "checkout-bot", "billing-agent"]
    assert seen["sortAriDesc"] == ["checkout-bot", "billing-agent", "support-agent"]
    # The 10 s refresh re-rendered and kept search, sort and the table's horizontal scroll.
    assert seen["refresh"] == {"before": ["support-agent", "checkout-bot", "billing-agent"],
                               "after": ["support-agent", "checkout-bot", "billing-agent"],
                               "search": "agent-", "scrollLeft": 150, "sort": "descending"}

    # Agent detail: every chart holds exactly the seeded values per 5-minute bucket and
    # drew them; events and interventions are marked on every chart.
    assert seen["agentHash"] == "#/agents/agent-checkout" and seen["agentName"] == "checkout-bot"
    start, end = seen["vitalRange"]
    assert end - start == 86_400_000
    columns = {"tokenUsagePercent": lambda v, m: v["tokens"] * 100 / 100_000, "tokenConsumption": lambda v, m: v["tokens"],
               "hallucinationRate": lambda v, m: v["hallucination"], "loopCount": lambda v, m: v["loops"],
               "conflictCount": lambda v, m: v["conflicts"], "responseLatency": lambda v, m: m["responseLatency"]}
    charts = {c["metric"]: c for c in seen["vitalCharts"] + seen["customCharts"]}
    assert [c["metric"] for c in seen["vitalCharts"]] == ["tokenUsagePercent", "tokenConsumption", "hallucinationRate",
                                                         "loopCount", "conflictCount"]
    assert [c["metric"] for c in seen["customCharts"]] == ["responseLatency"]
    event_s = sorted(e["recorded_at"] / 1000 for e in seeded.events)
    closed = next(i for i in seeded.interventions if i["closed_at"])
    opened = next(i for i in seeded.interventions if not i["closed_at"])
    for metric, value in columns.items():
        expected = _buckets([(t, value(v, m)) for t, v, m in seeded.checkout_vitals], S.FIVE_MS)
        _same_points(charts[metric], _in_range(expected, start, end, S.FIVE_MS))
        assert charts[metric]["pixels"] > 300, metric  # the line is on the canvas
        assert sorted(charts[metric]["markers"]) == event_s
        spans = charts[metric]["spans"]
        assert [closed["opened_at"] / 1000, closed["closed_at"] / 1000] in spans
        assert [s[0] for s in spans] == [opened["opened_at"] / 1000, closed["opened_at"] / 1000]
    assert seen["oneHourRequests"] == 6  # the 1 h range re-queried every chart (1m buckets)
    custom = seen["customRange"]  # two hours ending an hour ago: 1m buckets, one report in every fifth
    for chart in custom["charts"]:
        expected = _buckets([(t, columns[chart["metric"]](v, m)) for t, v, m in seeded.checkout_vitals], S.MIN_MS)
        _same_points(chart, _in_range(expected, custom["start"], custom["end"], S.MIN_MS))
        assert len(chart["points"]) == 24 and chart["pixels"] > 100
    assert seen["events"] == ["task_completed", "directive_conflict", "tool_error"]
    assert seen["eventDetails"] == [e["details"] for e in reversed(seeded.events)]
    assert seen["interventions"] == [opened["description"], closed["description"]]
    assert seen["outcomes"] == [["not measured yet", "", "–"],
                                ["✓ improved", "token_consumption: 7,000 → 4,000", "9,000"]]
    assert seen["checkups"] == [["auth", "✓ ALIGNÉ"], ["integ", "▲ SUSPECT"], ["charge", "✓ OPTIMAL"]]
    today = now_s - now_s % 86_400
    assert seen["ariStats"] == [str(sum(i["opened_at"] // 1000 >= today for i in seeded.interventions)), "12,000", "0",
                                "9,000"]
    assert seen["metadataKeys"] == ["responseLatency", "model", "region", "tools"]
    assert seen["metadataJson"] == last_meta
    assert seen["agentRules"] == [["Hallucinations high", "✖ firing"]]

    # Applications: the 24 h summary as the api computes it.
    with api.client(seeded.key) as http:
        m = http.get(f"/v1/applications/{app_id}").json()["metrics"]
        predictions = {metric: http.get(f"/v1/applications/{app_id}/predictions",
                                        params={"metric": metric, "horizon": "24h"}).json()["predictions"]
                       for metric in ("response_time", "error_rate", "throughput")}
        window_error = http.post(f"/v1/applications/{app_id}/alerts", json={
            "name": "x", "condition": {"metric": "error_rate", "operator": ">", "threshold": 1, "window": "5x"},
            "actions": [{"type": "email", "recipients": ["a@example.com"]}]}).json()
        rules = {r["name"]: r for r in http.get(f"/v1/applications/{app_id}/alerts").json()["alerts"]}
        keys = http.get("/api/keys").json()["keys"]
    assert seen["apps"] == [[f"Checkout API{app_id}", "● active", "production", f"{_num(m['uptime'], 2)} %",
                             f"{_num(m['response_time'], 1)} ms", f"{_num(m['error_rate'] * 100, 2)} %"]]
    assert m["uptime"] == 100.0

    # Application detail: exact bucket means at the default (5m) and at the chosen 1h
    # granularity, which re-queried every metric; the forecast ahead; deployments marked.
    start, end = seen["appRange"]
    assert end - start == 86_400_000
    for chart in seen["appCharts"]:
        metric = chart["metric"]
        points = [(ms, v) for name, v, ms in seeded.app_points if name == metric]
        assert chart["granularity"] == "5m"
        _same_points(chart, _in_range(_buckets(points, S.FIVE_MS), start, end, S.FIVE_MS))
        assert chart["pixels"] > 300, metric
        assert chart["forecast"] == len(predictions[metric]) + 1 == 25  # joined to the last real point
        assert sorted(chart["markers"]) == sorted(d["started_at"] // 1000 for d in seeded.deployments)  # the api says seconds
    assert [(r["metric"], r["granularity"], r["stat"]) for r in seen["granularityRequests"]] == [
        ("response_time", "1h", "mean"), ("error_rate", "1h", "mean"), ("throughput", "1h", "mean")]
    for chart in seen["hourlyCharts"]:
        points = [(ms, v) for name, v, ms in seeded.app_points if name == chart["metric"]]
        assert chart["granularity"] == "1h"
        _same_points(chart, _in_range(_buckets(points, S.HOUR_MS), start, end, S.HOUR_MS))
        assert chart["pixels"] > 100
    assert seen["deployments"] == [
        ["v2.1.0", "↺ rolled back", "error rate rose from 1.0 % to 5.2 % within 5 minutes"],
        ["v2.0.0", "✓ success", "error rate and response time held for 10 minutes"]]
    assert seen["insights"] == ["Deployment v2.1.0 raised the error rate", "Response time p95 above its baseline"]

    # The rule form: the api's validation message next to its field, then the rule made
    # and edited through the form, as the api now has it.
    assert seen["windowError"] == window_error["message"] and window_error["field"] == "condition.window"
    assert seen["windowInvalid"] == "true"
    assert seen["appRules"] == [["Slow responses", "p95 of response_time over 5m > 150", "✖ firing"],
                                ["Error budget", "max of error_rate over 10m >= 0.02", "✓ ok"]]
    assert seen["appRulesEdited"] == ["p95 of response_time over 5m > 150", "max of error_rate over 10m >= 0.03"]
    made = rules["Error budget"]
    assert (made["condition"], made["actions"], made["for"], made["repeat_interval"], made["enabled"]) == (
        {"metric": "error_rate", "operator": ">=", "threshold": 0.03, "window": "10m", "aggregation": "max"},
        [{"type": "email", "recipients": ["oncall@example.com", "lead@example.com"]}], "2m", "1h", True)
    assert seen["history"] == [["ok", "✖ firing", "158", "150", "firing"]]
    assert seen["silenceButton"] == "Unsilence"
    silenced_s = datetime.fromisoformat(made["silenced_until"]).timestamp()
    assert time.time() + 3600 - 180 < silenced_s <= time.time() + 3600  # an hour from the click
    assert seen["deleteDialog"] == "Delete the alert rule “Slow responses”?"
    assert seen["rulesAfterDelete"] == ["Error budget"] and set(rules) == {"Error budget"}

    # Keys: a key created (shown once, copied), the spare one revoked for real.
    assert seen["keysBefore"] == 3
    assert seen["createdKey"].startswith("sk_live_") and seen["copyStatus"] == "Copied"
    assert len(keys) == 4 and sum(k["active"] for k in keys) == 3
    assert [r for r in seen["keyRows"] if r[0] == seeded.spare_key_id] == [[seeded.spare_key_id, "full", "– revoked"]]
    with api.client(seeded.spare_key) as http:
        assert http.get("/api/keys").status_code == 401
    with api.client(seen["createdKey"]) as http:
        assert http.get("/api/keys").status_code == 200

    # A read-only key sees everything and says why it cannot change anything.
    assert seen["readOnly"] == {
        "badge": True, "ruleNote": "read-only key: creating and editing alert rules needs a full key.",
        "ruleFormDisabled": True, "editDisabled": True,
        "keysNote": "read-only key: creating and revoking keys needs a full key of the account.",
        "createDisabled": True, "revokeDisabled": True}

    # 390 px: no page is wider than the screen; wide tables scroll inside their box.
    for name, o in seen["narrow"].items():
        assert (name, o["scrollWidth"], o["offenders"]) == (name, 390, []), o
    assert sorted(seen["narrow"]) == sorted(p for p in PAGES if p != "sign-in")

    # The one console error is the network log of the deliberately invalid rule (400).
    assert seen["consoleErrors"] == [{"text": "Failed to load resource: the server responded with a status of 400 "
                                              "(Bad Request)", "url": f"{api.url}/v1/applications/{app_id}/alerts"}]
    assert seen["pageErrors"] == []
    assert sorted(Path(p).name for p in seen["shots"]) == sorted(f"{p}-{w}.png" for p in PAGES for w in (1280, 390))
    assert all(Path(p).stat().st_size > 10_000 for p in seen["shots"])


def test_the_sql_page_in_a_browser(running_api):
    """#/sql with a read-only key: a query's answer as a table, the engine's refusal at the
    box, the same answer as a CSV download, and a table's starting query."""
    api = running_api()
    with api.client() as http:
        app_id = http.post("/v1/applications", json={"name": "sql page"}).json()["id"]
        t = int(time.time()) * 1000
        points = [{"metric": m, "value": v, "timestamp": t - i * 1000}
                  for i, (m, v) in enumerate((("latency", 1.5), ("latency", 2.5), ("errors", 4.0)))]
        assert http.post(f"/v1/applications/{app_id}/metrics", json={"points": points}).status_code == 202
        read_only = http.post("/api/keys", json={"email": http.get("/api/keys").json()["email"],
                                                 "read_only": True}).json()["key"]
        count = {"query": f"SELECT count() FROM app_metrics WHERE application_id = '{app_id}'"}
        assert eventually(lambda: http.post("/v1/sql", json=count).json()["data"] == [[3]], 30)
    cfg = {"base": api.url, "key": read_only, "appId": app_id}
    out = subprocess.run(["node", str(BROWSER_DIR / "sql.js"), json.dumps(cfg)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert "failure" not in seen, seen["failure"]
    assert seen["navCurrent"] == "page"
    assert seen["head"] == ["metric", "n", "total"]
    assert sorted(seen["rows"]) == [["errors", "1", "4"], ["latency", "2", "4"]]
    assert seen["status"] == "2 rows"
    assert seen["csvName"] == "sophra-query.csv"
    assert sorted(seen["csv"].splitlines()) == sorted(['"metric","n","total"', '"errors",1,4', '"latency",2,4'])
    assert seen["error"].startswith("query: tables are named without a database here (system.tables)")
    assert (seen["invalid"], seen["focused"]) == ("true", "sql-query")
    assert seen["vitalsQuery"] == "SELECT *\nFROM vitals\nLIMIT 100"
    assert seen["vitalsHead"] == ["id", "agent_id", "agent_name", "token_consumption", "token_limit",
                                  "hallucination_rate", "loop_frequency", "directive_conflicts", "overall_health",
                                  "metadata", "recorded_at"]
    assert (seen["vitalsStatus"], seen["invalidAfter"]) == ("0 rows", None)
    assert seen["pageErrors"] == []


def iso_ms(iso: str) -> int:
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp() * 1000)


def test_the_budgets_page_in_a_browser(running_api):
    """#/budgets with the worker counting: each budget's use, state and freshness; a
    refused form with the api's message at its field; a budget created through the form;
    one deleted after the confirmation in place."""
    from tests.test_budgets_live import start_worker
    from sophra.processes import terminate

    clear_of_the_hour_end(120)  # the day stays the same through the test
    api = running_api()
    worker = start_worker(api.settings, "budgets-page")
    try:
        with api.client() as http:
            one = http.post("/api/budgets", json={"name": "Bot one", "scope": "agent", "agent_id": "bot-1",
                                                  "limit": 1000, "period": "day"}).json()
            http.post("/api/budgets", json={"name": "All agents", "scope": "account", "limit": 100, "period": "day"})
            sent = int(time.time() * 1000)
            assert http.post("/api/vitals", json={"agentId": "bot-1", "metrics": {"tokenConsumption": 850}}
                             ).status_code == 200
            assert eventually(lambda: http.get(f"/api/budgets/{one['id']}").json()["used"] == 850, 120)
            cfg = {"base": api.url, "key": api.key, "shots": str(SHOTS)}
            out = subprocess.run(["node", str(BROWSER_DIR / "budgets.js"), json.dumps(cfg)], capture_output=True,
                                 text=True, timeout=120)
            assert out.returncode == 0, out.stderr
            seen = json.loads(out.stdout)
            assert "failure" not in seen, seen["failure"]
            made = http.get("/api/budgets").json()["budgets"]
    finally:
        terminate(worker)
    assert seen["navCurrent"] == "page"
    # Bot one runs out at its pace so far (docs/budgets.md): some time after the report,
    # shown as the page's locale writes it; a calendar period's forecast has no interval
    at = seen["forecasts"][0]
    assert seen["forecasts"] == [at, None] and iso_ms(at) > sent
    shown = datetime.fromtimestamp(iso_ms(at) / 1000).strftime("%d/%m/%Y, %H:%M:%S")
    assert seen["rows"] == [
        ["Bot one", "agent bot-1", "per day", "850", "1,000", "85 %", "▲ over 80 %", shown],
        ["All agents", "whole account", "per day", "850", "100", "850 %", "✖ exhausted", "exhausted"]]
    assert seen["meters"] == [85, 100]
    assert seen["fieldsShown"] == ["name", "scope", "agent_id", "limit", "period"]
    assert seen["groupFields"] == ["name", "scope", "tag", "tag_value", "limit", "period", "window"]
    assert seen["error"].startswith("tag_value: ")
    assert (seen["invalid"], seen["focused"], seen["invalidAfter"]) == ("true", "budget-tag_value", None)
    group = made[-1]
    assert (group["scope"], group["tag"], group["tag_value"], group["limit"], group["window"]) == (
        "group", "team", "support", 5000, "6h")
    assert seen["afterCreate"][2] == [group["name"], "team = support", "rolling 6h", "0", "5,000", "0 %", "✓ ok",
                                      "not at this pace"]
    assert seen["confirm"] == "Delete it? Yes, delete Cancel"
    assert seen["afterDelete"] == ["All agents", group["name"]]
    assert [b["name"] for b in made] == ["All agents", group["name"]]
    assert seen["pageErrors"] == []
