"""Deliver one rendered notification once, over one channel, and say whether a failure is
worth retrying (Transient) or not (Permanent). Retries, scheduling and dedup live in the
notifier; every send carries a deterministic delivery id so a receiver can dedupe too.

Webhook signature scheme (see docs/notifications.md): X-Sophra-Signature is
`sha256=` + hex HMAC-SHA256(secret, f"{X-Sophra-Timestamp}." + raw body bytes)."""
import hashlib
import hmac
import json
import math
import ssl
import time
from collections.abc import Mapping
from datetime import timezone
from email.message import EmailMessage
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import unquote, urlsplit

import aiohttp
import aiosmtplib
from aiosmtplib import (SMTPAuthenticationError, SMTPException, SMTPNotSupported, SMTPRecipientsRefused,
                        SMTPResponseException)

from pipeline.notifier.messages import Rendered
from pipeline.outbound import Outbound, OutboundBlocked, OutboundFailed


class DeliveryError(Exception):
    """Base of the two outcomes a caller has to tell apart."""


class Transient(DeliveryError):
    """Worth retrying; `retry_after` is the server's Retry-After in seconds, if it gave one."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Permanent(DeliveryError):
    """Retrying cannot help (4xx, refused recipients, blocked URL, bad token)."""


# Slack Web API errors (HTTP 200, ok=false) that a later attempt can get past.
SLACK_TRANSIENT = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                             "request_timeout"})


# --- email -------------------------------------------------------------------------------

def email_message(sender: str, recipients: list[str], r: Rendered, delivery_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = r.subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{delivery_id}@sophra>"  # the same on every retry: receivers can dedupe
    msg["X-Sophra-Delivery"] = delivery_id
    msg.set_content(r.text)
    msg.add_alternative(r.html, subtype="html")
    return msg


def _smtp_target(smtp_url: str) -> dict:
    u = urlsplit(smtp_url)
    if u.scheme not in ("smtp", "smtps") or not u.hostname:
        raise Permanent(f"SOPHRA_SMTP_URL must be smtp://host[:port] or smtps://host[:port], not {u.scheme}://")
    implicit = u.scheme == "smtps"
    return dict(hostname=u.hostname, port=u.port or (465 if implicit else 25), use_tls=implicit,
                start_tls=False if implicit else None,  # None: STARTTLS when the server offers it
                username=unquote(u.username) if u.username else None,
                password=unquote(u.password) if u.password else None)


def _cause(exc: BaseException | None, kind: type) -> BaseException | None:
    while exc is not None and not isinstance(exc, kind):
        exc = exc.__cause__ or exc.__context__
    return exc


def _by_code(code: int, what: str) -> DeliveryError:
    return Transient(what) if 400 <= code < 500 else Permanent(what)


async def send_email(smtp_url: str, sender: str, recipients: list[str], r: Rendered, delivery_id: str, *,
                     timeout: float = 30, tls_context: ssl.SSLContext | None = None) -> str | None:
    """Send one multipart email. Returns None, or a note naming the recipients the server
    refused while it accepted the others (the message went to those)."""
    if not recipients:
        raise Permanent("the action has no recipients")
    target = _smtp_target(smtp_url)
    msg = email_message(sender, recipients, r, delivery_id)
    try:
        refused, _ = await aiosmtplib.send(msg, recipients=recipients, timeout=timeout, tls_context=tls_context,
                                           **target)
    except SMTPRecipientsRefused as exc:
        what = "every recipient was refused: " + "; ".join(f"{e.recipient} ({e.code} {e.message})"
                                                           for e in exc.recipients)
        temporary = any(400 <= e.code < 500 for e in exc.recipients)
        raise (Transient(what) if temporary else Permanent(what)) from exc
    except SMTPAuthenticationError as exc:
        raise _by_code(exc.code, f"SMTP authentication failed: {exc.code} {exc.message}") from exc
    except SMTPResponseException as exc:
        raise _by_code(exc.code, f"SMTP server answered {exc.code} {exc.message}") from exc
    except SMTPNotSupported as exc:
        raise Permanent(f"SMTP server does not support what is needed: {exc}") from exc
    except (SMTPException, OSError) as exc:  # refused, reset, timeouts, TLS handshake failures
        if cert := _cause(exc, ssl.SSLCertVerificationError):  # raw for STARTTLS, wrapped for smtps
            raise Permanent(f"SMTP server's certificate did not verify: {cert.verify_message}") from exc
        raise Transient(f"SMTP {type(exc).__name__}: {exc}") from exc
    if refused:
        return "refused: " + "; ".join(f"{a} ({res.code} {res.message})" for a, res in sorted(refused.items()))
    return None


# --- HTTP ----------------------------------------------------------------------------------

def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _snippet(body: bytes) -> str:
    return " ".join(body[:200].decode("utf-8", "replace").split())


def _check_status(what: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
    """2xx passes; 408, 429 and 5xx are transient; 3xx and other 4xx permanent."""
    if 200 <= status < 300:
        return
    said = f"{what} answered {status}" + (f": {_snippet(body)}" if body.strip() else "")
    if status in (408, 429) or 500 <= status < 600:
        raise Transient(said, retry_after(_header(headers, "Retry-After")))
    if 300 <= status < 400:
        raise Permanent(f"{said} (redirects are not followed)")
    raise Permanent(said)


async def _outbound(outbound: Outbound, url: str, body: bytes, headers: dict, timeout: float):
    try:
        return await outbound.request("POST", url, body=body, headers=headers, timeout=timeout)
    except OutboundBlocked as exc:
        raise Permanent(f"the URL was refused by the outbound guard: {exc}") from exc
    except OutboundFailed as exc:
        raise Transient(f"the request did not complete: {exc}") from exc


# --- Slack ---------------------------------------------------------------------------------

async def send_slack(api_url: str, token: str | None, webhook_url: str | None, channel: str, r: Rendered,
                     delivery_id: str, outbound: Outbound, *, timeout: float = 10) -> None:
    """An incoming-webhook URL (user-given: through the outbound guard) if there is one,
    else chat.postMessage on the operator's Slack API with the account's bot token."""
    if webhook_url:
        res = await _outbound(outbound, webhook_url, json.dumps({"text": r.slack_text}).encode(),
                              {"Content-Type": "application/json"}, timeout)
        _check_status("Slack incoming webhook", res.status, res.headers, res.body)
        return
    if not token:
        raise Permanent("no Slack bot token is set for this account and the action has no incoming-webhook URL")
    body = {"channel": channel, "text": r.slack_text, "unfurl_links": False,
            "metadata": {"event_type": "sophra_alert", "event_payload": {"delivery_id": delivery_id}}}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            async with s.post(f"{api_url.rstrip('/')}/chat.postMessage", data=json.dumps(body).encode(),
                              headers=headers, allow_redirects=False) as res:
                status, res_headers, raw = res.status, res.headers, await res.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Transient(f"Slack API request did not complete: {type(exc).__name__}: {exc}") from exc
    _check_status("Slack API", status, res_headers, raw)
    try:
        answer = json.loads(raw)
        ok, error = answer["ok"], answer.get("error", "unknown_error")
    except (ValueError, TypeError, KeyError) as exc:
        raise Transient(f"Slack API answered {status} without a Slack answer: {_snippet(raw)}") from exc
    if ok is True:
        return
    if error in SLACK_TRANSIENT:
        raise Transient(f"Slack API error: {error}", retry_after(res_headers.get("Retry-After")))
    raise Permanent(f"Slack API error: {error}")


# --- generic webhooks ----------------------------------------------------------------------

def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(secret: str, timestamp: str | int, body: bytes | str, header: str | None, *,
                     max_age: float | None = 300, now: float | None = None) -> bool:
    """For receivers: True when `header` (X-Sophra-Signature) signs `timestamp`
    (X-Sophra-Timestamp) and the raw `body`, and the timestamp is within `max_age` seconds
    of `now` (replay protection; None skips it). Constant-time comparison."""
    if not header:
        return False
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if max_age is not None and abs((time.time() if now is None else now) - ts) > max_age:
        return False
    raw = body.encode() if isinstance(body, str) else body
    return hmac.compare_digest(sign(secret, str(timestamp), raw), header)


def webhook_body(r: Rendered) -> bytes:
    return json.dumps(r.payload, separators=(",", ":"), ensure_ascii=False).encode()


async def send_webhook(url: str, secret: str, r: Rendered, delivery_id: str, outbound: Outbound, *,
                       timeout: float = 10) -> None:
    body, ts = webhook_body(r), str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "Sophra-Webhook/1",
               "X-Sophra-Delivery": delivery_id, "X-Sophra-Timestamp": ts,
               "X-Sophra-Signature": sign(secret, ts, body)}
    res = await _outbound(outbound, url, body, headers, timeout)
    _check_status("webhook", res.status, res.headers, res.body)
