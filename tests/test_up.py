"""`sophra up` as a user runs it: everything starts, a vitals POST is readable through
the API, and Ctrl-C leaves no process of the project behind."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from sophra.processes import up_worker_instance_id

from .conftest import eventually, free_port

pytestmark = pytest.mark.integration


def processes_with_env(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "environ").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_up_serves_the_vitals_path_and_ctrl_c_stops_every_part(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL",
                                                             "SOPHRA_SMTP_URL")}
    env.update(SOPHRA_DATA_DIR=str(tmp_path / "data"), SOPHRA_PORT=str(port))
    marker = f"SOPHRA_DATA_DIR={tmp_path / 'data'}"
    up = subprocess.Popen([sys.executable, "-m", "sophra", "up"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in up.stdout:
            seen.append(line)
            if "Sophra is up at" in line:
                break
        assert re.search(rf"Sophra is up at http://127\.0\.0\.1:{port} ", line), "".join(seen)
        assert len(processes_with_env(marker)) == 4  # supervisor+api, broker, worker, notifier
        # without SOPHRA_SMTP_URL, how to set it is said once, right after the URL
        assert next(up.stdout).startswith("Email alerts are not delivered until SOPHRA_SMTP_URL is set, e.g. ")

        key = httpx.post(f"http://127.0.0.1:{port}/api/keys", json={"email": "up@test.sophra"}).json()["key"]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}) as http:
            posted = http.post("/api/vitals", json={"agentId": "up-agent", "metrics": {"loopCount": 60}})
            assert posted.status_code == 200 and posted.json()["health"] == "amber"
            # How fast is bench/startup_latency.py's business; here it only has to arrive.
            got = eventually(lambda: (r := http.get("/api/agents/up-agent/vitals")).status_code == 200 and r.json(), 15)
            assert got and got["vitals"][0]["id"] == posted.json()["vital"]["id"]
            # Every part survived real traffic (a worker that can't decode the api's batches dies here).
            for i in range(20):
                assert http.post("/api/vitals", json={"agentId": f"more-{i}"}).status_code == 200
            assert eventually(lambda: http.get("/api/agents/more-19/vitals").status_code == 200, 10)
            time.sleep(1)
            assert up.poll() is None and len(processes_with_env(marker)) == 4
            # A worker killed outright is started again by `sophra up`, which says so.
            [worker] = [p for p in processes_with_env(marker)
                        if Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[-3:-1] == [b"sophra", b"worker"]]
            os.kill(worker, signal.SIGKILL)
            said = [next(up.stdout), next(up.stdout)]
            assert said[0] == "worker exited with -9, restarting in 1 s\n"
            assert re.fullmatch(r"worker restarted \(pid \d+\)\n", said[1]) and str(worker) not in said[1]
            assert len(processes_with_env(marker)) == 4
            again = http.post("/api/vitals", json={"agentId": "after-restart"})
            assert again.status_code == 200
            assert eventually(lambda: http.get("/api/agents/after-restart/vitals").status_code == 200, 15)
            # The new worker is in its group as the same static member (it did not wait out
            # the dead one's session): the id sophra up derives from the host and data folder.
            instance = up_worker_instance_id(tmp_path / "data")
            admin = AdminClient({"bootstrap.servers": re.search(r"\(kafka (\S+),", line).group(1)})

            def members():
                group = admin.describe_consumer_groups(["sophra-worker"])["sophra-worker"].result(10)
                return [m.group_instance_id for m in group.members]
            assert eventually(lambda: members() == [instance], 30) == True
    except Exception:
        worker_log = (tmp_path / "data" / "worker.log")
        print("".join(seen), worker_log.read_text()[-3000:] if worker_log.exists() else "")
        raise
    finally:
        up.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground process
        rest = up.communicate(timeout=60)[0]
    assert up.returncode == 0, rest
    assert "Sophra stopped." in rest and "SOPHRA_SMTP_URL is set" not in rest  # said once
    assert eventually(lambda: processes_with_env(marker) == [], 10) == True
