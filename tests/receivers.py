"""Real receivers on loopback for tests that deliver notifications: an SMTP server
(aiosmtpd), an HTTP server that speaks enough of Slack's API and takes webhooks
(aiohttp.web), and a throwaway TLS certificate (openssl CLI) for STARTTLS/SMTPS.

Each runs in its own thread with its own event loop, so tests may drive the senders with
asyncio.run(...) while the receiver records what arrived. Fixtures at the bottom."""
import asyncio
import itertools
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from multidict import CIMultiDict


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, timeout: float = 5, interval: float = 0.02):
    """Poll `fn` until it returns a truthy value; return it (or the last falsy one)."""
    deadline = time.monotonic() + timeout
    while not (value := fn()) and time.monotonic() < deadline:
        time.sleep(interval)
    return value


# --- TLS -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TlsCertificate:
    """A self-signed certificate for 127.0.0.1 that is also its own CA."""
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """Trusts only this certificate; hostname checking stays on (IP SAN 127.0.0.1)."""
        return ssl.create_default_context(cafile=str(self.cert))


def make_certificate(directory: Path) -> TlsCertificate:
    if not shutil.which("openssl"):
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return TlsCertificate(cert, key)


# --- SMTP ------------------------------------------------------------------------------------

@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    tls: bool                 # the session was encrypted (STARTTLS or implicit TLS)
    login: str | None         # the AUTH user, if the client authenticated


class _SmtpHandler:
    def __init__(self, owner: "SmtpServer"):
        self.owner = owner

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if reply := self.owner.refuse.get(address):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        o = self.owner
        if o.delay_s:  # a slow server: the message is accepted only after this long
            await asyncio.sleep(o.delay_s)
        with o._lock:
            if o.failed < o.fail_times:
                o.failed += 1
                return o.fail_reply
        raw = envelope.original_content or envelope.content
        # Parse with Python's line endings so part contents compare equal to what was sent.
        parsed = BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        o.messages.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos),
                                       parsed, raw,
                                       server.transport.get_extra_info("ssl_object") is not None, login))
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 and a free port.

    user/password: AUTH required (PLAIN/LOGIN). starttls: a TlsCertificate to offer
    STARTTLS with (AUTH then needs TLS first). implicit_tls: a TlsCertificate to speak TLS
    from the first byte (smtps://). fail_times/fail_reply: answer DATA with fail_reply that
    many times before accepting. refuse: {address: reply} refused at RCPT. delay_s: wait
    that long before answering DATA.
    Attributes may be changed while it runs."""

    def __init__(self, *, user: str | None = None, password: str | None = None,
                 starttls: TlsCertificate | None = None, implicit_tls: TlsCertificate | None = None,
                 fail_times: int = 0, fail_reply: str = "451 4.3.0 Try again later",
                 refuse: dict[str, str] | None = None, delay_s: float = 0.0):
        self.user, self.password, self.delay_s = user, password, delay_s
        self.fail_times, self.fail_reply, self.failed = fail_times, fail_reply, 0
        self.refuse = dict(refuse or {})
        self.messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self.implicit_tls = implicit_tls is not None
        smtp_kwargs = {}
        if starttls:
            smtp_kwargs["tls_context"] = starttls.server_context()
        if user is not None:
            smtp_kwargs.update(auth_required=True, auth_require_tls=starttls is not None,
                               authenticator=self._authenticate)
        self.controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.port,
                                     ssl_context=implicit_tls.server_context() if implicit_tls else None,
                                     **smtp_kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            (auth_data.login, auth_data.password) == (self.user.encode(), self.password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data)  # handled=False: aiosmtpd answers 535

    @property
    def url(self) -> str:
        """smtp[s]://[user:password@]127.0.0.1:port, credentials URL-encoded."""
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@" if self.user is not None else ""
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{auth}127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout: float = 5) -> list[ReceivedMail]:
        wait_until(lambda: len(self.messages) >= count, timeout)
        return self.messages

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


# --- HTTP ------------------------------------------------------------------------------------

@dataclass
class Reply:
    """A scripted answer: `json` wins over `text`."""
    status: int = 200
    json: object = None
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        if self.json is not None:
            return web.json_response(self.json, status=self.status, headers=self.headers)
        return web.Response(status=self.status, text=self.text, headers=self.headers)


@dataclass
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict      # case-insensitive
    body: bytes
    json: object              # parsed body, or None if it was not JSON


class HttpReceiver:
    """aiohttp.web on 127.0.0.1 and a free port, recording every request.

    Answers, first match wins: the first `fail_times` requests (any path) get
    `fail_status` with `fail_headers`; then replies queued by `script(path, ...)`, one per
    request to that path; then the defaults:
      POST .../chat.postMessage  Slack Web API: checks `Authorization: Bearer <slack_token>`
                                 (not_authed / invalid_auth otherwise), needs channel and
                                 text, answers {"ok": true, "channel", "ts", "message"}
      /services/...              a Slack incoming webhook: 200 "ok" (400 "no_text" without text)
      anything else              200, empty body (a generic webhook)."""

    def __init__(self, *, slack_token: str = "xoxb-test-token", fail_times: int = 0, fail_status: int = 503,
                 fail_headers: dict[str, str] | None = None, delay_s: float = 0.0):
        self.slack_token, self.delay_s = slack_token, delay_s  # delay_s: before answering, after recording
        self.fail_times, self.fail_status, self.fail_headers, self.failed = fail_times, fail_status, \
            dict(fail_headers or {}), 0
        self.requests: list[ReceivedRequest] = []
        self._scripts: dict[str, deque[Reply]] = {}
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def slack_webhook_url(self) -> str:
        return f"{self.url}/services/T0000/B0000/XXXXXXXX"

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(replies)

    def wait_for(self, count: int, timeout: float = 5) -> list[ReceivedRequest]:
        wait_until(lambda: len(self.requests) >= count, timeout)
        return self.requests

    def _scripted(self, path: str) -> Reply | None:
        with self._lock:
            if self.failed < self.fail_times:
                self.failed += 1
                return Reply(self.fail_status, text="scripted failure", headers=self.fail_headers)
            queue = self._scripts.get(path)
            return queue.popleft() if queue else None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self.requests.append(ReceivedRequest(request.method, request.path, dict(request.query),
                                             CIMultiDict(request.headers), body, parsed))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if reply := self._scripted(request.path):
            return reply.response()
        if request.method == "POST" and request.path.endswith("/chat.postMessage"):
            return web.json_response(self._slack_api(request.headers.get("Authorization"), parsed))
        if request.path.startswith("/services/"):
            ok = isinstance(parsed, dict) and parsed.get("text")
            return web.Response(text="ok") if ok else web.Response(status=400, text="no_text")
        return web.Response(status=200)

    def _slack_api(self, authorization: str | None, body) -> dict:
        if not authorization:
            return {"ok": False, "error": "not_authed"}
        if authorization != f"Bearer {self.slack_token}":
            return {"ok": False, "error": "invalid_auth"}
        if not isinstance(body, dict) or not body.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not body.get("text"):
            return {"ok": False, "error": "no_text"}
        ts = f"1700000000.{next(self._ts):06d}"
        return {"ok": True, "channel": body["channel"], "ts": ts, "message": {"text": body["text"], "ts": ts}}

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    def __enter__(self):
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture
def smtp_server():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def http_receiver():
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory) -> TlsCertificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))
