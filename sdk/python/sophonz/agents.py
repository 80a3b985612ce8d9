"""Agent monitoring (reference 003: vitals, events, agents, ARI) for Python, standard
library only: `AgentClient` (blocking), `AsyncAgentClient` (asyncio) and, through
`AgentClient.background()`, a `BackgroundReporter` that never delays the agent.

They follow the JavaScript agent SDK (sdk/sophra-sdk.js): the same requests, the same
retries (_backoff.py), no exception at construction for a missing key (a misconfigured
monitor must not crash an agent at start-up; each call fails instead). Failures are
SophonzError, as in the /v1 `Client`.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import time
import urllib.parse
from typing import Any, Dict, Optional, Sequence, Tuple

from ._backoff import Backoff
from ._http import error_for, exchange
from .budget import DEFAULT_THRESHOLDS, BudgetWatch, OnBudget
from .client import USER_AGENT, Time, _json_default, _query_value, _seg
from .errors import SophonzError

DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RETRY = 30.0

Json = Any
# (method, path with query, encoded JSON body or None): one request, ready to send again.
Prepared = Tuple[str, str, Optional[bytes]]


def server_url(base_url: Optional[str]) -> str:
    """The server's address, from the argument or the environment, without a trailing
    /v1 or /api: the agent API lives under /api and the application API under /v1 of the
    same server, so the one base URL a user has (with or without /v1) serves both."""
    url = base_url or os.environ.get("SOPHONZ_BASE_URL") or os.environ.get("SOPHRA_BASE_URL") or DEFAULT_SERVER_URL
    url = url.rstrip("/")
    for suffix in ("/v1", "/api"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


def _number(value: Any, name: str, allow_zero: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number of seconds")
    return float(value)


def vitals_body(agent_id: str, metrics: Optional[Dict[str, Any]], agent_name: Optional[str],
                metadata: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """POST /api/vitals as the API documents it; `metrics` goes as given (camelCase keys,
    custom ones too), so metrics the server learns later need no SDK update."""
    body: Dict[str, Any] = {"agentId": agent_id}
    if agent_name is not None:
        body["agentName"] = agent_name
    if metrics is not None:
        body["metrics"] = metrics
    if metadata is not None:
        body["metadata"] = metadata
    return body


def event_body(agent_id: str, type: str, details: Optional[str], metadata: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    body: Dict[str, Any] = {"agentId": agent_id, "type": type}
    if details is not None:
        body["details"] = details
    if metadata is not None:
        body["metadata"] = metadata
    return body


def encode(body: Any) -> bytes:
    """JSON as the server reads it: NaN and infinities are refused here (ValueError), not sent."""
    return json.dumps(body, default=_json_default, allow_nan=False, ensure_ascii=False).encode("utf-8")


def _agent_path(agent_id: str, suffix: str, query: Optional[Dict[str, Any]] = None) -> str:
    path = f"/api/agents/{_seg(agent_id)}{suffix}"
    params = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
    return path + ("?" + urllib.parse.urlencode(params) if params else "")


class _Requests:
    """Every call of the agent API as a prepared request; the clients differ only in how
    they send one (blocking, in a worker thread, or from a background queue)."""

    @staticmethod
    def report_vitals(agent_id, metrics=None, agent_name=None, metadata=None) -> Prepared:
        return "POST", "/api/vitals", encode(vitals_body(agent_id, metrics, agent_name, metadata))

    @staticmethod
    def report_event(agent_id, type, details=None, metadata=None) -> Prepared:
        return "POST", "/api/events", encode(event_body(agent_id, type, details, metadata))

    @staticmethod
    def list_agents() -> Prepared:
        return "GET", "/api/agents", None

    @staticmethod
    def get_vitals(agent_id, limit=None) -> Prepared:
        return "GET", _agent_path(agent_id, "/vitals", {"limit": limit}), None

    @staticmethod
    def get_events(agent_id, limit=None, start=None, end=None) -> Prepared:
        return "GET", _agent_path(agent_id, "/events", {"limit": limit, "start": start, "end": end}), None

    @staticmethod
    def get_ari(agent_id, limit=None) -> Prepared:
        return "GET", _agent_path(agent_id, "/ari", {"limit": limit}), None


class AgentClient:
    """A blocking client of the agent API (reference 003).

    api_key    `sk_live_...`; default: SOPHONZ_API_KEY, else SOPHRA_API_KEY. Without one the
               constructor still succeeds and every call raises SophonzError (status 0,
               error "No API key").
    base_url   The server's address, e.g. https://sophra.example.com (a trailing /v1 or
               /api is ignored, so the /v1 Client's base URL works too); default:
               SOPHONZ_BASE_URL, else SOPHRA_BASE_URL, else http://127.0.0.1:8000.
    timeout    Seconds for each attempt's connection and reads.
    max_retry  No retry starts later than this many seconds after the first attempt;
               0 disables retries (see _backoff.py for the rules).
    on_budget  on_budget(agent_id, threshold, budget): called when an agent's token budget
               use crosses one of `budget_thresholds` (percent, default 80 and 100) upward,
               as seen in its vitals answers (budget.py); `budget(agent_id)` is the latest.
    """

    def __init__(self, api_key: Optional[str] = None, base_url: Optional[str] = None, *,
                 timeout: float = DEFAULT_TIMEOUT, max_retry: float = DEFAULT_MAX_RETRY,
                 on_budget: Optional[OnBudget] = None, budget_thresholds: Sequence[float] = DEFAULT_THRESHOLDS):
        self.budgets = BudgetWatch(budget_thresholds, on_budget)
        if base_url is not None and not isinstance(base_url, str):
            raise TypeError("base_url must be a string")
        self.api_key = api_key or os.environ.get("SOPHONZ_API_KEY") or os.environ.get("SOPHRA_API_KEY") or None
        self.base_url = server_url(base_url)
        self.timeout = _number(timeout, "timeout", allow_zero=False)
        self.max_retry = _number(max_retry, "max_retry", allow_zero=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    # -- the API ---------------------------------------------------------------------------

    def report_vitals(self, agent_id: str, metrics: Optional[Dict[str, Any]] = None, *,
                      agent_name: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None) -> Json:
        """POST /api/vitals: {"success", "health", "vital": {...}}. A second report for the
        same agent within 10 s is refused with 429 and waited out within `max_retry`."""
        return self.send(_Requests.report_vitals(agent_id, metrics, agent_name, metadata))

    def report_event(self, agent_id: str, type: str, details: Optional[str] = None, *,
                     metadata: Optional[Dict[str, Any]] = None) -> Json:
        """POST /api/events: {"success", "event": {...}}."""
        return self.send(_Requests.report_event(agent_id, type, details, metadata))

    def list_agents(self) -> Json:
        """GET /api/agents: {"success", "agents": [...]}, each with its latest vitals."""
        return self.send(_Requests.list_agents())

    def get_vitals(self, agent_id: str, limit: Optional[int] = None) -> Json:
        """GET /api/agents/{id}/vitals?limit: {"success", "vitals": [...]}, newest first
        (default 50, at most 500)."""
        return self.send(_Requests.get_vitals(agent_id, limit))

    def get_events(self, agent_id: str, limit: Optional[int] = None, start: Optional[Time] = None,
                   end: Optional[Time] = None) -> Json:
        """GET /api/agents/{id}/events: {"success", "events": [...]}, newest first, only
        those in [start, end) when given (datetime, ISO 8601 or epoch ms)."""
        return self.send(_Requests.get_events(agent_id, limit, start, end))

    def get_ari(self, agent_id: str, limit: Optional[int] = None) -> Json:
        """GET /api/agents/{id}/ari: ARI status, checkups and the newest `limit` interventions."""
        return self.send(_Requests.get_ari(agent_id, limit))

    def budget(self, agent_id: str) -> Optional[Dict[str, Any]]:
        """The token budget state of the agent's latest vitals answer: {"id", "remaining",
        "percent_used", "exhausted", "forecast_exhaustion_at", "as_of"}; None before its first
        answer or when no budget covers it. No request: it is what the server last said."""
        return self.budgets.get(agent_id)

    def background(self, *, queue_size: int = 1000, exit_timeout: float = 5.0) -> "BackgroundReporter":
        """A BackgroundReporter sending this client's reports from a daemon thread."""
        from .background import BackgroundReporter
        return BackgroundReporter(self, queue_size=queue_size, exit_timeout=exit_timeout)

    # -- sending -----------------------------------------------------------------------------

    def send(self, prepared: Prepared) -> Json:
        """One request with the retry rules; the parsed JSON answer, or SophonzError."""
        backoff = Backoff(self.max_retry)
        while True:
            try:
                return self.attempt(prepared)
            except SophonzError as err:
                wait = backoff.wait_after(err)
                if wait is None:
                    raise
            time.sleep(wait)

    def attempt(self, prepared: Prepared) -> Json:
        """One HTTP exchange, no retry: the parsed 2xx answer, else SophonzError."""
        method, path, data = prepared
        if not self.api_key or not isinstance(self.api_key, str):
            raise SophonzError(0, "No API key", "No API key: pass api_key=... or set SOPHONZ_API_KEY or SOPHRA_API_KEY")
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json", "User-Agent": USER_AGENT}
        if data is not None:
            headers["Content-Type"] = "application/json"
        status, res_headers, parsed = exchange(method, self.base_url + path, headers, data, self.timeout)
        if 200 <= status < 300:
            self.budgets.seen(prepared, parsed)
            return parsed
        raise error_for(status, res_headers, parsed, f"{method} {path.split('?')[0]}")


class AsyncAgentClient:
    """The AgentClient's methods as coroutines, with the same arguments, answers, errors
    and retries.

    Each attempt runs the blocking transport in a worker thread (asyncio.to_thread), and
    waits between attempts are asyncio.sleep, so the event loop is never blocked. A thread
    per in-flight attempt keeps one tested HTTP implementation (urllib: proxies, TLS,
    redirects) instead of a second HTTP/1.1 client over asyncio streams; a report is a
    small request, and the default executor bounds the threads.
    """

    def __init__(self, api_key: Optional[str] = None, base_url: Optional[str] = None, *,
                 timeout: float = DEFAULT_TIMEOUT, max_retry: float = DEFAULT_MAX_RETRY,
                 on_budget: Optional[OnBudget] = None, budget_thresholds: Sequence[float] = DEFAULT_THRESHOLDS):
        self.sync = AgentClient(api_key, base_url, timeout=timeout, max_retry=max_retry, on_budget=on_budget,
                                budget_thresholds=budget_thresholds)

    def __repr__(self) -> str:
        return f"AsyncAgentClient(base_url={self.sync.base_url!r})"

    async def report_vitals(self, agent_id: str, metrics: Optional[Dict[str, Any]] = None, *,
                            agent_name: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None) -> Json:
        return await self.send(_Requests.report_vitals(agent_id, metrics, agent_name, metadata))

    async def report_event(self, agent_id: str, type: str, details: Optional[str] = None, *,
                           metadata: Optional[Dict[str, Any]] = None) -> Json:
        return await self.send(_Requests.report_event(agent_id, type, details, metadata))

    def budget(self, agent_id: str) -> Optional[Dict[str, Any]]:
        """As AgentClient.budget: no request, the latest answer's budget state."""
        return self.sync.budget(agent_id)

    async def list_agents(self) -> Json:
        return await self.send(_Requests.list_agents())

    async def get_vitals(self, agent_id: str, limit: Optional[int] = None) -> Json:
        return await self.send(_Requests.get_vitals(agent_id, limit))

    async def get_events(self, agent_id: str, limit: Optional[int] = None, start: Optional[Time] = None,
                         end: Optional[Time] = None) -> Json:
        return await self.send(_Requests.get_events(agent_id, limit, start, end))

    async def get_ari(self, agent_id: str, limit: Optional[int] = None) -> Json:
        return await self.send(_Requests.get_ari(agent_id, limit))

    async def send(self, prepared: Prepared) -> Json:
        backoff = Backoff(self.sync.max_retry)
        while True:
            try:
                return await asyncio.to_thread(self.sync.attempt, prepared)
            except SophonzError as err:
                wait = backoff.wait_after(err)
                if wait is None:
                    raise
            await asyncio.sleep(wait)
