"""Accounts and API keys: the rules in one place, and the replicated state behind them.

Every change of a key is a record on the single-partition `accounts.keys` topic, kept
forever and never compacted (compaction would reorder history and change what the
rules decide on replay). Each api process replays that log into a `KeyBook` and
applies the same rules in log order, so all replicas agree, without a database lock,
on which of two racing requests was the sixth key of an email or the revocation of
the last one:

- a creation is admitted when the email has fewer than MAX_ACTIVE_KEYS active keys at
  that point of the log, and either the account has no key yet (onboarding) or the
  request came from one of the account's own keys;
- an account's first key is a full key (a read-only one could never ask for another);
- a revocation takes effect only if another active full key remains, so an account can
  always authenticate and write (rotate by creating the new key first).

A read-only key may only read: any write with it is refused before it reaches the log
(api/auth.py), so `requested_by` is always a full key of the account.
"""
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace

from schemas import codec

from .topic_table import TopicTable

MAX_ACTIVE_KEYS = 5
KEY_PREFIX = "sk_live_"
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits, URL-safe


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a plain SHA-256 cannot be brute-forced; a slow
    # password hash would only slow every request down.
    return hashlib.sha256(key.encode()).hexdigest()


def normalize_email(email: str) -> str:
    return email.strip().lower()


def tenant_for(email: str) -> str:
    return "acct_" + hashlib.sha256(normalize_email(email).encode()).hexdigest()[:20]


def mask(key: str) -> str:
    return f"{key[:len(KEY_PREFIX) + 4]}...{key[-4:]}"


@dataclass(frozen=True)
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


class KeyBook:
    """Key states as of a position in the log. Pure: `apply` is the whole rule set."""

    def __init__(self):
        self.by_id: dict[str, KeyState] = {}
        self._by_hash: dict[str, KeyState] = {}
        self.refused: set[str] = set()  # creations and revocations the rules turned down

    def apply(self, key_id: str, record: dict) -> None:
        state = KeyState(**{f: record[f] for f in KeyState.__dataclass_fields__ if f in record})
        known = self.by_id.get(key_id)
        if known is None:
            if state.revoked_at is None and self._admits(state):
                self._put(state)
            else:
                self.refused.add(key_id)
        elif state.revoked_at is not None and known.active:
            if self.revocable(known):
                self._put(replace(known, revoked_at=state.revoked_at))
            else:
                self.refused.add(f"{key_id}@{state.revoked_at}")

    def _admits(self, state: KeyState) -> bool:
        account_keys = [k for k in self.by_id.values() if k.email == state.email]
        if not account_keys:
            return not state.read_only
        if state.requested_by != state.tenant:
            return False
        return len([k for k in account_keys if k.active]) < MAX_ACTIVE_KEYS

    def _put(self, state: KeyState) -> None:
        self.by_id[state.key_id] = state
        self._by_hash[state.key_hash] = state

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
        return [k for k in self.by_id.values() if k.email == email and k.active]

    def keys_of(self, tenant: str) -> list[KeyState]:
        return sorted((k for k in self.by_id.values() if k.tenant == tenant), key=lambda k: k.created_at)

    def has_account(self, email: str) -> bool:
        return any(k.email == email for k in self.by_id.values())


class KeyRegistry(TopicTable):
    """A KeyBook kept current from the `accounts.keys` ledger."""

    def __init__(self, bootstrap: str, topic: str):
        self.book = KeyBook()
        super().__init__(bootstrap, topic, lambda key, value: self.book.apply(key.decode(), codec.decode(value)[1]))
