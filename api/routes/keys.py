"""API keys: issue (onboarding), list (masked), revoke.

The first key of an email needs no authentication; further keys of that account must
be requested with one of its keys, or anyone could mint a key into someone else's
account. The decisions are taken by the key book's rules in log order
(pipeline/accounts.py); these routes write the request and report the outcome.
"""
import secrets
import time

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from pipeline import accounts
from pipeline.topics import ACCOUNT_KEYS
from schemas import codec

from ..auth import CurrentKey, OptionalKey
from ..deps import KeysDep, ProducerDep, SettingsDep
from ..errors import ApiError, invalid
from ..models import ErrorOut, iso_ms

router = APIRouter(tags=["keys"])


class KeyRequest(BaseModel):
    model_config = ConfigDict(strict=True)
    email: str = Field(max_length=254, description="Account email; the key belongs to this account")
    read_only: bool = Field(False, description="A read-only key can only read (GET); its writes get 403. "
                                               "An account's first key is always a full key.")


class KeyInfo(BaseModel):
    key_id: str
    masked: str
    created_at: str
    revoked_at: str | None
    active: bool
    read_only: bool


class KeyCreated(KeyInfo):
    success: bool = True
    key: str = Field(description="The API key. Shown once: only its hash is stored.")
    email: str


class KeyList(BaseModel):
    success: bool = True
    email: str
    max_active_keys: int = accounts.MAX_ACTIVE_KEYS
    current_key_id: str = Field(description="The key this request was made with")
    read_only: bool = Field(description="Whether that key is read-only (a dashboard disables its write controls)")
    keys: list[KeyInfo]


class KeyRevoked(BaseModel):
    success: bool = True
    key_id: str
    revoked_at: str


def _info(k: accounts.KeyState) -> KeyInfo:
    return KeyInfo(key_id=k.key_id, masked=k.masked, created_at=iso_ms(k.created_at),
                   revoked_at=iso_ms(k.revoked_at) if k.revoked_at else None, active=k.active,
                   read_only=k.read_only)


ACCOUNT_EXISTS = dict(status=403, error="Account exists",
                      message="This email already has an account: create further keys with one of its keys")
TOO_MANY = dict(status=409, error="Key limit reached",
                message=f"At most {accounts.MAX_ACTIVE_KEYS} active keys per email; revoke one first")


async def _write(settings, producer, keys, record: dict) -> None:
    _, offset = await producer.send(settings.topic(ACCOUNT_KEYS.name), record["key_id"].encode(),
                                    codec.encode("api_key", record))
    await keys.caught_up(offset)


@router.post("/api/keys", status_code=201, response_model=KeyCreated,
             responses={400: {"model": ErrorOut}, 403: {"model": ErrorOut}, 409: {"model": ErrorOut}})
async def create_key(body: KeyRequest, caller: OptionalKey, settings: SettingsDep,
                     producer: ProducerDep, keys: KeysDep) -> KeyCreated:
    email = accounts.normalize_email(body.email)
    if not accounts.EMAIL.match(email):
        raise invalid("email", "is not a valid email address")
    tenant = accounts.tenant_for(email)
    book = keys.book
    own_account = caller is not None and caller.tenant == tenant
    if book.has_account(email) and not own_account:
        raise ApiError(**ACCOUNT_EXISTS)
    if body.read_only and not book.has_account(email):
        raise invalid("read_only", "the account's first key must be a full key (read_only false)")
    if len(book.active_for(email)) >= accounts.MAX_ACTIVE_KEYS:
        raise ApiError(**TOO_MANY)
    key = accounts.new_key()
    record = {"key_id": "key_" + secrets.token_hex(8), "key_hash": accounts.hash_key(key),
              "email": email, "tenant": tenant, "masked": accounts.mask(key),
              "requested_by": caller.tenant if caller else None,
              "created_at": time.time_ns() // 1_000_000, "revoked_at": None, "read_only": body.read_only}
    await _write(settings, producer, keys, record)
    state = book.by_id.get(record["key_id"])
    if state is None:  # a concurrent request came first in the log and the rules refused this one
        raise ApiError(**(TOO_MANY if own_account else ACCOUNT_EXISTS))
    return KeyCreated(key=key, email=email, **_info(state).model_dump())


@router.get("/api/keys", response_model=KeyList, responses={401: {"model": ErrorOut}})
async def list_keys(caller: CurrentKey, keys: KeysDep) -> KeyList:
    return KeyList(email=caller.email, current_key_id=caller.key_id, read_only=caller.read_only,
                   keys=[_info(k) for k in keys.book.keys_of(caller.tenant)])


@router.delete("/api/keys/{key_id}", response_model=KeyRevoked,
               responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}})
async def revoke_key(key_id: str, caller: CurrentKey, settings: SettingsDep,
                     producer: ProducerDep, keys: KeysDep) -> KeyRevoked:
    target = keys.book.by_id.get(key_id)
    if target is None or target.tenant != caller.tenant or not target.active:
        raise ApiError(404, "Key not found", f"No active key {key_id!r} in this account")
    last = ApiError(409, "Last key", "An account keeps at least one active full key: create a new one first")
    if not keys.book.revocable(target):
        raise last
    revoked_at = time.time_ns() // 1_000_000
    record = {f: getattr(target, f) for f in target.__dataclass_fields__} | {"revoked_at": revoked_at}
    await _write(settings, producer, keys, record)
    if keys.book.by_id[key_id].active:
        raise last
    return KeyRevoked(key_id=key_id, revoked_at=iso_ms(revoked_at))
