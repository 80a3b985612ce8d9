"""API keys through HTTP on the real broker: issue, list, revoke, limits, isolation."""
import asyncio

import httpx
import pytest

from .conftest import RunningApi

pytestmark = pytest.mark.integration

REFERENCE_401 = {"success": False, "error": "Clé API invalide ou expirée",
                 "message": "Clé API invalide ou expirée. Obtenez la vôtre sur /onboarding.html"}


def issue(api, email, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{api.url}/api/keys", json={"email": email}, headers=headers)


@pytest.fixture
def api(running_api):
    return running_api()


def test_issue_list_and_revoke(api):
    first = issue(api, "  Ops@Example.com ")
    assert first.status_code == 201
    body = first.json()
    key = body.pop("key")
    assert key.startswith("sk_live_") and len(key) == 51
    assert body["email"] == "ops@example.com" and body["active"] is True and body["revoked_at"] is None
    assert body["masked"] == f"{key[:12]}...{key[-4:]}"

    second = issue(api, "ops@example.com", key).json()
    with api.client(key) as http:
        listed = http.get("/api/keys").json()
        assert listed["email"] == "ops@example.com" and listed["max_active_keys"] == 5
        assert [(k["key_id"], k["masked"], k["active"]) for k in listed["keys"]] == [
            (body["key_id"], body["masked"], True), (second["key_id"], second["masked"], True)]
        assert key not in str(listed) and second["key"] not in str(listed)  # shown once only

        revoked = http.delete(f"/api/keys/{second['key_id']}")
        assert revoked.status_code == 200 and revoked.json()["key_id"] == second["key_id"]
        assert [k["active"] for k in http.get("/api/keys").json()["keys"]] == [True, False]
    with api.client(second["key"]) as http:
        assert http.get("/api/keys").status_code == 401
        assert http.get("/api/keys").json() == REFERENCE_401


def test_only_the_account_itself_can_add_keys(api):
    owner = issue(api, "owner@example.com").json()["key"]
    other = issue(api, "other@example.com").json()["key"]
    for key in (None, other):
        res = issue(api, "owner@example.com", key)
        assert res.status_code == 403 and res.json()["error"] == "Account exists"
    assert issue(api, "owner@example.com", owner).status_code == 201


def test_at_most_five_active_keys_and_never_zero(api):
    created = [issue(api, "five@example.com").json()]
    key = created[0]["key"]
    for _ in range(4):
        created.append(issue(api, "five@example.com", key).json())
    sixth = issue(api, "five@example.com", key)
    assert sixth.status_code == 409
    assert sixth.json()["message"] == "At most 5 active keys per email; revoke one first"
    with api.client(key) as http:
        assert http.delete(f"/api/keys/{created[4]['key_id']}").status_code == 200
        assert issue(api, "five@example.com", key).status_code == 201
        for k in created[1:4]:
            assert http.delete(f"/api/keys/{k['key_id']}").status_code == 200
        remaining = [k["key_id"] for k in http.get("/api/keys").json()["keys"] if k["active"]]
        assert len(remaining) == 2
        assert http.delete(f"/api/keys/{remaining[1]}").status_code == 200
        last = http.delete(f"/api/keys/{remaining[0]}")
        assert last.status_code == 409 and last.json()["error"] == "Last key"


def test_concurrent_requests_never_exceed_five(api):
    key = issue(api, "race@example.com").json()["key"]

    async def burst():
        async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {key}"}) as http:
            return await asyncio.gather(*(http.post("/api/keys", json={"email": "race@example.com"})
                                          for _ in range(12)))

    codes = sorted(r.status_code for r in asyncio.run(burst()))
    assert codes == [201] * 4 + [409] * 8
    with api.client(key) as http:
        assert sum(k["active"] for k in http.get("/api/keys").json()["keys"]) == 5


def test_a_key_cannot_revoke_another_accounts_key(api):
    a = issue(api, "a@example.com").json()
    b = issue(api, "b@example.com").json()
    with api.client(a["key"]) as http:
        res = http.delete(f"/api/keys/{b['key_id']}")
    assert res.status_code == 404
    with api.client(b["key"]) as http:
        assert http.get("/api/keys").status_code == 200


def test_invalid_email_names_the_field(api):
    for body in ({"email": "not-an-email"}, {"email": 5}, {}):
        res = httpx.post(f"{api.url}/api/keys", json=body)
        assert (res.status_code, res.json()["field"]) == (400, "email")


def test_keys_survive_an_api_restart(make_settings):
    settings = make_settings()
    with RunningApi(settings) as first:
        key = first.new_key("persist@example.com")
    with RunningApi(settings) as second, second.client(key) as http:
        assert http.get("/api/keys").json()["email"] == "persist@example.com"


def test_a_read_only_key_reads_but_every_write_is_forbidden(api):
    full = issue(api, "ro@example.com").json()["key"]
    first_ro = httpx.post(f"{api.url}/api/keys", json={"email": "first-ro@example.com", "read_only": True})
    assert first_ro.status_code == 400 and first_ro.json()["field"] == "read_only"
    made = httpx.post(f"{api.url}/api/keys", json={"email": "ro@example.com", "read_only": True},
                      headers={"Authorization": f"Bearer {full}"})
    assert made.status_code == 201 and made.json()["read_only"] is True
    ro = made.json()["key"]
    with api.client(full) as http:
        app_id = http.post("/v1/applications", json={"name": "Shop"}).json()["id"]
    forbidden = {"success": False, "error": "Forbidden",
                 "message": "This API key is read-only: it can read but not write. Use a full key of the account "
                            "for writes"}
    with api.client(ro) as http:
        assert [k["read_only"] for k in http.get("/api/keys").json()["keys"]] == [False, True]
        assert http.get("/api/agents").status_code == 200
        assert http.get(f"/v1/applications/{app_id}").json()["name"] == "Shop"
        # a SQL query is a POST that only reads (api/auth.py READ_POSTS)
        assert http.post("/v1/sql", json={"query": "SELECT count() FROM app_metrics"}).json()["data"] == [[0]]
        writes = [http.post("/api/vitals", json={"agentId": "a", "metrics": {}}),
                  http.post("/api/events", json={"agentId": "a", "type": "start"}),
                  http.post("/api/keys", json={"email": "ro@example.com"}),
                  http.delete(f"/api/keys/{made.json()['key_id']}"),
                  http.post("/v1/applications", json={"name": "Nope"}),
                  http.patch(f"/v1/applications/{app_id}", json={"name": "Nope"}),
                  http.delete(f"/v1/applications/{app_id}"),
                  http.post(f"/v1/applications/{app_id}/metrics",
                            json={"points": [{"metric": "response_time", "value": 1, "timestamp": 0}]})]
        assert [(r.status_code, r.json()) for r in writes] == [(403, forbidden)] * len(writes)
        assert writes[4].headers["X-RateLimit-Limit"] == "1000"  # a /v1 403 carries the quota headers
    with api.client(full) as http:
        assert http.get("/v1/applications").json()["total"] == 1
        assert http.get("/api/agents").json()["agents"] == []
        # the read-only key does not count as the account's remaining key
        listed = http.get("/api/keys").json()["keys"]
        assert http.delete(f"/api/keys/{listed[0]['key_id']}").status_code == 409
        assert http.delete(f"/api/keys/{listed[1]['key_id']}").status_code == 200
