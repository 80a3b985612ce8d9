"""The one path for every request the platform makes to an address a user gave it
(webhooks, Slack incoming-webhook URLs, deployment health checks).

A user-given URL must not turn the platform into a proxy into its own network. So:
http(s) only, no userinfo, and every address the request could go to is checked after
DNS resolution (loopback, private, link-local, metadata, CGNAT, multicast, reserved,
and those embedded in IPv6 forms are refused) unless it falls in an operator-allowed
range (SOPHRA_OUTBOUND_ALLOW). The connection goes to exactly the addresses that passed
(the checking resolver is the connector's only resolver), so DNS rebinding between check
and connect can't slip through. Redirects are not followed, time and concurrency are
bounded, and response bodies are read only up to MAX_BODY. Rules: docs/outbound.md.
"""
import asyncio
import ipaddress
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

MAX_BODY = 64 * 1024  # response bytes kept; the rest is never read
DNS_CACHE_S = 10

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundBlocked(Exception):
    """The target is not allowed (permanent: retrying cannot help). str() says why."""


class OutboundFailed(Exception):
    """The request did not complete: connection refused, DNS failure, timeout (transient)."""


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _nets(*cidrs: str) -> tuple:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# First match names the reason. Metadata before link-local/CGNAT, so its reason is specific.
_REFUSED = (
    ("cloud metadata address", _nets("169.254.169.254/32", "169.254.170.2/32", "100.100.100.200/32",
                                     "fd00:ec2::254/128")),
    ("unspecified address", _nets("0.0.0.0/8", "::/128")),
    ("loopback address", _nets("127.0.0.0/8", "::1/128")),
    ("private address", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10")),
    ("link-local address", _nets("169.254.0.0/16", "fe80::/10")),
    ("carrier-grade NAT address", _nets("100.64.0.0/10")),
    ("multicast address", _nets("224.0.0.0/4", "ff00::/8")),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Names that reach instance metadata whatever they resolve to here; refused by name.
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.internal"})
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$")
_IPV4_SPELLING = re.compile(r"^[0-9a-fx.]+$")  # decimal, octal, hex, short forms: 2130706433, 0x7f.1


def _judged(ip: IP) -> list[IP]:
    """The addresses an address is judged as: IPv4-mapped and NAT64 forms as the IPv4
    address they carry to, a 6to4 one as itself and its IPv4 address."""
    if isinstance(ip, ipaddress.IPv4Address):
        return [ip]
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return [ip, ip.sixtofour] if ip.sixtofour is not None else [ip]


def _category(ip: IP) -> str | None:
    for reason, nets in _REFUSED:
        if any(ip in n for n in nets if n.version == ip.version):
            return reason
    if not ip.is_global or ip.is_reserved:  # documentation, benchmarking, 240/4, broadcast, ...
        return "reserved address"
    return None


def _literal(host: str) -> IP | None:
    """The address a host written as an IP means, in any spelling the OS accepts."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _IPV4_SPELLING.match(host):
        try:  # inet_aton: what getaddrinfo makes of 0177.0.0.1, 0x7f000001, 127.1
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


class GuardedResolver(AbstractResolver):
    """The connector's only resolver: resolves with `inner`, keeps the addresses the guard
    allows, and raises OutboundBlocked when none is left. aiohttp connects to what it
    returns, so the checked addresses are the connected ones."""

    def __init__(self, outbound: "Outbound", inner: AbstractResolver):
        self.outbound, self.inner = outbound, inner

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        if host.lower().rstrip(".") in METADATA_NAMES:
            raise OutboundBlocked("cloud metadata address")
        found = await self.inner.resolve(host, port, family)
        refusals = [self.outbound.refusal(ipaddress.ip_address(r["host"])) for r in found]
        kept = [r for r, why in zip(found, refusals) if why is None]
        if not kept:
            raise OutboundBlocked(next((why for why in refusals if why), "no address"))
        return kept

    async def close(self) -> None:
        await self.inner.close()


class Outbound:
    """Guarded outbound HTTP. One per process (or component): it holds one aiohttp session
    (created in the running loop on first use; `close()` it) and the concurrency cap."""

    def __init__(self, allow: Sequence[str] = (), timeout: float = 10.0, max_concurrency: int = 32):
        self.allow, self.timeout, self.max_concurrency = tuple(allow), timeout, max_concurrency
        self._allowed = []
        for cidr in self.allow:
            try:
                self._allowed.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError as exc:
                raise ValueError(f"outbound allow-list (SOPHRA_OUTBOUND_ALLOW): {cidr!r} is not a CIDR range") from exc
        # Where names resolve before the guard filters them; tests substitute their own.
        self.dns: AbstractResolver | None = None
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    @classmethod
    def from_settings(cls, settings) -> "Outbound":
        return cls(allow=[c.strip() for c in settings.outbound_allow.split(",") if c.strip()])

    def refusal(self, ip: IP) -> str | None:
        """Why a connection to `ip` is refused, or None when it is allowed."""
        if self._is_allowed(ip):
            return None
        return next((why for c in _judged(ip) if not self._is_allowed(c) and (why := _category(c))), None)

    def _is_allowed(self, ip: IP) -> bool:
        return any(ip in n for n in self._allowed if n.version == ip.version)

    def check_url(self, url: str) -> None:
        """Syntax (http/https, a host, no userinfo) and, when the host is an IP literal in
        any spelling or a metadata name, its address; raises OutboundBlocked saying why.
        Names are checked again, after resolution, by `request`. For the api's 400s."""
        self._target(url)

    def _target(self, url: str) -> URL:
        try:
            parsed = URL(url)
            netloc = urlsplit(url).netloc
        except (ValueError, TypeError) as exc:
            raise OutboundBlocked(f"not a valid URL: {exc}") from exc
        if parsed.scheme not in ("http", "https"):
            raise OutboundBlocked(f"scheme {parsed.scheme or '(none)'!r} is not allowed: http and https only")
        if parsed.user is not None or parsed.password is not None or "@" in netloc:
            raise OutboundBlocked("user info (user:password@) is not allowed in the URL")
        host = parsed.host
        if not host:
            raise OutboundBlocked("the URL has no host")
        ip = _literal(host)
        if ip is None:
            name = parsed.raw_host.lower()
            if not _HOST_NAME.match(name):
                raise OutboundBlocked(f"invalid host name {host!r}")
            if name.rstrip(".") in METADATA_NAMES:
                raise OutboundBlocked("cloud metadata address")
            return parsed
        why = self.refusal(ip)
        if why:
            raise OutboundBlocked(why)
        # aiohttp connects to IP literals without the resolver and rejects odd spellings:
        # hand it the canonical form of the very address just checked.
        return parsed.with_host(str(ip)) if isinstance(ip, ipaddress.IPv4Address) else parsed

    def _session_here(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        # A session and a semaphore belong to one event loop; make them in the running one.
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            resolver = GuardedResolver(self, self.dns or aiohttp.ThreadedResolver())
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver, limit=self.max_concurrency,
                                               ttl_dns_cache=DNS_CACHE_S),
                # no proxies from the environment (a proxy would resolve names itself), no
                # cookies carried between users' targets, no decompression bombs
                trust_env=False, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",))
            self._loop, self._slots = loop, asyncio.Semaphore(self.max_concurrency)
        return self._session, self._slots

    async def request(self, method: str, url: str, *, body: bytes | None = None,
                      headers: Mapping[str, str] | None = None, timeout: float | None = None) -> OutboundResponse:
        """Send one request (no redirects followed: a 3xx comes back as is). The timeout
        (total, default self.timeout) starts once the request has a slot under the cap."""
        target = self._target(url)
        total = self.timeout if timeout is None else timeout
        session, slots = self._session_here()
        async with slots:
            try:
                async with session.request(method, target, data=body, headers=headers, allow_redirects=False,
                                           timeout=aiohttp.ClientTimeout(total=total)) as res:
                    return OutboundResponse(res.status, CIMultiDictProxy(CIMultiDict(res.headers)),
                                            await _read_capped(res.content, MAX_BODY))
            except OutboundBlocked:
                raise
            except TimeoutError as exc:
                raise OutboundFailed(f"timed out after {total:g} s") from exc
            except aiohttp.ClientConnectorDNSError as exc:
                raise OutboundFailed(f"DNS lookup of {target.host} failed") from exc
            except aiohttp.ClientConnectorError as exc:
                raise OutboundFailed(f"cannot connect to {target.host}:{target.port}: {exc.strerror or exc}") from exc
            except aiohttp.ClientError as exc:
                raise OutboundFailed(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None and not self._session.closed and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None


async def _read_capped(content: aiohttp.StreamReader, cap: int) -> bytes:
    chunks, size = [], 0
    while size < cap:
        chunk = await content.read(cap - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
