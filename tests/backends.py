"""Which Kafka and ClickHouse a test session runs on, and the containers for the server path.

Per service, in this order:
1. ``KAFKA_BOOTSTRAP_SERVERS`` / ``CLICKHOUSE_URL`` set: that cluster or server, as always.
2. ``SOPHRA_TEST_CONTAINERS=1``: containers (without a Docker engine the integration
   tests then error, saying so); ``=0``: the local parts.
3. Otherwise containers if ``docker info`` succeeds, else the local parts: the broker from
   the cached jars (deploy/local_kafka.py) and chdb, the in-process engine.

Containers are testcontainers' Kafka and ClickHouse modules on the official images, the
same tags as docker-compose.yml, so the suite runs the production shape: a broker in its
own JVM and a ClickHouse *server* spoken to over HTTP. They start on the first test that
needs them, and the session reaches them through the same two variables a user would set.
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

ROOT = Path(__file__).resolve().parent.parent

KAFKA_IMAGE = "apache/kafka:4.1.1"                   # deploy/local_kafka.py's KAFKA_VERSION
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"  # an LTS release

DESCRIBE = {
    ("kafka", "env"): "Kafka: KAFKA_BOOTSTRAP_SERVERS",
    ("kafka", "container"): f"Kafka: container {KAFKA_IMAGE}",
    ("kafka", "local"): "Kafka: local broker (deploy/local_kafka.py)",
    ("clickhouse", "env"): "ClickHouse: CLICKHOUSE_URL",
    ("clickhouse", "container"): f"ClickHouse: server container {CLICKHOUSE_IMAGE}",
    ("clickhouse", "local"): "ClickHouse: chdb (in-process engine)",
}


@dataclass(frozen=True)
class Backends:
    kafka: str       # "env" | "container" | "local"
    clickhouse: str  # "env" | "container" | "local"
    reason: str

    def describe(self) -> str:
        return (f"sophra test backends: {DESCRIBE['kafka', self.kafka]}; "
                f"{DESCRIBE['clickhouse', self.clickhouse]} ({self.reason})")


def choose(env: Mapping[str, str], docker_answers: Callable[[], bool]) -> Backends:
    """The session's backends from its environment; ``docker_answers`` is asked only when
    it decides something."""
    given = {"kafka": bool(env.get("KAFKA_BOOTSTRAP_SERVERS")),
             "clickhouse": bool(env.get("CLICKHOUSE_URL"))}
    flag = env.get("SOPHRA_TEST_CONTAINERS", "")
    if all(given.values()):
        use_containers, reason = False, "KAFKA_BOOTSTRAP_SERVERS and CLICKHOUSE_URL set"
    elif flag == "1":
        use_containers, reason = True, "SOPHRA_TEST_CONTAINERS=1"
    elif flag == "0":
        use_containers, reason = False, "SOPHRA_TEST_CONTAINERS=0"
    elif flag:
        raise ValueError(f"SOPHRA_TEST_CONTAINERS must be 1 or 0, not {flag!r}")
    elif docker_answers():
        use_containers, reason = True, "a Docker engine answered `docker info`"
    else:
        use_containers, reason = False, "no Docker engine answered `docker info`"
    fallback = "container" if use_containers else "local"
    return Backends(kafka="env" if given["kafka"] else fallback,
                    clickhouse="env" if given["clickhouse"] else fallback, reason=reason)


def docker_answers(timeout: float = 20) -> bool:
    """Whether `docker info` succeeds: a client alone (no engine, or no right to its
    socket) fails it."""
    try:
        return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def exported(name: str, value: str) -> Iterator[str]:
    """``value`` in os.environ[name] for the block: the session then reaches the container
    exactly as a user's exported variable reaches a cluster."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield value
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


# --- The containers (never started on machines without a Docker engine) ---------------

def _apache_kafka_container():
    """testcontainers' KafkaContainer, adapted to the official apache/kafka image.

    The module's start script launches Confluent's images; the official image starts with
    /etc/kafka/docker/run and reads its settings from KAFKA_* variables. As in the module,
    the container waits for a script that exports the advertised listener (the mapped
    port is known only once the container runs), then starts the broker.
    """
    from testcontainers.community.kafka import KafkaContainer

    class ApacheKafkaContainer(KafkaContainer):
        def configure(self) -> None:
            self.env.pop("KAFKA_BROKER_ID", None)  # KRaft: KAFKA_NODE_ID below
            self.with_envs(
                CLUSTER_ID=self.cluster_id,
                KAFKA_NODE_ID="1",
                KAFKA_PROCESS_ROLES="broker,controller",
                KAFKA_LISTENERS=f"PLAINTEXT://0.0.0.0:{self.port},BROKER://0.0.0.0:9093,CONTROLLER://0.0.0.0:9094",
                KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
                KAFKA_INTER_BROKER_LISTENER_NAME="BROKER",
                KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
                KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9094",
                # As deploy/local_kafka.py configures the local broker: one node, and the
                # application creates its topics.
                KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
                KAFKA_NUM_PARTITIONS="1",
                KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
                KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="1",
                KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
                KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
                KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR="1",
                KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR="1",
                KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
                # A full run leaves about 15,000 partitions (see conftest.kafka_bootstrap).
                KAFKA_HEAP_OPTS="-Xmx2g -Xms256m",
            )
            self.wait_for = re.compile(r".*Kafka Server started.*")

        def start(self, timeout: int = 120):  # the module's 30 s is short on a loaded machine
            return super().start(timeout)

        def tc_start(self) -> None:
            listeners = f"PLAINTEXT://{self.get_bootstrap_server()},BROKER://$(hostname -i | cut -d' ' -f1):9093"
            script = f"export KAFKA_ADVERTISED_LISTENERS={listeners}\nexec /etc/kafka/docker/run\n"
            self.create_file(script.encode(), self.TC_START_SCRIPT)

    return ApacheKafkaContainer(KAFKA_IMAGE, port=9092)


@contextlib.contextmanager
def _running(make, image: str):
    """Start ``make()``'s container for the block; a missing engine fails with a reason."""
    from docker.errors import DockerException

    try:
        container = make()
        container.start()
    except DockerException as e:
        raise RuntimeError(f"cannot start {image}: {e}. Without a Docker engine, unset "
                           "SOPHRA_TEST_CONTAINERS (or set it to 0) for the local broker and chdb") from e
    try:
        yield container
    finally:
        container.stop()


@contextlib.contextmanager
def kafka_container() -> Iterator[str]:
    """A broker in the official image; yields its bootstrap address."""
    with _running(_apache_kafka_container, KAFKA_IMAGE) as kafka:
        yield kafka.get_bootstrap_server()


def _clickhouse_server():
    from testcontainers.community.clickhouse import ClickHouseContainer

    server = ClickHouseContainer(CLICKHOUSE_IMAGE, username="sophra", password="sophra", dbname="default")
    # Bounded system logs, as docker-compose.yml mounts them.
    server.with_volume_mapping(str(ROOT / "deploy" / "clickhouse" / "system_logs.xml"),
                               "/etc/clickhouse-server/config.d/system_logs.xml", "ro")
    # The suite makes a database per test and the SQL tests create views with SQL SECURITY
    # DEFINER, so the user may manage access, as an operator's would.
    return server.with_env("CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT", "1")


@contextlib.contextmanager
def clickhouse_container() -> Iterator[str]:
    """A ClickHouse server in the official image; yields its HTTP URL (as CLICKHOUSE_URL)."""
    with _running(_clickhouse_server, CLICKHOUSE_IMAGE) as server:
        yield f"http://sophra:sophra@{server.get_container_host_ip()}:{server.get_exposed_port(8123)}"
