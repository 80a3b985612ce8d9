"""The one path for every request the platform makes to an address a user gave it
(webhooks, Slack incoming-webhook URLs, deployment health checks).

INTERFACE SKELETON: the guard itself (no loopback/private/link-local/metadata targets,
checked after DNS resolution, SOPHRA_OUTBOUND_ALLOW, concurrency cap) is being written.
"""
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp


class OutboundBlocked(Exception):
    """The target is not allowed (permanent: retrying cannot help). str() says why."""


class OutboundFailed(Exception):
    """The request did not complete: connection refused, DNS failure, timeout (transient)."""


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class Outbound:
    def __init__(self, allow: Sequence[str] = (), timeout: float = 10.0, max_concurrency: int = 32):
        self.allow, self.timeout, self.max_concurrency = tuple(allow), timeout, max_concurrency

    @classmethod
    def from_settings(cls, settings) -> "Outbound":
        return cls(allow=[c.strip() for c in settings.outbound_allow.split(",") if c.strip()])

    def check_url(self, url: str) -> None:
        """Syntax only (scheme, host, no userinfo); raises OutboundBlocked. For the api's 400s."""

    async def request(self, method: str, url: str, *, body: bytes | None = None,
                      headers: Mapping[str, str] | None = None, timeout: float | None = None) -> OutboundResponse:
        self.check_url(url)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout or self.timeout)) as s:
                async with s.request(method, url, data=body, headers=headers, allow_redirects=False) as res:
                    return OutboundResponse(res.status, dict(res.headers), await res.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OutboundFailed(f"{type(exc).__name__}: {exc}") from exc
