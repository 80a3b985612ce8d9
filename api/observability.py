"""What an operator watches: Prometheus metrics of the api process (prometheus-client,
one registry per app) and the readiness checks behind /readyz (docs/operations.md).

- `sophra_http_requests_total{method,route,status}` and
  `sophra_http_request_duration_seconds{method,route}`: every response, by route
  template (`/api/agents/{agent_id}/vitals`), never by raw path, so no id or account
  becomes a label.
- `sophra_kafka_produce_seconds{outcome}`: produce to acknowledgement of api writes.
- `sophra_sink_rows_total`, `sophra_sink_dead_letters_total`, `sophra_sink_skipped_total`:
  the embedded sink of this process (absent when the sink runs elsewhere).
- `sophra_consumer_lag_records{group,topic}` for the sink, the worker and the notifier,
  and `sophra_dead_letters{topic}` (records ever written to each dead-letter topic): read
  from Kafka's admin API every `SOPHRA_LAG_INTERVAL_S` by a background task, so a scrape
  never waits on Kafka; `sophra_lag_read_age_seconds` says how old the reading is.
"""
import asyncio
import logging
import time

from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

from pipeline.lag import group_lag, partitions_of, produced
from pipeline.topics import RECORD_TOPICS, dlq
from sophra.settings import Settings

log = logging.getLogger("sophra.api.observability")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
ADMIN_TIMEOUT_S = 2.0  # each admin call of a readiness check or a lag reading


class _SinkCollector:
    """The embedded sink's counters, read at scrape time from the sink itself."""

    def __init__(self, sink):
        self.sink = sink

    def collect(self):
        for name, doc, value in (
                ("sophra_sink_rows", "Rows the embedded sink inserted into ClickHouse", self.sink.inserted_rows),
                ("sophra_sink_dead_letters", "Records the embedded sink sent to a dead-letter topic",
                 self.sink.dead_letters),
                ("sophra_sink_skipped", "Re-read records the embedded sink skipped: their rows had landed",
                 self.sink.skipped)):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], value)
            yield family


class Observability:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.registry = r = CollectorRegistry()
        self.requests = Counter("sophra_http_requests", "HTTP responses, by route template and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("sophra_http_request_duration_seconds", "Time to answer, by route template",
                                 ["method", "route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.produce = Histogram("sophra_kafka_produce_seconds", "Produce to acknowledgement of api writes",
                                 ["outcome"], buckets=_LATENCY_BUCKETS, registry=r)
        self.lag = Gauge("sophra_consumer_lag_records", "Records on a group's topics it has not committed yet",
                         ["group", "topic"], registry=r)
        self.dead_letters = Gauge("sophra_dead_letters", "Records ever written to a dead-letter topic",
                                  ["topic"], registry=r)
        self.lag_age = Gauge("sophra_lag_read_age_seconds", "Seconds since lags were last read from Kafka",
                             registry=r)
        self.lag_age.set_function(lambda: time.monotonic() - self._lag_read_at if self._lag_read_at else -1)
        self._lag_read_at = 0.0
        self._admin: AdminClient | None = None
        self._task: asyncio.Task | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, bootstrap: str, sink=None) -> "Observability":
        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        if sink is not None:
            self.registry.register(_SinkCollector(sink))
        self._task = asyncio.create_task(self._read_lags_forever(), name="consumer-lags")
        return self

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    # -- consumer lags -------------------------------------------------------------------
    @property
    def record_topics(self) -> list[str]:
        return [self.settings.topic(t.name) for t in RECORD_TOPICS]

    def sink_lag(self) -> int:
        """Records on the record topics the sink has not committed (blocking)."""
        return group_lag(self._admin, self.settings.sink_group, self.record_topics, ADMIN_TIMEOUT_S).total

    def kafka_answers(self) -> int:
        """Partitions of the record topics the broker reports (blocking; raises if it can't)."""
        return len(partitions_of(self._admin, self.record_topics, ADMIN_TIMEOUT_S))

    def _read_lags(self) -> None:
        s = self.settings
        groups = ((s.sink_group, self.record_topics), (s.worker_id, None), (s.notifier_group, None))
        for group, topics in groups:
            for topic, lag in group_lag(self._admin, group, topics, ADMIN_TIMEOUT_S).by_topic.items():
                self.lag.labels(group, topic).set(lag)
        for topic, count in produced(self._admin, [s.topic(dlq(t).name) for t in RECORD_TOPICS], ADMIN_TIMEOUT_S).items():
            self.dead_letters.labels(topic).set(count)
        self._lag_read_at = time.monotonic()

    async def _read_lags_forever(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._read_lags)
            except Exception as exc:  # Kafka away: keep the last reading, its age says how old it is
                log.warning("reading consumer lags failed: %s", exc)
            await asyncio.sleep(self.settings.lag_interval_s)


class MetricsMiddleware:
    """Counts and times every HTTP response by its route template (outermost, so the
    body cap's and the quota's own answers are counted too)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before starting a response

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            obs: Observability = scope["app"].state.observability
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            obs.requests.labels(scope["method"], template, str(status)).inc()
            obs.latency.labels(scope["method"], template).observe(time.perf_counter() - started)
