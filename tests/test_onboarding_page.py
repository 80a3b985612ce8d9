"""/onboarding.html as a person uses it, in headless Chromium (Debian's, driven by
playwright-core from the lock file in tests/browser)."""
import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BROWSER_DIR = Path(__file__).parent / "browser"


def test_create_list_and_revoke_keys_in_the_page(running_api):
    api = running_api()
    out = subprocess.run(["node", str(BROWSER_DIR / "onboarding.js"), api.url, "Page@Example.com"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    first, second = seen["firstKey"], seen["secondKey"]
    assert first.startswith("sk_live_") and second.startswith("sk_live_") and first != second
    assert f"Bearer {first}" in seen["curl"] and seen["curl"].startswith(f"curl -X POST {api.url}/api/vitals")
    assert seen["secondAttemptError"] == ("This email already has an account: "
                                          "create further keys with one of its keys")
    assert seen["account"] == "page@example.com"
    assert seen["rowsBeforeRevoke"] == ["active", "active"]
    assert seen["rowsAfterRevoke"] == ["active", "revoked"]
    assert seen["masked"] == [f"{first[:12]}...{first[-4:]}", f"{second[:12]}...{second[-4:]}"]
    with api.client(second) as http:  # the page really revoked it
        assert http.get("/api/keys").status_code == 401
    with api.client(first) as http:
        assert http.get("/api/keys").status_code == 200
