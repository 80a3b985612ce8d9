"""The outbound guard (pipeline/outbound.py) against real HTTP servers on 127.0.0.1.

Only loopback is ever connected to: refusals of other addresses (10.x, metadata, ...)
are shown on the check, which refuses before any connection or DNS lookup."""
import asyncio
import socket
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from pipeline.outbound import MAX_BODY, GuardedResolver, Outbound, OutboundBlocked, OutboundFailed
from sophra.settings import Settings

LOOPBACK = ["127.0.0.0/8"]


class Site:
    """A local aiohttp server that records every request it gets."""

    def __init__(self):
        self.hits: list[tuple[str, str, str, bytes]] = []  # method, path, Host, body
        self.peers: list[int] = []
        self.in_flight = self.max_in_flight = 0
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append((request.method, request.path, request.host, await request.read()))
        self.peers.append(request.transport.get_extra_info("peername")[1])
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if request.path == "/slow":
                await asyncio.sleep(float(request.query.get("s", "0.2")))
            if request.path == "/go":
                raise web.HTTPFound(f"http://127.0.0.1:{self.port}/internal")
            if request.path == "/big":
                return web.Response(body=b"x" * (4 * MAX_BODY))
            return web.Response(status=201, body=b"made " + request.method.encode(), headers={"X-Test": "yes"})
        finally:
            self.in_flight -= 1

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@asynccontextmanager
async def serve():
    site = Site()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", site.handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)  # a slow handler ends with its client
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    site.port = runner.addresses[0][1]
    try:
        yield site
    finally:
        await runner.cleanup()


def run(coro_fn):
    return asyncio.run(coro_fn())


REFUSED = [
    ("http://127.0.0.1/", "loopback address"),
    ("http://localhost./", None),  # a name: refused after resolution (test below), not by the check
    ("http://[::1]/", "loopback address"),
    ("http://[::ffff:127.0.0.1]/", "loopback address"),
    ("http://2130706433/", "loopback address"),
    ("http://0x7f000001/", "loopback address"),
    ("http://0177.0.0.1/", "loopback address"),
    ("http://127.1/", "loopback address"),
    ("http://10.0.0.5/health", "private address"),
    ("http://192.168.1.20/", "private address"),
    ("http://172.16.4.4/", "private address"),
    ("http://[fd12::1]/", "private address"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
    ("http://[::ffff:169.254.169.254]/", "cloud metadata address"),
    ("http://[fd00:ec2::254]/", "cloud metadata address"),
    ("http://100.100.100.200/", "cloud metadata address"),
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata address"),
    ("http://METADATA.google.internal./", "cloud metadata address"),
    ("http://169.254.1.1/", "link-local address"),
    ("http://[fe80::1%25eth0]/", "link-local address"),
    ("http://100.64.0.1/", "carrier-grade NAT address"),
    ("http://0.0.0.0/", "unspecified address"),
    ("http://[::]/", "unspecified address"),
    ("http://224.0.0.1/", "multicast address"),
    ("http://[ff02::1]/", "multicast address"),
    ("http://240.0.0.1/", "reserved address"),
    ("http://192.0.2.1/", "reserved address"),
    ("http://[64:ff9b::a00:5]/", "private address"),       # NAT64 form of 10.0.0.5
    ("http://[2002:7f00:1::]/", "loopback address"),       # 6to4 form of 127.0.0.1
    ("http://user:pass@example.com/", "user info (user:password@) is not allowed in the URL"),
    ("http://user@example.com/", "user info (user:password@) is not allowed in the URL"),
    ("ftp://example.com/file", "scheme 'ftp' is not allowed: http and https only"),
    ("file:///etc/passwd", "scheme 'file' is not allowed: http and https only"),
    ("example.com/health", "scheme '(none)' is not allowed: http and https only"),
    ("http:///health", "the URL has no host"),
    ("http://exa mple.com/", "invalid host name 'exa mple.com'"),
    ("https://example.com/hook", None),
    ("https://93.184.215.14:8443/hook", None),
]


@pytest.mark.parametrize("url,reason", REFUSED)
def test_check_url_says_why_it_refuses(url, reason):
    guard = Outbound()
    if reason is None:
        assert guard.check_url(url) is None
        return
    with pytest.raises(OutboundBlocked) as refused:
        guard.check_url(url)
    assert str(refused.value) == reason
    with pytest.raises(OutboundBlocked) as refused:  # request refuses before connecting
        asyncio.run(guard.request("GET", url))
    assert str(refused.value) == reason


def test_loopback_is_refused_by_default_and_never_reached():
    async def body():
        guard = Outbound()
        async with serve() as site:
            for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433", "0x7f000001", "127.1"):
                with pytest.raises(OutboundBlocked) as refused:
                    await guard.request("GET", site.url("/", host))
                assert (host, str(refused.value)) == (host, "loopback address")
            assert site.hits == []
        await guard.close()
    run(body)


def test_an_allowed_range_is_reached_with_the_exact_answer():
    async def body():
        guard = Outbound(allow=LOOPBACK)
        async with serve() as site:
            res = await guard.request("POST", site.url("/hook"), body=b'{"a":1}', headers={"X-Sig": "s"})
            assert (res.status, res.body, res.headers["x-test"]) == (201, b"made POST", "yes")
            again = await guard.request("GET", site.url("/hook"))
            assert (again.status, again.body) == (201, b"made GET")
            # one session: both went over one kept-alive connection
            assert site.peers[0] == site.peers[1]
            # names and odd spellings reach the address they mean
            for host in ("localhost", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]"):
                assert (await guard.request("GET", site.url("/x", host))).status == 201
            assert [(m, p, b) for m, p, _, b in site.hits] == [
                ("POST", "/hook", b'{"a":1}'), ("GET", "/hook", b""), ("GET", "/x", b""), ("GET", "/x", b""), ("GET", "/x", b""),
                ("GET", "/x", b"")]
        with pytest.raises(OutboundBlocked, match="^private address$"):  # the rest stays refused
            guard.check_url("http://10.0.0.5/")
        await guard.close()
    run(body)


def test_a_redirect_is_returned_not_followed():
    async def body():
        guard = Outbound(allow=LOOPBACK)
        async with serve() as site:
            res = await guard.request("GET", site.url("/go"))
            assert (res.status, res.headers["Location"]) == (302, site.url("/internal"))
            assert [p for _, p, _, _ in site.hits] == ["/go"]
        await guard.close()
    run(body)


def test_a_timeout_fails_quickly():
    async def body():
        guard = Outbound(allow=LOOPBACK)
        async with serve() as site:
            # the server would answer after 5 s: the message says our 0.3 s ran out first
            with pytest.raises(OutboundFailed, match=r"^timed out after 0\.3 s$"):
                await guard.request("GET", site.url("/slow?s=5"), timeout=0.3)
        await guard.close()
    run(body)


def test_a_closed_port_fails_transiently():
    async def body():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # bound, not listening: connection refused
            guard = Outbound(allow=LOOPBACK)
            with pytest.raises(OutboundFailed, match=rf"^cannot connect to 127\.0\.0\.1:{port}: "):
                await guard.request("GET", f"http://127.0.0.1:{port}/")
        await guard.close()
    run(body)


def test_the_concurrency_cap_holds():
    async def body():
        guard = Outbound(allow=LOOPBACK, max_concurrency=2)
        async with serve() as site:
            answers = await asyncio.gather(*(guard.request("GET", site.url("/slow?s=0.2")) for _ in range(5)))
            assert [a.status for a in answers] == [201] * 5
            assert (len(site.hits), site.max_in_flight) == (5, 2)
        await guard.close()
    run(body)


def test_a_response_body_is_read_up_to_the_cap():
    async def body():
        guard = Outbound(allow=LOOPBACK)
        async with serve() as site:
            res = await guard.request("GET", site.url("/big"))
            assert (res.status, len(res.body), MAX_BODY) == (200, 64 * 1024, 64 * 1024)
            assert res.body == b"x" * MAX_BODY
        await guard.close()
    run(body)


class StaticDNS(AbstractResolver):
    """Answers from a table, as a DNS server under someone else's control would."""

    def __init__(self, table: dict[str, list[str]]):
        self.table, self.asked = table, []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.asked.append(host)
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": 0} for a in self.table[host]]

    async def close(self):
        pass


def test_the_resolver_keeps_only_allowed_addresses_and_raises_when_none_is_left():
    async def body():
        dns = StaticDNS({"rebind.test": ["93.184.215.14", "127.0.0.1", "::1", "10.0.0.5"],
                         "inside.test": ["10.0.0.5", "127.0.0.1"], "meta.test": ["169.254.169.254"]})
        resolver = GuardedResolver(Outbound(), dns)
        assert [r["host"] for r in await resolver.resolve("rebind.test", 443, 0)] == ["93.184.215.14"]
        with pytest.raises(OutboundBlocked, match="^private address$"):
            await resolver.resolve("inside.test", 80, 0)
        with pytest.raises(OutboundBlocked, match="^cloud metadata address$"):
            await resolver.resolve("meta.test", 80, 0)
        with pytest.raises(OutboundBlocked, match="^cloud metadata address$"):  # by name, never asked
            await resolver.resolve("metadata.google.internal", 80, 0)
        assert dns.asked == ["rebind.test", "inside.test", "meta.test"]
        allowed = GuardedResolver(Outbound(allow=LOOPBACK), dns)
        assert [r["host"] for r in await allowed.resolve("inside.test", 80, 0)] == ["127.0.0.1"]
    run(body)


def test_names_resolve_only_through_the_guard_and_the_connection_goes_where_it_said():
    async def body():
        guard = Outbound(allow=LOOPBACK)
        # service.test exists nowhere but in this table: reaching the server proves the
        # connection used the guard's answer, and only it
        guard.dns = StaticDNS({"service.test": ["127.0.0.1"], "evil.test": ["::1", "10.0.0.5"]})
        async with serve() as site:
            res = await guard.request("GET", site.url("/n", "service.test"))
            assert (res.status, site.hits) == (201, [("GET", "/n", f"service.test:{site.port}", b"")])
            with pytest.raises(OutboundBlocked, match="^loopback address$"):
                await guard.request("GET", site.url("/n", "evil.test"))
            assert len(site.hits) == 1
        await guard.close()
    run(body)


def test_from_settings_reads_the_allowed_ranges():
    guard = Outbound.from_settings(Settings(outbound_allow=" 127.0.0.0/8, 10.1.0.0/16 ,"))
    assert (guard.allow, guard.timeout, guard.max_concurrency) == (("127.0.0.0/8", "10.1.0.0/16"), 10.0, 32)
    assert guard.check_url("http://10.1.2.3/") is None
    with pytest.raises(OutboundBlocked, match="^private address$"):
        guard.check_url("http://10.2.0.1/")
    assert Outbound.from_settings(Settings()).allow == ()
    with pytest.raises(ValueError) as bad:
        Outbound(allow=["10.0.0.0/33"])
    assert str(bad.value) == "outbound allow-list (SOPHRA_OUTBOUND_ALLOW): '10.0.0.0/33' is not a CIDR range"
