"""Getting a key without one (SOPHRA_SIGNUP, README "Keys"): the emailed one-time link,
the limits on anonymous requests, and the operator's command. The key rules themselves
(who may create which key, in log order) are in pipeline/accounts.py.

In `email` mode an anonymous `POST /api/keys` writes a `key_grant` record (the SHA-256 of
a random token, the email, an expiry) and mails `<public url>/onboarding.html#claim=<token>`
to the address. Opening it and pressing the button posts the token to
`/api/keys/claim`, which creates one full key of that account, shown once. The account
may or may not exist: the request's answer and work are the same either way, and only
the mailbox's owner learns which. The token sits in the link's fragment, so it is not
sent to the server (or its logs) when the page loads, and the page claims it only on a
click, so a mail scanner that fetches links does not use it up.
"""
import asyncio
import logging
import math
import secrets
import threading
import time
from collections import deque

from confluent_kafka import Producer

from schemas import codec

from .accounts import (EMAIL, MAX_ACTIVE_KEYS, OPERATOR, KeyRegistry, hash_key, key_record, normalize_email, now_ms,
                       tenant_for)
from .limits import Denied
from .notifier.channels import Permanent, Transient, send_email
from .notifier.messages import Rendered
from .producer import producer_config

log = logging.getLogger("sophra.signup")

GRANT_TTL_MS = 30 * 60 * 1000  # how long a mailed link can create its key
HOUR_S = 3600.0
# Anonymous key requests in `email` mode (each one sends a mail), per api process:
MAIL_ATTEMPTS = (0, 2, 10)  # seconds before each attempt of a key mail whose SMTP send failed transiently


def new_grant(email: str) -> tuple[str, dict]:
    """A one-time token for `email` (normalized) and the `key_grant` record that stores its hash."""
    token = secrets.token_urlsafe(32)
    created = now_ms()
    return token, {"token_hash": hash_key(token), "email": email, "tenant": tenant_for(email),
                   "created_at": created, "expires_at": created + GRANT_TTL_MS}


def claim_link(base_url: str, token: str) -> str:
    return f"{base_url}/onboarding.html#claim={token}"


def key_mail(link: str) -> Rendered:
    minutes = GRANT_TTL_MS // 60_000
    text = (f"Someone (hopefully you) asked for a Sophra API key for this address.\n\n"
            f"Open this link and press \"Show my new key\" within {minutes} minutes; it works once:\n\n{link}\n\n"
            f"If this address has no Sophra account yet, that key creates it. If you did not ask, ignore this "
            f"mail: nothing happens without the link.\n")
    html = (f"<p>Someone (hopefully you) asked for a Sophra API key for this address.</p>"
            f"<p><a href=\"{link}\">Open this link</a> and press <em>Show my new key</em> within {minutes} "
            f"minutes; it works once.</p><p>If this address has no Sophra account yet, that key creates it. "
            f"If you did not ask, ignore this mail: nothing happens without the link.</p>")
    return Rendered(subject="Your Sophra API key", text=text, html=html, slack_text="", payload={})


async def send_key_mail(smtp_url: str, sender: str, email: str, link: str, grant_hash: str) -> bool:
    """Mail the link, retrying transient SMTP failures; runs after the answer was sent.
    A mail that still fails is logged: the person can ask again (a new link)."""
    for delay in MAIL_ATTEMPTS:
        await asyncio.sleep(delay)
        try:
            await send_email(smtp_url, sender, [email], key_mail(link), f"key-{grant_hash[:24]}", timeout=20)
            return True
        except Transient as exc:
            last = delay == MAIL_ATTEMPTS[-1]
            log.warning("key mail not sent%s (%s)%s", "" if last else " yet", exc, "" if last else "; retrying")
        except Permanent as exc:
            log.warning("key mail not sent: %s", exc)
            return False
    return False


class WindowLimiter:
    """At most `limit` grants per key in any `window` seconds (a sliding log of grant times)."""

    def __init__(self, limit: int, window: float, clock=time.monotonic, prune_every: int = 10_000):
        self.limit, self.window, self._clock, self._prune_every = limit, window, clock, prune_every
        self._grants: dict[object, deque] = {}
        self._count = 0

    def check(self, key) -> Denied | None:
        now = self._clock()
        times = self._grants.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.limit:
            return None
        return Denied(math.ceil((times[0] + self.window - now) * 1000))

    def take(self, key) -> None:
        self._grants.setdefault(key, deque()).append(self._clock())
        self._count += 1
        if self._count % self._prune_every == 0:  # forget keys with no grant in the window
            cutoff = self._clock() - self.window
            self._grants = {k: t for k, t in self._grants.items() if t and t[-1] > cutoff}


class SignupLimits:
    """Anonymous key requests per client address and per email per hour (defaults: the
    settings' 5 and 3); in memory, per api process."""

    def __init__(self, per_address: int = 5, per_email: int = 3, clock=time.monotonic):
        self.by_address = WindowLimiter(per_address, HOUR_S, clock)
        self.by_email = WindowLimiter(per_email, HOUR_S, clock)

    def acquire(self, address: str, email: str) -> Denied | None:
        """Count one request, or say how long until both limits allow one (then nothing is counted)."""
        denials = [d for d in (self.by_address.check(address), self.by_email.check(email)) if d]
        if denials:
            return max(denials, key=lambda d: d.retry_after_ms)
        self.by_address.take(address)
        self.by_email.take(email)
        return None


# --- the operator's command ---------------------------------------------------------------

class AccountError(Exception):
    """The key was not created (bad email, key limit, Kafka)."""


def create_key_as_operator(bootstrap: str, topic: str, email: str, timeout: float = 30) -> tuple[str, str, bool]:
    """Create a full key of `email`'s account, making the account if it has no key yet:
    replay the key log, write the record, and wait until the rules in the log admitted it.
    Returns (key, tenant, whether the account is new)."""
    email = normalize_email(email)
    if not EMAIL.match(email):
        raise AccountError(f"not an email address: {email!r}")
    registry = KeyRegistry(bootstrap, topic).start(timeout)
    try:
        book = registry.book
        new_account = not book.has_account(email)
        if len(book.active_for(email)) >= MAX_ACTIVE_KEYS:
            raise AccountError(f"{email} has {MAX_ACTIVE_KEYS} active keys already: revoke one first")
        key, record = key_record(email, requested_by=OPERATOR)
        offset = _produce(bootstrap, topic, record["key_id"].encode(), codec.encode("api_key", record), timeout)
        if not registry.wait_applied(offset, timeout):
            raise AccountError("the key was written but not read back in time; list the account's keys to check")
        if record["key_id"] not in book.by_id:  # another request came first and reached the limit
            raise AccountError(f"{email} reached {MAX_ACTIVE_KEYS} active keys meanwhile: revoke one first")
        return key, record["tenant"], new_account
    finally:
        registry.stop()


def _produce(bootstrap: str, topic: str, key: bytes, value: bytes, timeout: float) -> int:
    done, result = threading.Event(), {}

    def delivered(err, msg):
        result.update(err=err, offset=None if err else msg.offset())
        done.set()

    producer = Producer(producer_config(bootstrap))
    producer.produce(topic, key=key, value=value, on_delivery=delivered)
    producer.flush(timeout)
    if not done.is_set() or result["err"] is not None:
        raise AccountError(f"the key was not stored: {result.get('err') or 'timed out'}")
    return result["offset"]
