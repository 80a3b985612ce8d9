"""Who is asking: the account (tenant) behind the request's Bearer key.

Minimal for now: any `sk_...` Bearer key is accepted and its tenant is derived from a
hash of the key, so different keys never share data. Issued, revocable keys come next.
"""
import hashlib
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="Sophra API key, `sk_live_...`")

UNAUTHORIZED = ApiError(
    401, "Clé API invalide ou expirée",
    "Clé API invalide ou expirée. Obtenez la vôtre sur /onboarding.html",
)


def tenant_of(key: str) -> str:
    return "t_" + hashlib.sha256(key.encode()).hexdigest()[:24]


async def current_tenant(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or not credentials.credentials.startswith("sk_"):
        raise UNAUTHORIZED
    return tenant_of(credentials.credentials)


Tenant = Annotated[str, Depends(current_tenant)]
