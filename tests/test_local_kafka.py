"""Real single-node Kafka broker run by deploy/local_kafka.py (no Docker, no mocks of Kafka)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from deploy import local_kafka
from deploy.local_kafka import KAFKA_VERSION, LocalKafka, LocalKafkaError, fetch

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gone(pid: int) -> bool:
    """True when no such process exists, or only an unreaped zombie remains."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def _wait_gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.1)
    return False


def _create_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(30)


def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    errors: list[object] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(topic, key=key, value=value, on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(30) == 0
    assert errors == [None]


def _consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[tuple[bytes, bytes, int]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[tuple[bytes, bytes, int]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.key(), msg.value(), msg.offset()))
        # nothing beyond what is expected
        extra = consumer.poll(1.0)
        assert extra is None or extra.error() is not None, extra.value()
    finally:
        consumer.close()
    return got


def _fake_mvn(bin_dir: Path, body: str) -> None:
    """A `mvn` stand-in on PATH; receives the same arguments as the real one."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "mvn"
    script.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in -DoutputDirectory=*) OUT="${a#-DoutputDirectory=}";; esac; done\n'
        'mkdir -p "$OUT"\n' + body
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


# --------------------------------------------------------------------------- fetch


def test_default_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SOPHRA_CACHE_DIR", str(tmp_path / "c"))
    assert local_kafka.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SOPHRA_CACHE_DIR")
    assert local_kafka.default_cache_dir() == Path.home() / ".cache" / "sophra"


def test_fetch_is_idempotent(monkeypatch):
    libs = fetch()  # the shared cache (cold once per machine, then warm)
    install = local_kafka.default_cache_dir() / f"kafka-{KAFKA_VERSION}"
    assert libs == install / "libs"
    assert (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()
    marker = install / "COMPLETE"
    before = marker.stat().st_mtime_ns

    def no_maven(*args, **kwargs):
        raise AssertionError(f"second fetch ran a process: {args!r}")

    monkeypatch.setattr(local_kafka.subprocess, "run", no_maven)
    started = time.monotonic()
    assert fetch() == libs
    assert time.monotonic() - started < 1.0
    assert marker.stat().st_mtime_ns == before


def test_fetch_cold_into_empty_cache(tmp_path):
    cache = tmp_path / "cache"
    libs = fetch(cache)
    assert libs == cache / f"kafka-{KAFKA_VERSION}" / "libs"
    assert (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()
    assert (libs / "log4j-core-2.24.3.jar").is_file()
    assert (libs / "log4j-slf4j2-impl-2.24.3.jar").is_file()
    assert (libs.parent / "COMPLETE").read_text() == f"kafka {KAFKA_VERSION}\n"
    # only the finished install (and the lock file) remain: no temp folder
    assert sorted(p.name for p in cache.iterdir()) == [f".kafka-{KAFKA_VERSION}.lock", f"kafka-{KAFKA_VERSION}"]


def test_failed_fetch_leaves_no_half_cache_and_next_fetch_recovers(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    # Maven dies half-way: one jar written, then a failure.
    _fake_mvn(bin_dir, 'echo partial > "$OUT/half.jar"\necho "Could not resolve dependencies" \nexit 3\n')
    with pytest.raises(LocalKafkaError, match=r"Maven failed \(exit 3\)[\s\S]*Could not resolve dependencies"):
        fetch(cache)
    assert sorted(p.name for p in cache.iterdir()) == [f".kafka-{KAFKA_VERSION}.lock"]

    # A killed fetch leaves its temp folder behind; the next fetch clears it.
    leftover = cache / f".kafka-{KAFKA_VERSION}.tmp-killed"
    (leftover / "libs").mkdir(parents=True)
    _fake_mvn(bin_dir, f'echo jar > "$OUT/kafka_2.13-{KAFKA_VERSION}.jar"\nexit 0\n')
    libs = fetch(cache)
    assert libs == cache / f"kafka-{KAFKA_VERSION}" / "libs"
    assert sorted(p.name for p in libs.iterdir()) == [f"kafka_2.13-{KAFKA_VERSION}.jar"]
    assert sorted(p.name for p in cache.iterdir()) == [f".kafka-{KAFKA_VERSION}.lock", f"kafka-{KAFKA_VERSION}"]
    # the pom copy documents what the cache was built from
    assert (libs.parent / "pom.xml").read_bytes() == local_kafka.POM_PATH.read_bytes()


def test_fetch_without_maven_says_what_to_install(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(LocalKafkaError, match=r"`mvn` not found\. Apache Maven 3 is required"):
        fetch(tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_fetch_passes_version_as_maven_property(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    _fake_mvn(bin_dir, f'echo "$@" > "{tmp_path}/args"\necho jar > "$OUT/kafka_2.13-{KAFKA_VERSION}.jar"\n')
    fetch(tmp_path / "cache")
    args = (tmp_path / "args").read_text().split()
    assert f"-Dkafka.version={KAFKA_VERSION}" in args
    assert "dependency:copy-dependencies" in args
    assert "-DincludeScope=runtime" in args
    assert "${kafka.version}" in local_kafka.POM_PATH.read_text()
    assert KAFKA_VERSION not in local_kafka.POM_PATH.read_text()


# --------------------------------------------------------------------------- broker


def test_broker_roundtrip_stop_and_restart_keeps_data(tmp_path):
    data = tmp_path / "kafka"
    topic = "sophra.test.events"

    kafka = LocalKafka(data)
    with kafka as k:
        bootstrap = k.bootstrap_servers
        assert bootstrap == f"127.0.0.1:{k.port}"
        assert k.running
        first_pid = k.pid
        config_before = (data / "server.properties").read_text()
        with pytest.raises(LocalKafkaError, match="in use by another running LocalKafka broker"):
            LocalKafka(data).start()
        assert (data / "server.properties").read_text() == config_before
        _create_topic(bootstrap, topic)
        _produce(bootstrap, topic, b"agent-1", b'{"event":"hello","n":1}')
        assert _consume_all(bootstrap, topic, expected=1) == [(b"agent-1", b'{"event":"hello","n":1}', 0)]
    # context exit stopped it and reaped the process
    assert not kafka.running
    with pytest.raises(ProcessLookupError):
        os.kill(first_pid, 0)
    assert (data / "kraft-logs" / ".kafka_cleanshutdown").is_file()
    assert (data / "kraft-logs" / "meta.properties").is_file()
    cluster_id = (data / "kraft-logs" / "meta.properties").read_text()

    # restart on the same data dir with other (explicit) ports: nothing is reformatted
    port = _free_port()
    while port == kafka.port:
        port = _free_port()
    again = LocalKafka(data, port=port)
    try:
        assert again.start() == f"127.0.0.1:{port}"
        assert again.pid != first_pid
        admin = AdminClient({"bootstrap.servers": again.bootstrap_servers})
        md = admin.list_topics(timeout=10)
        assert topic in md.topics
        assert sorted(md.topics[topic].partitions) == [0]
        consumer = Consumer({"bootstrap.servers": again.bootstrap_servers, "group.id": "wm"})
        try:
            assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 1)
        finally:
            consumer.close()
        assert _consume_all(again.bootstrap_servers, topic, expected=1) == [
            (b"agent-1", b'{"event":"hello","n":1}', 0)
        ]
        # auto-creation is off: the app must create its topics explicitly
        assert "not.created" not in admin.list_topics(timeout=10).topics
        second_pid = again.pid
    finally:
        again.stop()
    assert (data / "kraft-logs" / "meta.properties").read_text() == cluster_id
    with pytest.raises(ProcessLookupError):
        os.kill(second_pid, 0)
    again.stop()  # idempotent
    again.stop()
    assert not again.running
    config = (data / "server.properties").read_text()
    assert "auto.create.topics.enable=false\n" in config
    assert f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:" in config


def test_stop_before_start_is_a_no_op(tmp_path):
    k = LocalKafka(tmp_path / "never")
    k.stop()
    assert k.pid is None
    assert not k.running
    with pytest.raises(LocalKafkaError, match="only after start"):
        k.bootstrap_servers


def test_start_failure_raises_with_broker_log_tail(tmp_path):
    # A data dir formatted for another node: the broker refuses it and exits.
    data = tmp_path / "kafka"
    (data / "kraft-logs").mkdir(parents=True)
    (data / "kraft-logs" / "meta.properties").write_text(
        "version=1\ncluster.id=oRScWvgMRzOmTCE_XLBM6A\nnode.id=2\ndirectory.id=kk4LVoe1Sw6SBbW1KqHs7A\n"
    )
    k = LocalKafka(data)
    with pytest.raises(LocalKafkaError) as exc:
        k.start(timeout=60)
    message = str(exc.value)
    assert message.startswith(
        f"Kafka broker exited with code 1 during startup; last lines of {data / 'broker.log'}:\n"
    )
    assert "Stored node id 2 doesn't match previous node id 1" in message
    assert "\tat " not in message  # stack frames are left out
    assert not k.running
    with pytest.raises(ProcessLookupError):
        os.kill(k.pid, 0)
    # the failed start released the data dir: a later start may try again
    with pytest.raises(LocalKafkaError, match="Stored node id 2"):
        LocalKafka(data).start(timeout=60)


def test_port_in_use_fails_fast_without_launching(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        k = LocalKafka(tmp_path / "kafka", port=port)
        with pytest.raises(LocalKafkaError, match=rf"^127\.0\.0\.1:{port} is already in use"):
            k.start(timeout=60)
    assert k.pid is None
    assert not (tmp_path / "kafka" / "kraft-logs").exists()


def test_broker_dies_with_its_parent(tmp_path):
    """PR_SET_PDEATHSIG: SIGKILL the supervising Python process, the broker follows."""
    code = (
        "import sys, time\n"
        "from deploy.local_kafka import LocalKafka\n"
        f"k = LocalKafka({str(tmp_path / 'kafka')!r})\n"
        "k.start()\n"
        "print(k.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        broker_pid = int(parent.stdout.readline())
        assert not _gone(broker_pid)
        parent.kill()
        parent.wait(10)
        assert _wait_gone(broker_pid, 30)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


# --------------------------------------------------------------------------- CLI


def test_cli_fetch_prints_libs_dir(capsys):
    assert local_kafka.main(["fetch"]) == 0
    out = capsys.readouterr().out
    assert out == f"{local_kafka.default_cache_dir() / f'kafka-{KAFKA_VERSION}' / 'libs'}\n"


def test_cli_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        local_kafka.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "fetch" in out and "start" in out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_start_runs_until_signal_then_stops_broker(tmp_path, signum):
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.local_kafka", "start", "--data-dir", str(tmp_path / "kafka"), "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = proc.stdout.readline()
        assert ready.startswith(f"kafka {KAFKA_VERSION} ready at 127.0.0.1:"), ready + proc.stderr.read()
        broker_pid = int(ready.split("(pid ")[1].split(",")[0])
        bootstrap_line = proc.stdout.readline()
        assert bootstrap_line.startswith("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:")
        bootstrap = bootstrap_line.strip().split("=", 1)[1]
        assert ready.startswith(f"kafka {KAFKA_VERSION} ready at {bootstrap} ")
        assert AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).brokers
        proc.send_signal(signum)
        assert proc.wait(60) == 0
        assert f"stopping kafka (signal {int(signum)})" in proc.stderr.read()
        assert _wait_gone(broker_pid, 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
