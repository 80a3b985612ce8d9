"""/openapi.json describes every route with its request and response models."""
import pytest

pytestmark = pytest.mark.integration

DOCUMENTED = {
    ("post", "/api/keys"), ("post", "/api/keys/claim"), ("get", "/api/keys"), ("delete", "/api/keys/{key_id}"),
    ("post", "/api/vitals"), ("post", "/api/events"), ("get", "/api/agents"),
    ("get", "/api/agents/{agent_id}/vitals"), ("get", "/api/agents/{agent_id}/events"),
    ("get", "/api/agents/{agent_id}/ari"),
    ("get", "/api/agents/{agent_id}/metrics"), ("get", "/api/agents/{agent_id}/metric-names"),
    ("get", "/api/agents/{agent_id}/predictions"), ("get", "/api/agents/{agent_id}/insights"),
    ("get", "/api/dashboard/agents"), ("get", "/api/health-thresholds"),
    ("post", "/v1/applications"), ("get", "/v1/applications"), ("get", "/v1/applications/{app_id}"),
    ("patch", "/v1/applications/{app_id}"), ("delete", "/v1/applications/{app_id}"),
    *((m, f"{base}/alerts{tail}") for base in ("/v1/applications/{app_id}", "/api/agents/{agent_id}",
                                                "/api/budgets/{budget_id}")
      for m, tail in (("post", ""), ("get", ""), ("patch", "/{alert_id}"), ("delete", "/{alert_id}"),
                      ("post", "/{alert_id}/silence"), ("get", "/{alert_id}/history"))),
    ("post", "/api/notifications"), ("get", "/api/notifications"), ("patch", "/api/notifications/{policy_id}"),
    ("delete", "/api/notifications/{policy_id}"),
    ("post", "/api/budgets"), ("get", "/api/budgets"), ("get", "/api/budgets/{budget_id}"),
    ("patch", "/api/budgets/{budget_id}"), ("delete", "/api/budgets/{budget_id}"),
    ("put", "/v1/integrations/slack"), ("get", "/v1/integrations/slack"), ("delete", "/v1/integrations/slack"),
    ("post", "/v1/applications/{app_id}/deployments"), ("get", "/v1/applications/{app_id}/deployments"),
    ("post", "/v1/applications/{app_id}/metrics"), ("get", "/v1/applications/{app_id}/metrics"),
    ("get", "/v1/applications/{app_id}/insights"), ("get", "/v1/applications/{app_id}/predictions"),
    ("post", "/v1/sql"),
}


def test_every_route_has_request_and_response_models(running_api):
    api = running_api()
    with api.client(None) as http:
        spec = http.get("/openapi.json").json()
    operations = {(m, p): op for p, item in spec["paths"].items() for m, op in item.items()}
    assert set(operations) == DOCUMENTED
    for (method, path), op in operations.items():
        if "204" not in op["responses"]:
            ok = next(op["responses"][c] for c in ("200", "201", "202") if c in op["responses"])
            assert "$ref" in ok["content"]["application/json"]["schema"], (method, path)
        if method in ("post", "patch", "put"):
            assert "$ref" in op["requestBody"]["content"]["application/json"]["schema"], (method, path)
        for code, response in op["responses"].items():
            assert code != "422", (method, path)  # never sent: bad input is a 400 naming the field
            if method != "get" and path not in ("/api/keys", "/api/keys/claim", "/v1/sql"):  # writes may meet a read-only key
                # (those two document their own 403s: an account exists, signup is closed)
                assert op["responses"]["403"]["description"] == "Forbidden: a read-only key", (method, path)
            if code.startswith("4"):
                assert response["content"]["application/json"]["schema"]["$ref"].startswith("#/components/schemas/")
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
