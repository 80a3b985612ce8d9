"""`Client` and its resources: one method per /v1 endpoint, standard library only."""
from __future__ import annotations

import json
import os
import urllib.parse
from datetime import date, datetime, timezone
from typing import Any, Dict, Iterable, Optional, Union

from ._http import exchange, error_for

__version__ = "0.2.0"

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"  # a self-hosted server; the hosted one is https://api.sophonz.com/v1
USER_AGENT = f"sophonz-python/{__version__}"

Json = Any
Time = Union[datetime, date, str, int]


def _iso(value: Any) -> Any:
    """datetime/date -> ISO 8601 in UTC (`2024-01-15T12:00:00.000Z`); anything else as is.
    A naive datetime is taken as UTC, as the server takes a time without an offset."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00.000Z"
    return value


def _json_default(value: Any) -> Any:
    converted = _iso(value)
    if converted is value:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return converted


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(_iso(value))


def _seg(value: Any) -> str:
    """One path segment, percent-encoded (a `/` in an id cannot reach another route)."""
    return urllib.parse.quote(str(value), safe="")


def _header_number(value: Optional[str]) -> Union[int, str, None]:
    if value is None:
        return None
    value = value.strip()
    try:
        return int(value)
    except ValueError:
        return value  # "unlimited" for enterprise keys


def _drop_none(values: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class Client:
    """A client of the /v1 API.

    api_key   Your API key; default: the SOPHONZ_API_KEY environment variable.
    base_url  The API's base URL including /v1; default: SOPHONZ_BASE_URL, else
              http://127.0.0.1:8000/v1 (a self-hosted server on this machine).
    timeout   Seconds to wait for a connection or for data before giving up (status 0).

    `client.rate_limit` holds the quota of the last answer that carried it:
    {"limit": 1000, "remaining": 999, "reset": 1642248000} (ints; "unlimited" in limit
    and remaining for enterprise keys), or None before the first such answer.
    """

    def __init__(self, api_key: Optional[str] = None, base_url: Optional[str] = None, timeout: float = 10):
        api_key = api_key or os.environ.get("SOPHONZ_API_KEY") or None
        if not api_key:
            raise ValueError("No API key: pass Client(api_key=...) or set SOPHONZ_API_KEY")
        self.api_key = api_key
        self.base_url = (base_url or os.environ.get("SOPHONZ_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.rate_limit: Optional[Dict[str, Union[int, str, None]]] = None
        self.applications = Applications(self)
        self.metrics = Metrics(self)
        self.alerts = Alerts(self)
        self.deployments = Deployments(self)
        self.insights = Insights(self)
        self.predictions = Predictions(self)

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

    def request(self, method: str, path: str, *, query: Optional[Dict[str, Any]] = None,
                body: Json = None) -> Json:
        """Send one request to `base_url + path` and return the parsed JSON answer (None
        for an empty one, e.g. 204). `query` values that are None are left out. Raises
        SophonzError for any non-2xx answer and for network failures (status 0)."""
        url = self.base_url + path
        if query:
            params = {k: _query_value(v) for k, v in query.items() if v is not None}
            if params:
                url += "?" + urllib.parse.urlencode(params)
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json",
                   "User-Agent": USER_AGENT}
        data = None
        if body is not None:
            data = json.dumps(body, default=_json_default).encode("utf-8")
            headers["Content-Type"] = "application/json"
        status, res_headers, parsed = exchange(method.upper(), url, headers, data, self.timeout)
        if res_headers.get("X-RateLimit-Limit") is not None:
            self.rate_limit = {"limit": _header_number(res_headers.get("X-RateLimit-Limit")),
                               "remaining": _header_number(res_headers.get("X-RateLimit-Remaining")),
                               "reset": _header_number(res_headers.get("X-RateLimit-Reset"))}
        if 200 <= status < 300:
            return parsed
        raise error_for(status, res_headers, parsed, f"{method.upper()} {path}")


class _Resource:
    def __init__(self, client: Client):
        self._client = client


class Applications(_Resource):
    def list(self, page: Optional[int] = None, per_page: Optional[int] = None) -> Json:
        """GET /applications: {"applications": [...], "total", "page", "per_page"}."""
        return self._client.request("GET", "/applications", query={"page": page, "per_page": per_page})

    def get(self, app_id: str) -> Json:
        """GET /applications/{id}: the application, with its last-24-hours `metrics`."""
        return self._client.request("GET", f"/applications/{_seg(app_id)}")

    def create(self, name: str, *, description: Optional[str] = None, environment: Optional[str] = None,
               status: Optional[str] = None, base_url: Optional[str] = None,
               config: Optional[Dict[str, Any]] = None, **extra: Any) -> Json:
        """POST /applications: the new application. Arguments left None are not sent
        (the server's defaults apply: environment "production", status "active")."""
        body = _drop_none({"name": name, "description": description, "environment": environment,
                           "status": status, "base_url": base_url, "config": config, **extra})
        return self._client.request("POST", "/applications", body=body)

    def update(self, app_id: str, **fields: Any) -> Json:
        """PATCH /applications/{id} with exactly the fields given (None is sent as null,
        e.g. description=None clears the description): the updated application."""
        return self._client.request("PATCH", f"/applications/{_seg(app_id)}", body=fields)

    def delete(self, app_id: str) -> None:
        """DELETE /applications/{id}: None."""
        return self._client.request("DELETE", f"/applications/{_seg(app_id)}")


class Metrics(_Resource):
    def get(self, app_id: str, *, metric: Optional[str] = None, start: Optional[Time] = None,
            end: Optional[Time] = None, granularity: Optional[str] = None, stat: Optional[str] = None) -> Json:
        """GET /applications/{id}/metrics: {"metric", "granularity", "data": [{"timestamp", "value"}]}.
        start/end: datetime (naive = UTC), ISO 8601 string or epoch milliseconds."""
        return self._client.request("GET", f"/applications/{_seg(app_id)}/metrics", query={
            "metric": metric, "start": start, "end": end, "granularity": granularity, "stat": stat})

    def send(self, app_id: str, points: Iterable[Dict[str, Any]]) -> Json:
        """POST /applications/{id}/metrics {"points": [...]}, each {"metric", "value",
        "timestamp"} (timestamp: datetime, ISO 8601 string or epoch ms): {"accepted", "batch_id"}."""
        return self._client.request("POST", f"/applications/{_seg(app_id)}/metrics", body={"points": list(points)})


class Alerts(_Resource):
    def create(self, app_id: str, name: str, condition: Dict[str, Any], actions: Iterable[Dict[str, Any]], *,
               enabled: Optional[bool] = None, **extra: Any) -> Json:
        """POST /applications/{id}/alerts: the new alert rule."""
        body = _drop_none({"name": name, "condition": condition, "actions": list(actions), "enabled": enabled,
                           **extra})
        return self._client.request("POST", f"/applications/{_seg(app_id)}/alerts", body=body)

    def list(self, app_id: str) -> Json:
        """GET /applications/{id}/alerts: {"alerts": [...]}."""
        return self._client.request("GET", f"/applications/{_seg(app_id)}/alerts")

    def delete(self, app_id: str, alert_id: str) -> None:
        """DELETE /applications/{id}/alerts/{alert_id}: None."""
        return self._client.request("DELETE", f"/applications/{_seg(app_id)}/alerts/{_seg(alert_id)}")


class Deployments(_Resource):
    def create(self, app_id: str, version: str, *, description: Optional[str] = None,
               changes: Optional[Iterable[str]] = None, config: Optional[Dict[str, Any]] = None,
               **extra: Any) -> Json:
        """POST /applications/{id}/deployments: the new deployment (status "pending")."""
        body = _drop_none({"version": version, "description": description,
                           "changes": list(changes) if changes is not None else None, "config": config, **extra})
        return self._client.request("POST", f"/applications/{_seg(app_id)}/deployments", body=body)

    def list(self, app_id: str) -> Json:
        """GET /applications/{id}/deployments: {"deployments": [...]}, newest first."""
        return self._client.request("GET", f"/applications/{_seg(app_id)}/deployments")


class Insights(_Resource):
    def list(self, app_id: str) -> Json:
        """GET /applications/{id}/insights: {"insights": [...]}."""
        return self._client.request("GET", f"/applications/{_seg(app_id)}/insights")


class Predictions(_Resource):
    def get(self, app_id: str, *, metric: Optional[str] = None, horizon: Optional[str] = None) -> Json:
        """GET /applications/{id}/predictions?metric&horizon: {"metric", "horizon", "predictions": [...]}."""
        return self._client.request("GET", f"/applications/{_seg(app_id)}/predictions",
                                    query={"metric": metric, "horizon": horizon})
