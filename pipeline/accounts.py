"""Accounts and API keys: the rules in one place, and the replicated state behind them.

Every change of a key is a record on the single-partition `accounts.keys` topic, kept
forever and never compacted (compaction would reorder history and change what the
rules decide on replay). Each api process replays that log into a `KeyBook` and
applies the same rules in log order, so all replicas agree, without a database lock,
on which of two racing requests was the sixth key of an email or the revocation of
the last one:

- a creation is admitted when the email has fewer than MAX_ACTIVE_KEYS active keys at
  that point of the log, and one of: the account has no key yet (open signup); the
  request came from one of the account's own keys; it claims an unused, unexpired
  emailed grant of that email (`requested_by` = "grant:<token hash>", the grant is then
  used up); an operator created it (`requested_by` = "operator", `sophra account create`);
- an account's first key, and every key made by a grant or an operator, is a full key
  (a read-only one could never ask for another);
- a revocation takes effect only if another active full key remains, so an account can
  always authenticate and write (rotate by creating the new key first).

A `key_grant` record on the same topic is the hash of a one-time token mailed to an
email (SOPHRA_SIGNUP=email, pipeline/signup.py); the key it unlocks exists only once a
creation claims it, so a grant never activates anything by itself.

A read-only key may only read: any write with it is refused before it reaches the log
(api/auth.py), so `requested_by` is always a full key of the account.

Everything a request looks up is a dict: by key hash (authenticate), by email (the
account's keys, its active ones) and by tenant (listing), so neither requests nor the
replay at start-up scan the book (bench/key_startup.py).
"""
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, replace

from schemas import codec

from .topic_table import TopicTable

MAX_ACTIVE_KEYS = 5
KEY_PREFIX = "sk_live_"
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
OPERATOR = "operator"  # requested_by of a key made by `sophra account create`
GRANT = "grant:"       # requested_by prefix of a key claimed through an emailed link
GRANT_PRUNE_EVERY = 1024  # grants applied between two sweeps of the expired ones


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits, URL-safe


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a plain SHA-256 cannot be brute-forced; a slow
    # password hash would only slow every request down. Grant tokens are hashed alike.
    return hashlib.sha256(key.encode()).hexdigest()


def normalize_email(email: str) -> str:
    return email.strip().lower()


def tenant_for(email: str) -> str:
    return "acct_" + hashlib.sha256(normalize_email(email).encode()).hexdigest()[:20]


def mask(key: str) -> str:
    return f"{key[:len(KEY_PREFIX) + 4]}...{key[-4:]}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def key_record(email: str, *, requested_by: str | None, read_only: bool = False) -> tuple[str, dict]:
    """A new key of `email` (normalized) and the `api_key` record that would create it."""
    key = new_key()
    return key, {"key_id": "key_" + secrets.token_hex(8), "key_hash": hash_key(key), "email": email,
                 "tenant": tenant_for(email), "masked": mask(key), "requested_by": requested_by,
                 "created_at": now_ms(), "revoked_at": None, "read_only": read_only}


@dataclass(frozen=True, slots=True)  # slots: a book of 200,000 keys is 200,000 of these
class KeyState:
    key_id: str
    key_hash: str
    email: str
    tenant: str
    masked: str
    created_at: int
    requested_by: str | None = None
    revoked_at: int | None = None
    read_only: bool = False

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Grant:
    """An emailed one-time token (only its hash) that may create one key of `email`."""
    token_hash: str
    email: str
    tenant: str
    created_at: int
    expires_at: int


class KeyBook:
    """Key states as of a position in the log. Pure: `apply` and `grant` are the whole rule set."""

    def __init__(self):
        self.by_id: dict[str, KeyState] = {}
        self._by_hash: dict[str, KeyState] = {}
        self._by_email: dict[str, dict[str, KeyState]] = {}   # email -> key_id -> state, in log order
        self._active: dict[str, dict[str, KeyState]] = {}     # email -> its active keys only
        self._by_tenant: dict[str, dict[str, KeyState]] = {}
        self._grants: dict[str, Grant] = {}                   # token hash -> unused grant
        self._grants_seen = 0
        self.refused: set[str] = set()  # creations and revocations the rules turned down

    def apply(self, key_id: str, record: dict) -> None:
        state = KeyState(record["key_id"], record["key_hash"], record["email"], record["tenant"], record["masked"],
                         record["created_at"], record.get("requested_by"), record.get("revoked_at"),
                         record.get("read_only", False))
        known = self.by_id.get(key_id)
        if known is None:
            if state.revoked_at is None and self._admits(state):
                self._put(state)
                if state.requested_by and state.requested_by.startswith(GRANT):
                    del self._grants[state.requested_by.removeprefix(GRANT)]  # single use
            else:
                self.refused.add(key_id)
        elif state.revoked_at is not None and known.active:
            if self.revocable(known):
                self._put(replace(known, revoked_at=state.revoked_at))
            else:
                self.refused.add(f"{key_id}@{state.revoked_at}")

    def grant(self, record: dict) -> None:
        """A `key_grant` record: remember it until a creation uses it or it expires."""
        g = Grant(**{f: record[f] for f in Grant.__dataclass_fields__})
        self._grants[g.token_hash] = g
        self._grants_seen += 1
        if self._grants_seen % GRANT_PRUNE_EVERY == 0:
            # Forget the expired ones (they can never be claimed). Decided by the log's own
            # times, so every replica forgets the same grants at the same point.
            self._grants = {h: x for h, x in self._grants.items() if x.expires_at >= g.created_at}

    def _admits(self, state: KeyState) -> bool:
        if len(self._active.get(state.email, ())) >= MAX_ACTIVE_KEYS:
            return False
        by = state.requested_by
        if by == OPERATOR:
            return not state.read_only
        if by is not None and by.startswith(GRANT):
            g = self._grants.get(by.removeprefix(GRANT))
            return (g is not None and g.email == state.email and state.created_at <= g.expires_at
                    and not state.read_only)
        if state.email not in self._by_email:
            return not state.read_only
        return by == state.tenant

    def _put(self, state: KeyState) -> None:
        self.by_id[state.key_id] = state
        self._by_hash[state.key_hash] = state
        self._by_email.setdefault(state.email, {})[state.key_id] = state
        self._by_tenant.setdefault(state.tenant, {})[state.key_id] = state
        active = self._active.setdefault(state.email, {})
        if state.active:
            active[state.key_id] = state
        else:
            active.pop(state.key_id, None)

    def authenticate(self, key: str) -> KeyState | None:
        digest = hash_key(key)
        state = self._by_hash.get(digest)
        if state is None or not state.active or not hmac.compare_digest(state.key_hash, digest):
            return None
        return state

    def revocable(self, key: KeyState) -> bool:
        """Would another active full key of the account remain without `key`?"""
        return any(k.key_id != key.key_id and not k.read_only for k in self.active_for(key.email))

    def active_for(self, email: str) -> list[KeyState]:
        return list(self._active.get(email, {}).values())

    def keys_of(self, tenant: str) -> list[KeyState]:
        return sorted(self._by_tenant.get(tenant, {}).values(), key=lambda k: k.created_at)

    def has_account(self, email: str) -> bool:
        return email in self._by_email

    def grant_for(self, token: str) -> Grant | None:
        """The unused grant of this emailed token, expired or not; None if unknown or used."""
        return self._grants.get(hash_key(token))


class KeyRegistry(TopicTable):
    """A KeyBook kept current from the `accounts.keys` ledger."""

    def __init__(self, bootstrap: str, topic: str):
        self.book = KeyBook()
        super().__init__(bootstrap, topic, self._apply_record)

    def _apply_record(self, key: bytes, value: bytes | None) -> None:
        kind, record = codec.decode(value)
        if kind == "key_grant":
            self.book.grant(record)
        else:
            self.book.apply(key.decode(), record)
