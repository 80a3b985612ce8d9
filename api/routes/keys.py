"""API keys: issue (onboarding), list (masked), revoke; and the emailed one-time link.

With one of the account's keys in the request, `POST /api/keys` creates another key of
that account (201, the key) in every signup mode. Without one, SOPHRA_SIGNUP decides
(README "Keys"): `open` creates the account's first key, and refuses (403) an email that
has an account, or anyone could mint a key into someone else's account; `email` answers
one 202, the same bytes whether or not the account exists, and mails a one-time link
(pipeline/signup.py) that `POST /api/keys/claim` turns into a key; `closed` refuses
(accounts come from `sophra account create`). The decisions on keys are taken by the key
book's rules in log order (pipeline/accounts.py); these routes write the request and
report the outcome.
"""
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from pipeline import accounts, signup
from pipeline.topics import ACCOUNT_KEYS
from schemas import codec

from ..auth import CurrentKey, OptionalKey
from ..deps import KeysDep, ProducerDep, SettingsDep
from ..errors import ApiError, invalid
from ..models import ErrorOut, RateLimited, iso_ms

router = APIRouter(tags=["keys"])


class KeyRequest(BaseModel):
    model_config = ConfigDict(strict=True)
    email: str = Field(max_length=254, description="Account email; the key belongs to this account")
    read_only: bool = Field(False, description="A read-only key can only read (GET); its writes get 403. "
                                               "An account's first key, and a key sent by email, is a full key.")


class ClaimRequest(BaseModel):
    model_config = ConfigDict(strict=True)
    token: str = Field(min_length=1, max_length=200, description="The token after #claim= in the mailed link")


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


class KeyMailed(BaseModel):
    success: bool = True
    message: str


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
SIGNUP_CLOSED = dict(status=403, error="Signup closed",
                     message="This server creates accounts and keys by its operator only (sophra account create); "
                             "with a key of your account you can create further keys here")
TOO_MANY = dict(status=409, error="Key limit reached",
                message=f"At most {accounts.MAX_ACTIVE_KEYS} active keys per email; revoke one first")
LINK_GONE = dict(status=410, error="Link expired or used",
                 message="This link has expired or was already used: ask for a new one on /onboarding.html")
# One body for every email, with or without an account: it must not tell them apart.
MAILED = KeyMailed(message=f"If this address can receive mail, a link to a new key is on its way: check your "
                           f"inbox. The link works once, within {signup.GRANT_TTL_MS // 60_000} minutes.")


async def _write(settings, producer, keys, kind: str, key: str, record: dict) -> None:
    _, offset = await producer.send(settings.topic(ACCOUNT_KEYS.name), key.encode(), codec.encode(kind, record))
    await keys.caught_up(offset)


def _limit_anonymous(request: Request, settings, email: str) -> None:
    """Count a key request made without a key of the account, or answer 429: in every
    signup mode, so nobody can mint accounts or probe emails at speed."""
    state = request.app.state
    if not hasattr(state, "signup_limits"):  # one per api process
        state.signup_limits = signup.SignupLimits(settings.signup_per_address, settings.signup_per_email)
    address = request.client.host if request.client else "unknown"
    if denied := state.signup_limits.acquire(address, email):
        raise ApiError(429, "Rate limit exceeded",
                       f"At most {settings.signup_per_address} key requests per client address and "
                       f"{settings.signup_per_email} per email per hour; retry in {denied.retry_after_seconds} s",
                       headers={"Retry-After": str(denied.retry_after_seconds)},
                       retry_after_ms=denied.retry_after_ms, retry_after_seconds=denied.retry_after_seconds)


async def _create(settings, producer, keys, email: str, requested_by: str | None, read_only: bool,
                  refusal: dict) -> KeyCreated:
    key, record = accounts.key_record(email, requested_by=requested_by, read_only=read_only)
    await _write(settings, producer, keys, "api_key", record["key_id"], record)
    state = keys.book.by_id.get(record["key_id"])
    if state is None:  # a concurrent request came first in the log and the rules refused this one
        raise ApiError(**refusal)
    return KeyCreated(key=key, email=email, **_info(state).model_dump())


@router.post("/api/keys", status_code=201, response_model=KeyCreated,
             responses={202: {"model": KeyMailed, "description": "SOPHRA_SIGNUP=email, without a key of the "
                                                                 "account: a one-time link was mailed"},
                        400: {"model": ErrorOut}, 403: {"model": ErrorOut}, 409: {"model": ErrorOut},
                        429: {"model": RateLimited}})
async def create_key(body: KeyRequest, caller: OptionalKey, request: Request, background: BackgroundTasks,
                     settings: SettingsDep, producer: ProducerDep, keys: KeysDep):
    email = accounts.normalize_email(body.email)
    if not accounts.EMAIL.match(email):
        raise invalid("email", "is not a valid email address")
    book = keys.book
    if caller is not None and caller.tenant == accounts.tenant_for(email):  # the account asks: every mode
        if len(book.active_for(email)) >= accounts.MAX_ACTIVE_KEYS:
            raise ApiError(**TOO_MANY)
        return await _create(settings, producer, keys, email, caller.tenant, body.read_only, TOO_MANY)
    if settings.signup == "closed":
        raise ApiError(**SIGNUP_CLOSED)
    if settings.signup == "email":
        return await _mail_link(email, body.read_only, request, background, settings, producer, keys)
    _limit_anonymous(request, settings, email)
    if book.has_account(email):
        raise ApiError(**ACCOUNT_EXISTS)
    if body.read_only:
        raise invalid("read_only", "the account's first key must be a full key (read_only false)")
    return await _create(settings, producer, keys, email, caller.tenant if caller else None, False, ACCOUNT_EXISTS)


async def _mail_link(email, read_only, request, background, settings, producer, keys) -> JSONResponse:
    # Nothing here looks at the account: the answer, and the work before it, are the same for all.
    if read_only:
        raise invalid("read_only", "a key sent by email is a full key: create read-only keys with a key of "
                                   "the account")
    _limit_anonymous(request, settings, email)
    token, grant = signup.new_grant(email)
    await _write(settings, producer, keys, "key_grant", grant["token_hash"], grant)
    # Sent after the answer, off the request's path: a slow SMTP server delays nobody.
    background.add_task(signup.send_key_mail, settings.smtp_url, settings.smtp_from, email,
                        signup.claim_link(settings.base_url, token), grant["token_hash"])
    return JSONResponse(MAILED.model_dump(), status_code=202)


@router.post("/api/keys/claim", status_code=201, response_model=KeyCreated,
             responses={400: {"model": ErrorOut}, 403: {"model": ErrorOut}, 409: {"model": ErrorOut},
                        410: {"model": ErrorOut}})
async def claim_key(body: ClaimRequest, settings: SettingsDep, producer: ProducerDep, keys: KeysDep) -> KeyCreated:
    """Create the key that a mailed one-time link allows (SOPHRA_SIGNUP=email)."""
    if settings.signup == "closed":
        raise ApiError(**SIGNUP_CLOSED)
    grant = keys.book.grant_for(body.token)
    if grant is None or accounts.now_ms() > grant.expires_at:
        raise ApiError(**LINK_GONE)
    if len(keys.book.active_for(grant.email)) >= accounts.MAX_ACTIVE_KEYS:
        raise ApiError(**TOO_MANY)
    try:
        return await _create(settings, producer, keys, grant.email, accounts.GRANT + grant.token_hash, False,
                             LINK_GONE)
    except ApiError:  # refused in the log: the link was used meanwhile, or the account reached its limit
        raise ApiError(**(TOO_MANY if len(keys.book.active_for(grant.email)) >= accounts.MAX_ACTIVE_KEYS
                          else LINK_GONE)) from None


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
    revoked_at = accounts.now_ms()
    record = {f: getattr(target, f) for f in target.__dataclass_fields__} | {"revoked_at": revoked_at}
    await _write(settings, producer, keys, "api_key", key_id, record)
    if keys.book.by_id[key_id].active:
        raise last
    return KeyRevoked(key_id=key_id, revoked_at=iso_ms(revoked_at))
