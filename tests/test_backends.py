"""tests/backends.py: which Kafka and ClickHouse the session uses, and how it says so.
The containers themselves need a Docker engine, which these machines lack."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import backends
from tests.backends import Backends, choose

ROOT = Path(__file__).resolve().parent.parent


def answers(result: bool):
    asked = []

    def probe():
        asked.append(True)
        return result
    probe.asked = asked
    return probe


def never():
    raise AssertionError("docker info must not be run when the environment decides")


@pytest.mark.parametrize("docker,expected", [
    (True, Backends("container", "container", "a Docker engine answered `docker info`")),
    (False, Backends("local", "local", "no Docker engine answered `docker info`")),
])
def test_nothing_set_asks_docker_once(docker, expected):
    probe = answers(docker)
    assert choose({}, probe) == expected
    assert probe.asked == [True]


@pytest.mark.parametrize("env,expected", [
    ({"SOPHRA_TEST_CONTAINERS": "1"}, Backends("container", "container", "SOPHRA_TEST_CONTAINERS=1")),
    ({"SOPHRA_TEST_CONTAINERS": "0"}, Backends("local", "local", "SOPHRA_TEST_CONTAINERS=0")),
    ({"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "CLICKHOUSE_URL": "http://c:8123", "SOPHRA_TEST_CONTAINERS": "1"},
     Backends("env", "env", "KAFKA_BOOTSTRAP_SERVERS and CLICKHOUSE_URL set")),
    ({"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "SOPHRA_TEST_CONTAINERS": "1"},
     Backends("env", "container", "SOPHRA_TEST_CONTAINERS=1")),
    ({"CLICKHOUSE_URL": "http://c:8123", "SOPHRA_TEST_CONTAINERS": "0"},
     Backends("local", "env", "SOPHRA_TEST_CONTAINERS=0")),
], ids=["forced-on", "forced-off", "both-given", "kafka-given", "clickhouse-given"])
def test_the_environment_decides_without_docker(env, expected):
    assert choose(env, never) == expected


@pytest.mark.parametrize("docker,expected", [
    (True, Backends("env", "container", "a Docker engine answered `docker info`")),
    (False, Backends("env", "local", "no Docker engine answered `docker info`")),
])
def test_one_service_given_the_other_follows_docker(docker, expected):
    assert choose({"KAFKA_BOOTSTRAP_SERVERS": "k:9092"}, answers(docker)) == expected


def test_empty_variables_count_as_unset():
    env = {"KAFKA_BOOTSTRAP_SERVERS": "", "CLICKHOUSE_URL": "", "SOPHRA_TEST_CONTAINERS": ""}
    assert choose(env, answers(False)) == Backends("local", "local", "no Docker engine answered `docker info`")


def test_a_misspelled_flag_is_refused():
    with pytest.raises(ValueError) as exc:
        choose({"SOPHRA_TEST_CONTAINERS": "yes"}, never)
    assert str(exc.value) == "SOPHRA_TEST_CONTAINERS must be 1 or 0, not 'yes'"


def test_describe():
    assert Backends("local", "local", "no Docker engine answered `docker info`").describe() == (
        "sophra test backends: Kafka: local broker (deploy/local_kafka.py); ClickHouse: chdb (in-process engine)"
        " (no Docker engine answered `docker info`)")
    assert Backends("container", "env", "SOPHRA_TEST_CONTAINERS=1").describe() == (
        "sophra test backends: Kafka: container apache/kafka:4.1.1; ClickHouse: CLICKHOUSE_URL"
        " (SOPHRA_TEST_CONTAINERS=1)")
    assert Backends("env", "container", "SOPHRA_TEST_CONTAINERS=1").describe().startswith(
        "sophra test backends: Kafka: KAFKA_BOOTSTRAP_SERVERS; ClickHouse: server container "
        "clickhouse/clickhouse-server:25.8")


@pytest.mark.parametrize("script,expected", [
    ("exit 0", True),
    ("echo 'Cannot connect to the Docker daemon' >&2; exit 1", False),
    ("exec /bin/sleep 5", False),  # timed out
    (None, False),       # no docker client at all
], ids=["engine", "client-only", "hangs", "absent"])
def test_docker_answers(tmp_path, monkeypatch, script, expected):
    if script is not None:
        docker = tmp_path / "docker"
        docker.write_text(f"#!/bin/sh\n[ \"$1\" = info ] || exit 2\n{script}\n")
        docker.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert backends.docker_answers(timeout=0.5) is expected


def test_exported_sets_and_restores(monkeypatch):
    monkeypatch.delenv("SOPHRA_PROBE_VAR", raising=False)
    with backends.exported("SOPHRA_PROBE_VAR", "a"):
        assert os.environ["SOPHRA_PROBE_VAR"] == "a"
        with backends.exported("SOPHRA_PROBE_VAR", "b"):
            assert os.environ["SOPHRA_PROBE_VAR"] == "b"
        assert os.environ["SOPHRA_PROBE_VAR"] == "a"
    assert "SOPHRA_PROBE_VAR" not in os.environ


@pytest.mark.parametrize("start,image", [
    (backends.kafka_container, "apache/kafka:4.1.1"), (backends.clickhouse_container, "clickhouse/clickhouse-server:25.8")])
def test_containers_without_an_engine_fail_with_the_way_out(tmp_path, monkeypatch, start, image):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(RuntimeError) as exc:
        with start():
            pass
    assert str(exc.value).startswith(f"cannot start {image}: Error while fetching server API version")
    assert str(exc.value).endswith(
        "Without a Docker engine, unset SOPHRA_TEST_CONTAINERS (or set it to 0) for the local broker and chdb")


def test_the_session_says_its_choice_once_under_q(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL")}
    env["SOPHRA_TEST_CONTAINERS"] = "0"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_backends.py::test_describe"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120).stdout
    line = ("sophra test backends: Kafka: local broker (deploy/local_kafka.py); "
            "ClickHouse: chdb (in-process engine) (SOPHRA_TEST_CONTAINERS=0)")
    assert out.splitlines()[0] == line
    assert out.count("sophra test backends:") == 1
    assert "1 passed" in out
