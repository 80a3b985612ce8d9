"""The api on a broker that dies: it answers 503 with Retry-After at once instead of
hanging, and by itself takes writes again when the broker is back; everything it
acknowledged becomes readable (the sink rides the outage out)."""
import httpx
import pytest

from deploy.local_kafka import LocalKafka, fetch

from .conftest import eventually, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def private_kafka(tmp_path):
    fetch()
    kafka = LocalKafka(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    kafka.start()
    yield kafka
    kafka.stop()


def test_api_answers_503_while_the_broker_is_down_and_recovers_by_itself(private_kafka, running_api):
    api = running_api(kafka_bootstrap_servers=private_kafka.bootstrap_servers)
    acknowledged = []
    with api.client() as http:
        def post(agent, timeout=10):
            res = http.post("/api/vitals", json={"agentId": agent, "metrics": {"tokenConsumption": 7}},
                            timeout=timeout)
            if res.status_code == 200:
                acknowledged.append((agent, res.json()["vital"]["id"]))
            return res

        def refused_during_the_outage():
            try:
                return (r := post("during", timeout=2)).status_code == 503 and r
            except httpx.TimeoutException:
                # handed to the producer before it saw the broker go: such a record waits for
                # its delivery report (it may yet be stored, so "not stored" would be a lie)
                return False

        assert post("before").status_code == 200
        private_kafka.process.kill()  # kill -9
        private_kafka.process.wait()
        down = eventually(refused_during_the_outage, 10)
        assert down, "the api never refused while the broker was down"
        assert down.headers["Retry-After"] == "1"
        assert down.json() == {"success": False, "error": "Service unavailable", "message": down.json()["message"]}
        assert down.json()["message"].startswith("Record not stored: Kafka unreachable for ")
        private_kafka.stop()  # releases the data folder for the restart
        private_kafka.start()
        assert eventually(lambda: post(f"after-{len(acknowledged)}").status_code == 200, 30)
        for agent, vital_id in acknowledged:  # every acknowledged record lands, once
            got = eventually(lambda: (r := http.get(f"/api/agents/{agent}/vitals")).status_code == 200 and r.json(), 30)
            assert got and [v["id"] for v in got["vitals"]] == [vital_id], (agent, got)
