"""/onboarding.html as a person uses it, in headless Chromium (Debian's, driven by
playwright-core from the lock file in tests/browser)."""
import json
import subprocess
from pathlib import Path

import pytest

from .receivers import SmtpServer

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


def run_email_page(*args: str) -> dict:
    out = subprocess.run(["node", str(BROWSER_DIR / "onboarding_email.js"), *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_email_signup_in_the_page_check_your_inbox_then_the_link(running_api):
    public = "https://sophra.example.com"
    with SmtpServer() as smtp:
        api = running_api(signup="email", smtp_url=smtp.url, public_url=public)
        asked = run_email_page("request", api.url, "Inbox@Example.com")
        assert asked == {"claimShown": False, "keyShown": False, "error": "",
                         "mailed": "If this address can receive mail, a link to a new key is on its way: check "
                                   "your inbox. The link works once, within 30 minutes."}
        mail = smtp.wait_for(1)[0]
        assert mail.rcpt_tos == ["inbox@example.com"]
        link = next(w for w in mail.message.get_body(("plain",)).get_content().split() if w.startswith(public))
        assert link.startswith(f"{public}/onboarding.html#claim=")
        claimed = run_email_page("claim", api.url + link.removeprefix(public))  # the page, served by this api
    key = claimed.pop("key")
    assert claimed == {"claimShown": True, "keyShownBefore": False, "claimShownAfter": False, "hash": "",
                       "again": "This link has expired or was already used: ask for a new one on /onboarding.html"}
    with api.client(key) as http:
        assert http.get("/api/keys").json()["email"] == "inbox@example.com"
