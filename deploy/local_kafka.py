"""A real single-node Apache Kafka broker (KRaft, broker+controller) without Docker.

The broker jars are fetched once with Maven (``fetch``) into a cache outside the
repository, then ``LocalKafka`` runs ``kafka.Kafka`` with the system Java as a
child process bound to loopback only.

    from deploy.local_kafka import LocalKafka

    with LocalKafka("data/kafka") as kafka:
        print(kafka.bootstrap_servers)      # "127.0.0.1:<port>"

Command line (also ``sophra kafka ...``)::

    python -m deploy.local_kafka fetch
    python -m deploy.local_kafka start --data-dir data/kafka --port 9092

Requirements: Java 17+ (``java``) to run the broker, Maven 3 (``mvn``) for the
one-time download of the jars.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Sequence

from sophra.processes import spawn, terminate

__all__ = [
    "KAFKA_VERSION",
    "LocalKafka",
    "LocalKafkaError",
    "default_cache_dir",
    "fetch",
    "is_fetched",
    "main",
]

KAFKA_VERSION = "4.1.1"

_HERE = Path(__file__).resolve().parent
POM_PATH = _HERE / "kafka" / "pom.xml"
LOG4J2_CONFIG = _HERE / "kafka" / "log4j2.properties"

_MARKER = "COMPLETE"  # written last inside the temp folder, before the rename
_SERVER_JAR = f"kafka_2.13-{KAFKA_VERSION}.jar"
_LOG_DIR_NAME = "kraft-logs"  # log.dirs (and metadata log) inside data_dir
_HOST = "127.0.0.1"

_INSTALL_HINT = {
    "java": "Java 17 or newer is required to run the Kafka broker: install a JDK/JRE "
    "(e.g. `apt-get install openjdk-17-jre-headless`, `brew install openjdk@17`) "
    "and put `java` on PATH or set JAVA_HOME.",
    "mvn": "Apache Maven 3 is required once, to download the Kafka broker jars: "
    "install it (e.g. `apt-get install maven`, `brew install maven`) and put `mvn` on PATH.",
}


class LocalKafkaError(RuntimeError):
    """The local broker could not be fetched, started or stopped."""


# --------------------------------------------------------------------------- fetch


def default_cache_dir() -> Path:
    """``$SOPHRA_CACHE_DIR`` if set, else ``~/.cache/sophra`` (never inside the repo)."""
    env = os.environ.get("SOPHRA_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "sophra"


def _which(tool: str) -> str:
    if tool == "java":
        java_home = os.environ.get("JAVA_HOME")
        if java_home:
            candidate = Path(java_home) / "bin" / "java"
            if os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which(tool)
    if not found:
        raise LocalKafkaError(f"`{tool}` not found. {_INSTALL_HINT[tool]}")
    return found


def _is_complete(install_dir: Path) -> bool:
    return (install_dir / _MARKER).is_file() and (install_dir / "libs" / _SERVER_JAR).is_file()


def is_fetched(cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """True when ``fetch`` has completed for KAFKA_VERSION (it would not run Maven)."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return _is_complete(cache / f"kafka-{KAFKA_VERSION}")


def fetch(cache_dir: str | os.PathLike[str] | None = None, quiet: bool = True) -> Path:
    """Download the broker jars once into ``<cache>/kafka-<version>/libs``; return that dir.

    Idempotent: a completed install (marker file present) is returned at once,
    without running Maven. The download happens in a temp folder next to the
    target that is renamed into place only when complete, so an interrupted fetch
    never leaves a half-filled cache. Concurrent fetches are serialized by a lock.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    install_dir = cache / f"kafka-{KAFKA_VERSION}"
    libs = install_dir / "libs"
    if _is_complete(install_dir):
        return libs

    mvn = _which("mvn")
    _which("java")  # Maven needs it too; fail early with the clear message
    cache.mkdir(parents=True, exist_ok=True)

    import fcntl

    with open(cache / f".kafka-{KAFKA_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_complete(install_dir):  # another process finished it meanwhile
            return libs
        # Leftovers of interrupted fetches: temp folders (we hold the lock, so none
        # is in use) and a target without its marker (cannot normally happen).
        for stale in cache.glob(f".kafka-{KAFKA_VERSION}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if install_dir.exists():
            shutil.rmtree(install_dir)

        tmp = Path(tempfile.mkdtemp(prefix=f".kafka-{KAFKA_VERSION}.tmp-", dir=cache))
        try:
            # Run Maven on a copy of the pom so nothing is written next to the
            # (possibly read-only, installed) package; the copy documents the cache.
            pom = tmp / "pom.xml"
            shutil.copyfile(POM_PATH, pom)
            cmd = [
                mvn,
                "-B",
                *(["-q"] if quiet else []),
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-Dkafka.version={KAFKA_VERSION}",
                f"-DoutputDirectory={tmp / 'libs'}",
                "-DincludeScope=runtime",
            ]
            if quiet:
                proc = subprocess.run(
                    cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
            else:
                proc = subprocess.run(cmd)
            if proc.returncode != 0:
                tail = _tail_text(proc.stdout or "") if quiet else "(see Maven output above)"
                raise LocalKafkaError(
                    f"Maven failed (exit {proc.returncode}) fetching Kafka {KAFKA_VERSION} "
                    f"jars: {' '.join(cmd)}\n{tail}"
                )
            if not (tmp / "libs" / _SERVER_JAR).is_file():
                raise LocalKafkaError(
                    f"Maven succeeded but {_SERVER_JAR} is missing from {tmp / 'libs'}"
                )
            (tmp / _MARKER).write_text(f"kafka {KAFKA_VERSION}\n")
            os.rename(tmp, install_dir)  # atomic on the same filesystem
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return libs


# --------------------------------------------------------------------------- broker


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_HOST, 0))
        return s.getsockname()[1]


def _new_cluster_id() -> str:
    # Same format as kafka.tools.StorageTool random-uuid (org.apache.kafka.common.Uuid):
    # url-safe base64 of 16 random bytes without padding, never starting with '-'.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _tail_text(text: str, lines: int = 40) -> str:
    """Last lines of a log, without Java stack frames (the messages are what matter)."""
    kept = [
        line
        for line in text.rstrip().splitlines()
        if not re.match(r"\s+(at |\.\.\. \d+ more)", line)
    ]
    return "\n".join(kept[-lines:])


def _read_properties(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM does
        try:
            s.bind((_HOST, port))
        except OSError:
            return False
        return True


class LocalKafka:
    """One Kafka broker+controller (KRaft) bound to 127.0.0.1, state in ``data_dir``.

    ``port``/``controller_port`` 0 pick a free loopback port at every ``start``.
    The storage is formatted once (``<data_dir>/kraft-logs/meta.properties``);
    later starts reuse it, so topics and messages survive restarts even when the
    ports change. The broker's output goes to ``<data_dir>/broker.log``; only one
    LocalKafka may run per data dir at a time.

    The JVM runs in its own session (a terminal Ctrl-C reaches only the Python
    supervisor, which then calls ``stop``) and gets SIGTERM from Linux if its
    parent dies (PR_SET_PDEATHSIG). Linux ties that to the *thread* that started
    it: call ``start`` from a thread that lives as long as the broker should
    (normally the main thread; not a short-lived worker thread).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int = 0,
        controller_port: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        heap: str = "512m",
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.requested_port = int(port)
        self.requested_controller_port = int(controller_port)
        self.cache_dir = cache_dir
        self.heap = heap
        self.port: int | None = None
        self.controller_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None
        self._log_start = 0
        self._lock = threading.Lock()
        self.startup_seconds: float | None = None  # launch -> answering, of the last start
        self._dir_lock = None
        self._cluster_id: str | None = None

    # ---- paths
    @property
    def log_dir(self) -> Path:
        """Kafka ``log.dirs`` (topic partitions and the KRaft metadata log)."""
        return self.data_dir / _LOG_DIR_NAME

    @property
    def broker_log(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    # ---- state
    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:<port>"``; known once started (or when a fixed port was given)."""
        port = self.port or self.requested_port
        if not port:
            raise LocalKafkaError("bootstrap_servers is known only after start()")
        return f"{_HOST}:{port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The broker's JVM (for a supervisor to watch), or None before the first start."""
        return self._proc

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # ---- lifecycle
    def start(self, timeout: float = 60) -> str:
        """Start the broker and wait until it answers; return the bootstrap servers."""
        with self._lock:
            if self.running:
                return self.bootstrap_servers
            self._close_log()
            java = _which("java")
            libs = fetch(self.cache_dir)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._acquire_dir_lock()
            try:
                for fixed in (self.requested_port, self.requested_controller_port):
                    if fixed and not _port_free(fixed):
                        raise LocalKafkaError(
                            f"{_HOST}:{fixed} is already in use (another Kafka running?); "
                            "choose another port or 0 for any free one"
                        )
                port = self.requested_port or _free_port()
                controller_port = self.requested_controller_port or _free_port()
                while controller_port == port:
                    controller_port = _free_port()
                self.port, self.controller_port = port, controller_port
                self._write_config()

                classpath = [java, "-cp", f"{libs}{os.sep}*", f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}"]
                if not (self.log_dir / "meta.properties").is_file():
                    self._format(classpath)
                self._cluster_id = _read_properties(self.log_dir / "meta.properties").get("cluster.id")

                cmd = [
                    java,
                    f"-Xms{self._xms()}",
                    f"-Xmx{self.heap}",
                    "-XX:+ExitOnOutOfMemoryError",
                    "-Djava.awt.headless=true",
                    *classpath[1:],
                    "kafka.Kafka",
                    str(self.config_path),
                ]
                self._log_file = open(self.broker_log, "ab")
                self._log_start = self._log_file.tell()
                started = time.monotonic()
                self._proc = spawn(cmd, stdout=self._log_file, cwd=self.data_dir)
            except BaseException:
                self._close_log()
                self._release_dir_lock()
                raise
        try:
            self._wait_ready(started + timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self.bootstrap_servers

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (controlled shutdown), wait up to ``timeout``, then SIGKILL. Idempotent."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            terminate(proc, timeout)  # SIGTERM makes Kafka do a controlled shutdown
            self._close_log()
            self._release_dir_lock()

    def __enter__(self) -> "LocalKafka":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid} port={self.port}" if self.running else "stopped"
        return f"LocalKafka({str(self.data_dir)!r}, {state})"

    # ---- internals
    def _xms(self) -> str:
        return "256m" if _heap_bytes(self.heap) > 256 * 1024**2 else self.heap

    def _acquire_dir_lock(self) -> None:
        """One LocalKafka per data dir (Kafka would refuse anyway, but only after we
        rewrote server.properties and with a less obvious error)."""
        import fcntl

        if self._dir_lock is not None:
            return
        f = open(self.data_dir / ".local_kafka.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise LocalKafkaError(
                f"{self.data_dir} is in use by another running LocalKafka broker"
            ) from None
        self._dir_lock = f

    def _release_dir_lock(self) -> None:
        if self._dir_lock is not None:
            self._dir_lock.close()  # closing the file releases the flock
            self._dir_lock = None

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _write_config(self) -> None:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{_HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{_HOST}:{self.port},CONTROLLER://{_HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{_HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",  # the application creates its topics
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        text = "# Written by deploy/local_kafka.py at every start; edits are overwritten.\n"
        text += "".join(f"{k}={v}\n" for k, v in props.items())
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)

    def _format(self, classpath: list[str]) -> None:
        cmd = [
            *classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _new_cluster_id(),
            "-c",
            str(self.config_path),
        ]
        proc = subprocess.run(
            cmd, cwd=self.data_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        with open(self.broker_log, "a") as log:
            log.write(proc.stdout)
        if proc.returncode != 0 or not (self.log_dir / "meta.properties").is_file():
            raise LocalKafkaError(
                f"formatting the Kafka storage in {self.log_dir} failed "
                f"(exit {proc.returncode}):\n{_tail_text(proc.stdout)}"
            )

    def _log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.broker_log, "rb") as f:
                f.seek(self._log_start)
                data = f.read()
        except OSError:
            return ""
        return _tail_text(data.decode("utf-8", "replace"), lines)

    def _fail(self, why: str) -> LocalKafkaError:
        tail = self._log_tail()
        return LocalKafkaError(
            f"Kafka broker {why}; last lines of {self.broker_log}:\n{tail or '(empty)'}"
        )

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None and self.port is not None
        # 1) the listener accepts TCP connections (cheap, and keeps librdkafka from
        #    logging "connection refused" while the JVM boots)
        while True:
            if self._proc.poll() is not None:
                raise self._fail(f"exited with code {self._proc.returncode} during startup")
            if time.monotonic() > deadline:
                raise self._fail("did not open its port before the timeout")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                if s.connect_ex((_HOST, self.port)) == 0:
                    break
            time.sleep(0.1)
        # 2) it really answers: metadata (broker is unfenced), the cluster view, and
        #    a validate-only CreateTopics, which is forwarded to the active controller.
        from confluent_kafka.admin import AdminClient, NewTopic

        # log_level 4: keep librdkafka's info chatter (e.g. on destroy) off stderr
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 4})
        last_error: BaseException | None = None
        while True:
            if self._proc.poll() is not None:
                raise self._fail(f"exited with code {self._proc.returncode} during startup")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(f"did not answer before the timeout (last error: {last_error})")
            step = max(0.5, min(5.0, remaining))
            try:
                admin.list_topics(timeout=step)
                cluster = admin.describe_cluster(request_timeout=step).result(timeout=step + 1)
                if not cluster.nodes:
                    raise LocalKafkaError("cluster has no nodes yet")
                if self._cluster_id and cluster.cluster_id != self._cluster_id:
                    # someone else answers on our port; ours will fail to bind and exit
                    raise LocalKafkaError(
                        f"another Kafka cluster ({cluster.cluster_id}) answers on {self.bootstrap_servers}"
                    )
                futures = admin.create_topics(
                    [NewTopic("__sophra_readiness_probe", 1, 1)],
                    validate_only=True,
                    request_timeout=step,
                )
                futures["__sophra_readiness_probe"].result(timeout=step + 1)
                if self._proc.poll() is None:
                    return
            except Exception as e:  # KafkaException, futures' TimeoutError, LocalKafkaError
                last_error = e
                time.sleep(0.2)


def _heap_bytes(heap: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    h = heap.strip().lower()
    if h and h[-1] in units:
        return int(h[:-1]) * units[h[-1]]
    return int(h)


# --------------------------------------------------------------------------- CLI


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sophra kafka",
        description=f"Local single-node Apache Kafka {KAFKA_VERSION} broker (KRaft), no Docker. "
        "Needs Java 17+; Maven is used once to download the jars.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_fetch = sub.add_parser(
        "fetch",
        help="download the broker jars once into the cache",
        description="Download the Kafka broker jars once (Maven) into "
        f"<cache>/kafka-{KAFKA_VERSION}/libs and print that folder. Does nothing if already done.",
    )
    p_fetch.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache folder (default: $SOPHRA_CACHE_DIR or ~/.cache/sophra)",
    )
    p_fetch.add_argument("-v", "--verbose", action="store_true", help="show Maven's output")

    p_start = sub.add_parser(
        "start",
        help="run the broker in the foreground until Ctrl-C / SIGTERM",
        description="Start the broker, print its bootstrap address and keep it running until "
        "SIGINT or SIGTERM, then shut it down cleanly. Data persists in --data-dir.",
    )
    p_start.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data/kafka"),
        help="broker state, config and broker.log (default: data/kafka)",
    )
    p_start.add_argument(
        "--port", type=int, default=9092, help="client port on 127.0.0.1, 0 = any free (default: 9092)"
    )
    p_start.add_argument(
        "--controller-port",
        type=int,
        default=0,
        help="KRaft controller port on 127.0.0.1, 0 = any free (default: 0)",
    )
    p_start.add_argument("--cache-dir", type=Path, default=None, help="cache folder of the jars")
    p_start.add_argument("--heap", default="512m", help="JVM max heap (default: 512m)")
    p_start.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for the broker (default: 60)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if not is_fetched(args.cache_dir):
            print(
                f"fetching the Kafka {KAFKA_VERSION} jars with Maven (once, ~20 s)...",
                file=sys.stderr,
                flush=True,
            )
        if args.command == "fetch":
            started = time.monotonic()
            libs = fetch(args.cache_dir, quiet=not args.verbose)
            print(libs, flush=True)
            print(f"kafka {KAFKA_VERSION} jars ready ({time.monotonic() - started:.1f}s)", file=sys.stderr)
            return 0
        return _run_foreground(args)
    except LocalKafkaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _run_foreground(args: argparse.Namespace) -> int:
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    kafka = LocalKafka(
        args.data_dir,
        port=args.port,
        controller_port=args.controller_port,
        cache_dir=args.cache_dir,
        heap=args.heap,
    )
    try:
        # Signals during startup: finish starting (bounded by --timeout), then stop.
        bootstrap = kafka.start(timeout=args.timeout)
        print(f"kafka {KAFKA_VERSION} ready at {bootstrap} (pid {kafka.pid}, data {kafka.data_dir})", flush=True)
        print(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}", flush=True)
        while not stop.is_set():
            if not kafka.running:
                print(f"error: broker exited unexpectedly, see {kafka.broker_log}", file=sys.stderr)
                return 1
            stop.wait(0.5)
        print(f"stopping kafka (signal {received[0]})...", file=sys.stderr, flush=True)
        return 0
    finally:
        kafka.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)


if __name__ == "__main__":
    sys.exit(main())
