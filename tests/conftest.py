"""Shared fixtures: one real broker and one ClickHouse engine per session, and factories
that give each test its own topics (prefix), consumer groups and ClickHouse database,
so tests never see each other's data. Which broker and engine: tests/backends.py."""
import contextlib
import os
import socket
import threading
import time
import uuid

import httpx
import pytest
import uvicorn

from sophra.settings import Settings
from tests import backends

BACKENDS = pytest.StashKey[backends.Backends]()


def pytest_configure(config):
    config.stash[BACKENDS] = backends.choose(os.environ, backends.docker_answers)


def pytest_sessionstart(session):
    # Said once, also under -q (which hides pytest_report_header's lines).
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(session.config.stash[BACKENDS].describe())


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory, pytestconfig):
    chosen = pytestconfig.stash[BACKENDS].kafka
    if chosen == "env":
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    if chosen == "container":
        with backends.kafka_container() as bootstrap, backends.exported("KAFKA_BOOTSTRAP_SERVERS", bootstrap):
            yield bootstrap
        return
    from deploy.local_kafka import LocalKafka, fetch

    fetch()
    # Every test makes its topics under a fresh prefix, so the one broker of a full run holds
    # about 15,000 partitions by its end: at the default 512m heap it ran out of memory
    # (OutOfMemoryError, ExitOnOutOfMemoryError) in the last minute of a full run.
    with LocalKafka(tmp_path_factory.mktemp("kafka"), heap="2g") as kafka:
        yield kafka.bootstrap_servers


@pytest.fixture(scope="session")
def clickhouse_dsn(tmp_path_factory, pytestconfig):
    chosen = pytestconfig.stash[BACKENDS].clickhouse
    if chosen == "env":
        yield os.environ["CLICKHOUSE_URL"]
        return
    if chosen == "container":
        with backends.clickhouse_container() as url, backends.exported("CLICKHOUSE_URL", url):
            yield url
        return
    # chdb opens one data folder per process, so the session shares one and tests
    # isolate by database.
    yield f"chdb://{tmp_path_factory.mktemp('clickhouse')}"


@pytest.fixture
def make_settings(kafka_bootstrap, clickhouse_dsn, tmp_path):
    return lambda **overrides: test_settings(overrides.pop("data_dir", tmp_path), kafka_bootstrap, clickhouse_dsn,
                                             **overrides)


def test_settings(data_dir, kafka_bootstrap: str, clickhouse_dsn: str, **overrides) -> Settings:
    """Settings of their own for a test or a module: fresh topic prefix, groups and database."""
    tag = uuid.uuid4().hex[:10]
    values = dict(data_dir=data_dir, kafka_bootstrap_servers=kafka_bootstrap, clickhouse_url=clickhouse_dsn,
                  clickhouse_database=f"test_{tag}", topic_prefix=f"t{tag}.", sink_group=f"sink-{tag}",
                  worker_id=f"worker-{tag}", sink_batch_ms=100,
                  # tests make many accounts from one address; the limits' own tests set them
                  signup_per_address=10_000, signup_per_email=10_000)
    return Settings(**{**values, **overrides})


test_settings.__test__ = False  # a helper, not a test for pytest to collect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningApi:
    """The real api app served by uvicorn on a loopback port, in a background thread."""

    def __init__(self, settings: Settings, run_sink: bool = True):
        from api.main import create_app

        self.settings = settings
        self.app = create_app(settings, settings.kafka_bootstrap_servers, run_sink=run_sink)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        # Start-up joins consumer groups and replays config topics: seconds normally, but
        # a loaded 2-core machine has been seen past a minute.
        deadline = time.monotonic() + 150
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("api did not start: its start-up failed (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError("api did not start within 150 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)

    def new_key(self, email: str | None = None) -> str:
        """Issue the first key of a new account (or of `email`'s account)."""
        res = httpx.post(f"{self.url}/api/keys", json={"email": email or f"{uuid.uuid4().hex[:12]}@test.sophra"})
        assert res.status_code == 201, res.text
        return res.json()["key"]

    @property
    def key(self) -> str:
        """This api's default test key, issued on first use."""
        if not hasattr(self, "_key"):
            self._key = self.new_key()
        return self._key

    def client(self, key: str | None = "default") -> httpx.Client:
        key = self.key if key == "default" else key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


@pytest.fixture
def running_api(make_settings):
    started = []

    def start(**overrides) -> RunningApi:
        api = RunningApi(make_settings(**overrides)).__enter__()
        started.append(api)
        return api

    yield start
    for api in started:
        api.__exit__()


@contextlib.contextmanager
def silent_server():
    """The base URL of a port that takes connections and never answers (SDK timeouts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def cap_topic(bootstrap: str, topic: str, max_bytes: int) -> None:
    """Make the broker refuse every record of `topic` bigger than `max_bytes`, for good: a
    real Kafka failure on one topic (the api answers 503 for it) while the others work."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", str(max_bytes), incremental_operation=AlterConfigOpType.SET)])
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until the futures are done
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def eventually(fn, timeout: float = 10, interval: float = 0.05):
    """Poll `fn` until it returns a truthy value; return it, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


HOUR_MS = 3_600_000


def clear_of_the_hour_end(seconds: float) -> None:
    """Wait for the next UTC hour if this one ends within `seconds`, so a test that counts
    per hour (quotas, hourly buckets) stays in one hour."""
    left = (HOUR_MS - time.time_ns() // 1_000_000 % HOUR_MS) / 1000
    if left < seconds:
        time.sleep(left + 0.5)


def next_hour() -> int:
    """Epoch seconds of the next full UTC hour."""
    now = time.time_ns() // 1_000_000
    return (now - now % HOUR_MS + HOUR_MS) // 1000
