"""OTLP data points -> application metric points and agent vitals (docs/otlp.md).

Pure functions over a decoded ExportMetricsServiceRequest; nothing here writes. Every
candidate point goes through the /v1 metrics' own rule (app_metrics.check_point), and
a data point any part of which is refused is counted once as rejected, with its reason.

- Gauge and Sum: one point `<name>` per data point (int or double), at its time. Sums
  are stored as sent, delta or cumulative: no state is kept between requests.
- Histogram: `<name>.count`, `.sum`, `.min`, `.max` (each when present) and the
  estimates `.p50`, `.p95`, `.p99` from the bucket counts (linear within the bucket,
  narrowed by min and max when present). Summary: `.count`, `.sum` and its quantiles.
- Exponential histograms are refused (counted in partial_success): no estimate is
  defined for them here yet.
- Names: lower-cased, characters outside [a-z0-9_.] become `_`; the /v1 name rule then
  applies (at most 64 characters with the suffix).
- Attributes: resource `service.name` names the application. Data point attributes do
  not split series (application metrics have no labels): points of one name with
  different attributes are points of one metric. GenAI attributes pick the agent.
"""
import re
from dataclasses import dataclass, field

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from pipeline.metric_bounds import BUILTIN

from ..errors import ApiError
from ..routes.app_metrics import accepted_window, check_point

NO_RECORDED_VALUE = 1  # DataPointFlags.FLAG_NO_RECORDED_VALUE_MASK: a point that only marks a gap
QUANTILES = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
TOKEN_USAGE, OPERATION_DURATION = "gen_ai.client.token.usage", "gen_ai.client.operation.duration"
_NOT_NAME = re.compile(r"[^a-z0-9_.]")


def metric_name(otel_name: str) -> str:
    return _NOT_NAME.sub("_", otel_name.lower())


@dataclass
class AgentReport:
    """What one export says about one agent (gen_ai.agent.id, else gen_ai.agent.name)."""
    agent_id: str
    agent_name: str | None = None
    tokens: float | None = None  # gen_ai.client.token.usage: sum over its data points
    tokens_by_type: dict[str, float] = field(default_factory=dict)
    operations: int = 0  # gen_ai.client.operation.duration: count and sum (s)
    duration_s: float = 0.0
    sources: list[int] = field(default_factory=list)  # the data points it came from

    def vitals_body(self) -> dict:
        """POST /api/vitals's body for this report (validated there, by VitalsIn)."""
        metrics: dict = {}
        if self.tokens is not None:
            metrics["tokenConsumption"] = round(self.tokens)
            for kind, n in sorted(self.tokens_by_type.items()):
                metrics[f"{TOKEN_USAGE}.{kind}"] = round(n)
        if self.operations:
            metrics[OPERATION_DURATION] = self.duration_s / self.operations  # mean, seconds
            metrics["gen_ai.client.operation.count"] = self.operations
        body = {"agentId": self.agent_id, "metrics": metrics}
        if self.agent_name is not None:
            body["agentName"] = self.agent_name
        return body


@dataclass
class Export:
    total: int = 0  # data points in the request
    skipped: int = 0  # points flagged "no recorded value": nothing to store, nothing wrong
    points: dict[str, list[dict]] = field(default_factory=dict)  # service.name -> checked Avro points
    sources: dict[str, list[int]] = field(default_factory=dict)  # service.name -> data points behind them
    agents: dict[str, AgentReport] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)  # data point -> first reason

    def reject(self, source: int, reason: str) -> None:
        self.rejected.setdefault(source, reason)

    def message(self) -> str:
        if not self.rejected:
            return ""
        reasons = list(dict.fromkeys(self.rejected.values()))
        more = f" (and {len(reasons) - 3} other reasons)" if len(reasons) > 3 else ""
        return (f"{len(self.rejected)} of {self.total} data points rejected: " + "; ".join(reasons[:3]) + more)


def _strings(attributes) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in attributes if kv.value.WhichOneof("value") == "string_value"}


def quantile(q: float, bounds, counts, count: int, lo: float | None, hi: float | None) -> float:
    """The q-quantile estimated from explicit buckets: the bucket holding rank q*count,
    linearly between its bounds, narrowed to [min, max] when known. The first bucket's
    lower bound and the last one's upper bound are min and max, else the nearest bound."""
    rank, seen = q * count, 0
    for i, c in enumerate(counts):
        if c and seen + c >= rank:
            low = bounds[i - 1] if i > 0 else (lo if lo is not None else bounds[0])
            high = bounds[i] if i < len(bounds) else (hi if hi is not None else bounds[-1])
            if lo is not None:
                low, high = max(low, lo), max(high, lo)
            if hi is not None:
                low, high = min(low, hi), min(high, hi)
            return low + (high - low) * (rank - seen) / c
        seen += c
    return hi if hi is not None else bounds[-1]


def _histogram(base: str, dp) -> list[tuple[str, float]]:
    out = [(base + ".count", dp.count)]
    lo = dp.min if dp.HasField("min") else None
    hi = dp.max if dp.HasField("max") else None
    for attr, value in (("sum", dp.sum if dp.HasField("sum") else None), ("min", lo), ("max", hi)):
        if value is not None:
            out.append((f"{base}.{attr}", value))
    counts, bounds = list(dp.bucket_counts), list(dp.explicit_bounds)
    if counts and len(counts) != len(bounds) + 1:
        raise ValueError(f"has {len(counts)} bucket_counts for {len(bounds)} explicit_bounds (needs one more)")
    if dp.count and bounds:
        out += [(f"{base}.{suffix}", quantile(q, bounds, counts, dp.count, lo, hi)) for q, suffix in QUANTILES]
    return out


def _summary(base: str, dp) -> list[tuple[str, float]]:
    out = [(base + ".count", dp.count), (base + ".sum", dp.sum)]
    for qv in dp.quantile_values:
        suffix = {0.0: "min", 1.0: "max"}.get(qv.quantile) or "p" + f"{qv.quantile * 100:g}".replace(".", "_")
        out.append((f"{base}.{suffix}", qv.value))
    return out


def map_export(request: ExportMetricsServiceRequest, now_ms: int) -> Export:
    """Every data point of `request` checked and sorted into services and agents."""
    out = Export()
    oldest, newest = accepted_window(now_ms)
    ranges = dict(BUILTIN)
    source = -1
    for rm in request.resource_metrics:
        resource = _strings(rm.resource.attributes)
        service = resource.get("service.name")
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind is None:
                    continue
                base = metric_name(m.name)
                where = f"{m.name}.dataPoints"
                for i, dp in enumerate(getattr(m, kind).data_points):
                    source += 1
                    out.total += 1
                    if dp.flags & NO_RECORDED_VALUE:
                        out.skipped += 1
                        continue
                    if not service:
                        out.reject(source, "a resource without a service.name attribute (it names the application)")
                        continue
                    try:
                        if kind in ("gauge", "sum"):
                            which = dp.WhichOneof("value")
                            if which is None:
                                raise ValueError("has no value (neither as_int nor as_double)")
                            values = [(base, getattr(dp, which))]
                        elif kind == "histogram":
                            values = _histogram(base, dp)
                        elif kind == "summary":
                            values = _summary(base, dp)
                        else:
                            raise ValueError("is an exponential histogram, which is not supported (use explicit "
                                             "bucket histograms)")
                    except ValueError as exc:
                        out.reject(source, f"{where}[{i}]: {exc}")
                        continue
                    ms = dp.time_unix_nano // 1_000_000
                    try:
                        checked = [check_point(name, float(v), ms, ranges, oldest, newest, where, i)
                                   for name, v in values]
                    except ApiError as exc:
                        out.reject(source, exc.body["message"])
                        continue
                    out.points.setdefault(service, []).extend(checked)
                    out.sources.setdefault(service, []).extend([source] * len(checked))
                    if kind == "histogram" and m.name in (TOKEN_USAGE, OPERATION_DURATION):
                        _genai(out, m.name, dp, {**resource, **_strings(dp.attributes)}, source)
    return out


def _genai(out: Export, name: str, dp, attributes: dict[str, str], source: int) -> None:
    agent_id = attributes.get("gen_ai.agent.id") or attributes.get("gen_ai.agent.name")
    if not agent_id:
        return
    report = out.agents.get(agent_id)
    if report is None:
        report = out.agents[agent_id] = AgentReport(agent_id)
    if report.agent_name is None and attributes.get("gen_ai.agent.name"):
        report.agent_name = attributes["gen_ai.agent.name"]
    report.sources.append(source)
    if name == TOKEN_USAGE:
        report.tokens = (report.tokens or 0.0) + dp.sum
        kind = attributes.get("gen_ai.token.type")
        if kind:
            report.tokens_by_type[kind] = report.tokens_by_type.get(kind, 0.0) + dp.sum
    else:
        report.operations += dp.count
        report.duration_s += dp.sum
