"""/v1/applications on the real broker: CRUD, pagination, validation, tenancy, restart."""
import re

import pytest

from .conftest import RunningApi

pytestmark = pytest.mark.integration

ISO_S = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
REFERENCE_CREATE = {"name": "New Application", "description": "Description of the application",
                    "environment": "production", "config": {"monitoring": True, "alerts": True}}


@pytest.fixture
def api(running_api):
    return running_api()


def test_create_get_update_delete(api):
    with api.client() as http:
        created = http.post("/v1/applications", json=REFERENCE_CREATE)
        assert created.status_code == 201
        app = created.json()
        assert re.match(r"^app_[0-9a-f]{16}$", app["id"])
        assert ISO_S.match(app["created_at"]) and app["updated_at"] == app["created_at"]
        assert {k: v for k, v in app.items() if k not in ("id", "created_at", "updated_at")} == {
            "name": "New Application", "description": "Description of the application", "status": "active",
            "environment": "production", "base_url": None, "config": {"monitoring": True, "alerts": True},
            "metrics": {"uptime": None, "response_time": None, "error_rate": None}}
        assert http.get(f"/v1/applications/{app['id']}").json() == app  # read-your-write, same replica

        patched = http.patch(f"/v1/applications/{app['id']}", json={"status": "maintenance",
                                                                     "base_url": "https://shop.example.com"})
        assert patched.status_code == 200
        assert (patched.json()["status"], patched.json()["base_url"], patched.json()["name"]) == (
            "maintenance", "https://shop.example.com/", "New Application")
        assert http.get(f"/v1/applications/{app['id']}").json()["status"] == "maintenance"

        assert http.delete(f"/v1/applications/{app['id']}").status_code == 204
        gone = http.get(f"/v1/applications/{app['id']}")
        assert gone.status_code == 404 and gone.json()["error"] == "Not found"
        assert http.get("/v1/applications").json() == {"applications": [], "total": 0, "page": 1, "per_page": 20}


def test_list_is_paginated_in_creation_order(api):
    with api.client() as http:
        ids = [http.post("/v1/applications", json={"name": f"app {i}"}).json()["id"] for i in range(5)]
        first = http.get("/v1/applications?per_page=2").json()
        third = http.get("/v1/applications?page=3&per_page=2").json()
        assert ([a["id"] for a in first["applications"]], first["total"], first["page"], first["per_page"]) == (
            ids[:2], 5, 1, 2)
        assert [a["id"] for a in third["applications"]] == ids[4:]
        assert set(first["applications"][0]) == {"id", "name", "status", "environment", "created_at", "updated_at"}
        assert http.get("/v1/applications?page=4&per_page=2").json()["applications"] == []
        for bad in ("page=0", "per_page=101", "page=x"):
            res = http.get(f"/v1/applications?{bad}")
            assert (res.status_code, res.json()["field"]) == (400, bad.split("=")[0])


def test_other_accounts_cannot_see_or_touch_an_application(api):
    with api.client() as owner, api.client(api.new_key()) as other:
        app_id = owner.post("/v1/applications", json={"name": "mine"}).json()["id"]
        assert other.get(f"/v1/applications/{app_id}").status_code == 404
        assert other.patch(f"/v1/applications/{app_id}", json={"name": "stolen"}).status_code == 404
        assert other.delete(f"/v1/applications/{app_id}").status_code == 404
        assert other.get("/v1/applications").json()["total"] == 0
        assert owner.get(f"/v1/applications/{app_id}").json()["name"] == "mine"
    with api.client(None) as anonymous:
        assert anonymous.get("/v1/applications").status_code == 401


@pytest.mark.parametrize("body,field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x", "status": "sleeping"}, "status"),
    ({"name": "x", "environment": "moon"}, "environment"),
    ({"name": "x", "base_url": "not a url"}, "base_url"),
    ({"name": "x", "config": []}, "config"),
    ({"name": "x", "colour": "red"}, "colour"),
])
def test_invalid_applications_name_the_field(api, body, field):
    with api.client() as http:
        res = http.post("/v1/applications", json=body)
    assert (res.status_code, res.json()["field"]) == (400, field)


def test_applications_survive_an_api_restart(make_settings):
    settings = make_settings()
    with RunningApi(settings) as first, first.client() as http:
        key = first.key
        app_id = http.post("/v1/applications", json={"name": "durable"}).json()["id"]
    with RunningApi(settings) as second, second.client(key) as http:
        assert http.get(f"/v1/applications/{app_id}").json()["name"] == "durable"
