"""Who is asking: the account behind the request's Bearer key.

Keys are checked against the replicated key book (pipeline/accounts.py): a missing,
unknown or revoked key gets reference 003's 401 body. A read-only key gets a 403 on any
request that is not a read (GET, HEAD, OPTIONS, or a POST in `READ_POSTS`), whatever the
route: this is the one place that decides it.
"""
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.accounts import KeyState

from .errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="Sophra API key, `sk_live_...`")

UNAUTHORIZED = ApiError(
    401, "Clé API invalide ou expirée",
    "Clé API invalide ou expirée. Obtenez la vôtre sur /onboarding.html",
)


READS = frozenset({"GET", "HEAD", "OPTIONS"})
# POSTs that only read: a SQL query is too long for a URL, and it never writes (docs/sql.md).
READ_POSTS = frozenset({"/v1/sql"})

READ_ONLY = ApiError(
    403, "Forbidden",
    "This API key is read-only: it can read but not write. Use a full key of the account for writes",
)


def _key_state(request: Request, credentials: HTTPAuthorizationCredentials | None) -> KeyState | None:
    if credentials is None:
        return None
    state = request.app.state.keys.book.authenticate(credentials.credentials)
    if state is not None and state.read_only and request.method not in READS and (
            request.method != "POST" or request.url.path not in READ_POSTS):
        raise READ_ONLY
    return state


async def current_key(request: Request,
                      credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> KeyState:
    state = _key_state(request, credentials)
    if state is None:
        raise UNAUTHORIZED
    return state


async def key_of(request: Request) -> KeyState:
    """current_key called directly, by a route that answers its own errors (OTLP's)."""
    return await current_key(request, await _bearer(request))


async def optional_key(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> KeyState | None:
    """The caller's key if it sent a valid one; a wrong key is still refused."""
    state = _key_state(request, credentials)
    if credentials is not None and state is None:
        raise UNAUTHORIZED
    return state


async def current_tenant(key: Annotated[KeyState, Depends(current_key)]) -> str:
    return key.tenant


CurrentKey = Annotated[KeyState, Depends(current_key)]
OptionalKey = Annotated[KeyState | None, Depends(optional_key)]
Tenant = Annotated[str, Depends(current_tenant)]
