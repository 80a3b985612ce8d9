"""SOPHRA_SIGNUP (README "Keys"): the rules of emailed grants and operator keys on the pure
KeyBook, the limits on anonymous requests, and each mode through HTTP on the real broker
with a real SMTP server."""
import asyncio
import re

import httpx
import pytest

from pipeline import signup
from pipeline.accounts import GRANT, MAX_ACTIVE_KEYS, OPERATOR, KeyBook, hash_key, tenant_for
from pipeline.signup import SignupLimits, WindowLimiter
from sophra import cli
from sophra.settings import Settings

from .conftest import eventually
from .receivers import SmtpServer

EMAIL = "ops@example.com"
PUBLIC = "https://sophra.example.com"


def creation(n: int, requested_by=None, email=EMAIL, created_at=None, read_only=False) -> dict:
    return {"key_id": f"k{n}", "key_hash": hash_key(f"key-{n}"), "email": email, "tenant": tenant_for(email),
            "masked": "m", "requested_by": requested_by, "created_at": n if created_at is None else created_at,
            "revoked_at": None, "read_only": read_only}


def grant(token: str, email=EMAIL, created_at=0, expires_at=1000) -> dict:
    return {"token_hash": hash_key(token), "email": email, "tenant": tenant_for(email), "created_at": created_at,
            "expires_at": expires_at}


# --- the rules, without Kafka ------------------------------------------------------------

def test_a_grant_creates_one_full_key_of_its_email_once_before_it_expires():
    book = KeyBook()
    book.grant(grant("t1"))
    book.grant(grant("t2", expires_at=50))
    book.grant(grant("t3", email="other@example.com"))
    book.apply("k1", creation(1, GRANT + hash_key("t1")))                  # first key of a new account
    book.apply("k2", creation(2, GRANT + hash_key("t1")))                  # the same link again
    book.apply("k3", creation(60, GRANT + hash_key("t2")))                 # after the grant expired
    book.apply("k4", creation(4, GRANT + hash_key("t3")))                  # another email's grant
    book.apply("k5", creation(5, GRANT + hash_key("nope")))                # no such grant
    book.apply("k6", creation(6, GRANT + hash_key("t2"), read_only=True))  # grants make full keys only
    book.apply("k7", creation(7, GRANT + hash_key("t2")))                  # in time: a lost key replaced
    assert [k.key_id for k in book.active_for(EMAIL)] == ["k1", "k7"]
    assert book.refused == {"k2", "k3", "k4", "k5", "k6"}
    assert book.grant_for("t1") is None and book.grant_for("t2") is None  # used
    assert book.grant_for("t3").email == "other@example.com"


def test_grants_and_operators_stay_within_five_active_keys():
    book = KeyBook()
    book.apply("k0", creation(0, OPERATOR))  # an operator may create an account's first key
    for n in range(1, MAX_ACTIVE_KEYS):
        book.apply(f"k{n}", creation(n, OPERATOR))  # and keys of an existing one
    book.grant(grant("t"))
    book.apply("k5", creation(5, GRANT + hash_key("t")))
    book.apply("k6", creation(6, OPERATOR))
    book.apply("k7", creation(7, OPERATOR, email="ro@example.com", read_only=True))
    assert len(book.active_for(EMAIL)) == MAX_ACTIVE_KEYS and book.refused == {"k5", "k6", "k7"}
    assert book.grant_for("t") is not None  # a refused claim does not use the link up
    book.apply("k1", {**creation(1, OPERATOR), "revoked_at": 9})
    book.apply("k8", creation(8, GRANT + hash_key("t")))
    assert [k.key_id for k in book.active_for(EMAIL)] == ["k0", "k2", "k3", "k4", "k8"]


def test_expired_grants_are_forgotten_at_the_same_point_of_the_log(monkeypatch):
    monkeypatch.setattr("pipeline.accounts.GRANT_PRUNE_EVERY", 3)
    book = KeyBook()
    book.grant(grant("old", created_at=0, expires_at=10))
    book.grant(grant("live", created_at=5, expires_at=100))
    assert book.grant_for("old") is not None
    book.grant(grant("new", created_at=20, expires_at=200))  # the third: expired ones as of t=20 go
    assert (book.grant_for("old"), book.grant_for("live").expires_at, book.grant_for("new").expires_at) == (
        None, 100, 200)


def test_anonymous_requests_are_limited_per_address_and_per_email():
    now = [1000.0]
    limits = SignupLimits(clock=lambda: now[0])
    assert [limits.acquire("1.2.3.4", "a@x.io") for _ in range(3)] == [None] * 3
    denied = limits.acquire("1.2.3.4", "a@x.io")  # the email's 4th within the hour
    assert (denied.retry_after_ms, denied.retry_after_seconds) == (3_600_000, 3600)
    assert limits.acquire("1.2.3.4", "b@x.io") is None
    now[0] += 10
    assert limits.acquire("1.2.3.4", "c@x.io") is None  # the address's 5th
    assert limits.acquire("1.2.3.4", "d@x.io").retry_after_ms == 3_590_000
    assert limits.acquire("5.6.7.8", "d@x.io") is None  # another address
    now[0] += 3590
    assert limits.acquire("1.2.3.4", "e@x.io") is None  # the first three have left the window
    assert limits.acquire("9.9.9.9", "a@x.io") is None


def test_the_window_limiter_slides():
    now = [0.0]
    lim = WindowLimiter(2, 10, clock=lambda: now[0])
    lim.take("k")
    now[0] = 4
    lim.take("k")
    assert lim.check("k").retry_after_ms == 6000
    now[0] = 10
    assert lim.check("k") is None
    lim.take("k")
    assert lim.check("k").retry_after_ms == 4000


def test_email_signup_needs_smtp():
    with pytest.raises(ValueError, match=re.escape(
            "SOPHRA_SIGNUP=email mails each new key's link: set SOPHRA_SMTP_URL (and SOPHRA_PUBLIC_URL for the "
            "link), or choose SOPHRA_SIGNUP=closed (keys by `sophra account create`) or open")):
        Settings(signup="email")
    assert Settings(signup="email", smtp_url="smtp://127.0.0.1:25").signup == "email"
    assert Settings().signup == "open"


# --- SOPHRA_SIGNUP=email, on the real broker and a real SMTP server ------------------------------

integration = pytest.mark.integration

MAILED = {"success": True, "message": "If this address can receive mail, a link to a new key is on its way: "
                                      "check your inbox. The link works once, within 30 minutes."}
LINK_GONE = {"success": False, "error": "Link expired or used",
             "message": "This link has expired or was already used: ask for a new one on /onboarding.html"}


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def email_api(running_api, smtp):
    return running_api(signup="email", smtp_url=smtp.url, public_url=PUBLIC + "/", signup_per_address=5,
                       signup_per_email=3)


def ask(api, email, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{api.url}/api/keys", json={"email": email}, headers=headers, timeout=10)


def token_of(mail) -> str:
    text = mail.message.get_body(("plain",)).get_content()
    links = re.findall(r"https://\S+", text)
    assert len(links) == 1 and links[0].startswith(f"{PUBLIC}/onboarding.html#claim="), text
    assert mail.message.get_body(("html",)).get_content().count(f'href="{links[0]}"') == 1
    return links[0].split("#claim=")[1]


def claim(api, token):
    return httpx.post(f"{api.url}/api/keys/claim", json={"token": token}, timeout=10)


@integration
def test_a_mailed_link_gives_the_key_once_and_the_answer_never_tells_if_the_account_exists(email_api, smtp):
    api = email_api
    first = ask(api, " Ops@Example.com ")
    assert (first.status_code, first.json()) == (202, MAILED)
    mail = smtp.wait_for(1)[0]
    assert (mail.rcpt_tos, mail.message["To"], mail.message["Subject"]) == (
        [EMAIL], EMAIL, "Your Sophra API key")
    assert mail.message["From"] == "Sophra <alerts@sophra.local>"
    token = token_of(mail)
    assert api.app.state.keys.book.has_account(EMAIL) is False  # a mail creates nothing by itself

    made = claim(api, token)
    assert made.status_code == 201
    key = made.json()["key"]
    assert (made.json()["email"], made.json()["read_only"], key.startswith("sk_live_")) == (EMAIL, False, True)
    assert (claim(api, token).status_code, claim(api, token).json()) == (410, LINK_GONE)  # once
    with api.client(key) as http:
        assert http.get("/api/keys").json()["email"] == EMAIL

    # An existing account and an unknown email get the very same answer, and each its mail.
    existing, unknown = ask(api, EMAIL), ask(api, "nobody@example.com")
    assert existing.content == unknown.content == first.content
    assert existing.status_code == unknown.status_code == 202

    def headers(res):
        return {k: v for k, v in res.headers.items() if k != "date"}
    assert headers(existing) == headers(unknown)
    mails = smtp.wait_for(3)
    assert [m.rcpt_tos for m in mails] == [[EMAIL], [EMAIL], ["nobody@example.com"]]

    # The lost-key path: a second link of an existing account gives another key of it.
    second = claim(api, token_of(mails[1])).json()
    assert second["email"] == EMAIL and second["key"] != key
    with api.client(second["key"]) as http:
        assert [k["key_id"] for k in http.get("/api/keys").json()["keys"]] == [made.json()["key_id"],
                                                                              second["key_id"]]
    # With a key of the account, a key is created at once, as in every mode.
    direct = ask(api, EMAIL, key)
    assert direct.status_code == 201 and direct.json()["email"] == EMAIL
    assert len(smtp.messages) == 3


@integration
def test_the_answer_does_not_wait_for_the_mail(running_api):
    with SmtpServer(delay_s=3) as slow:
        api = running_api(signup="email", smtp_url=slow.url, public_url=PUBLIC)
        res = ask(api, "slow@example.com")
        assert res.status_code == 202 and slow.messages == []  # answered while the SMTP server still waits
        assert len(slow.wait_for(1, timeout=15)) == 1


@integration
def test_a_key_mail_refused_for_now_is_sent_again(running_api):
    with SmtpServer(fail_times=1) as flaky:  # 451 once, then accepted
        api = running_api(signup="email", smtp_url=flaky.url, public_url=PUBLIC)
        assert ask(api, "retry@example.com").status_code == 202
        mails = flaky.wait_for(1, timeout=15)
        assert (flaky.failed, [m.rcpt_tos for m in mails]) == (1, [["retry@example.com"]])
        assert claim(api, token_of(mails[0])).json()["email"] == "retry@example.com"


@integration
def test_links_expire_and_race_to_one_key(email_api, smtp, monkeypatch):
    api = email_api
    assert ask(api, "race@example.com").status_code == 202
    token = token_of(smtp.wait_for(1)[0])

    async def both():
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
            return await asyncio.gather(*(http.post("/api/keys/claim", json={"token": token}) for _ in range(2)))
    assert sorted(r.status_code for r in asyncio.run(both())) == [201, 410]

    monkeypatch.setattr(signup, "GRANT_TTL_MS", -1)  # links made now are expired already
    assert ask(api, "late@example.com").status_code == 202
    late = claim(api, token_of(smtp.wait_for(2)[1]))
    assert (late.status_code, late.json()) == (410, LINK_GONE)
    assert api.app.state.keys.book.has_account("late@example.com") is False
    for bad in ({"token": ""}, {"token": 5}, {}):
        res = httpx.post(f"{api.url}/api/keys/claim", json=bad)
        assert (res.status_code, res.json()["field"]) == (400, "token")


@integration
def test_anonymous_requests_get_429_per_email_then_per_address(email_api, smtp):
    api = email_api
    assert [ask(api, "same@example.com").status_code for _ in range(3)] == [202] * 3
    fourth = ask(api, "same@example.com")
    assert fourth.status_code == 429
    retry = int(fourth.headers["Retry-After"])
    assert 3598 <= retry <= 3600
    assert fourth.json() == {"success": False, "error": "Rate limit exceeded",
                             "message": f"At most 5 key requests per client address and 3 per email per hour; "
                                        f"retry in {retry} s",
                             "retry_after_ms": fourth.json()["retry_after_ms"], "retry_after_seconds": retry}
    assert retry * 1000 - 1000 < fourth.json()["retry_after_ms"] <= retry * 1000
    assert [ask(api, f"u{n}@example.com").status_code for n in range(3)] == [202, 202, 429]  # 5 per address
    assert len(smtp.wait_for(5)) == 5
    invalid = ask(api, "not-an-email")
    assert (invalid.status_code, invalid.json()["field"]) == (400, "email")
    read_only = httpx.post(f"{api.url}/api/keys", json={"email": "x@example.com", "read_only": True})
    assert (read_only.status_code, read_only.json()["field"]) == (400, "read_only")


@integration
def test_open_signup_is_limited_too(running_api):
    api = running_api(signup_per_address=2, signup_per_email=3)
    first = [ask(api, f"open{n}@example.com") for n in range(2)]
    assert [r.status_code for r in first] == [201, 201]
    third = ask(api, "open2@example.com")
    assert third.status_code == 429 and third.json()["message"].startswith(
        "At most 2 key requests per client address and 3 per email per hour; retry in ")
    assert ask(api, "open0@example.com").status_code == 429  # probing an existing account counts too
    assert ask(api, "open0@example.com", key=first[0].json()["key"]).status_code == 201  # the account itself: no limit


# --- SOPHRA_SIGNUP=closed ------------------------------------------------------------------------

CLOSED = {"success": False, "error": "Signup closed",
          "message": "This server creates accounts and keys by its operator only (sophra account create); "
                     "with a key of your account you can create further keys here"}


@integration
def test_closed_signup_only_the_operator_creates_accounts(running_api, monkeypatch, capsys):
    api = running_api(signup="closed")
    res = ask(api, "new@example.com")
    assert (res.status_code, res.json()) == (403, CLOSED)
    assert (claim(api, "whatever").status_code, claim(api, "whatever").json()) == (403, CLOSED)

    s = api.settings
    monkeypatch.setenv("SOPHRA_TOPIC_PREFIX", s.topic_prefix)
    assert cli.main(["account", "create", " New@Example.com", "--kafka", s.kafka_bootstrap_servers]) == 0
    out = capsys.readouterr().out.splitlines()
    tenant = tenant_for("new@example.com")
    assert out[0] == f"new@example.com ({tenant}) created; its first key (shown once, only its hash is stored):"
    key = out[1]
    assert key.startswith("sk_live_") and len(out) == 2
    with api.client(key) as http:
        assert eventually(lambda: http.get("/api/keys").status_code == 200)
        assert http.get("/api/keys").json()["email"] == "new@example.com"
    assert ask(api, "new@example.com", key).status_code == 201  # the account's own key: as in every mode
    assert ask(api, "new@example.com").json() == CLOSED

    # A lost key: the operator gives the existing account another one.
    assert cli.main(["account", "create", "new@example.com", "--kafka", s.kafka_bootstrap_servers]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"new@example.com ({tenant}) exists; a new key (shown once, only its hash is stored):"
    with api.client(key) as http:
        assert eventually(lambda: len(http.get("/api/keys").json()["keys"]) == 3)
    for _ in range(2):
        assert cli.main(["account", "create", "new@example.com", "--kafka", s.kafka_bootstrap_servers]) == 0
    with pytest.raises(SystemExit, match="new@example.com has 5 active keys already: revoke one first"):
        cli.main(["account", "create", "new@example.com", "--kafka", s.kafka_bootstrap_servers])
    with pytest.raises(SystemExit, match="not an email address: 'nope'"):
        cli.main(["account", "create", "nope", "--kafka", s.kafka_bootstrap_servers])
