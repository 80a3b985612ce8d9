"""Key rules, unit-tested on the pure KeyBook (log order is the only input)."""
from pipeline.accounts import KeyBook, hash_key, mask, new_key, normalize_email, tenant_for

EMAIL = "ops@example.com"
TENANT = tenant_for(EMAIL)


def creation(n: int, requested_by=TENANT, email=EMAIL) -> dict:
    return {"key_id": f"k{n}", "key_hash": hash_key(f"key-{n}"), "email": email, "tenant": tenant_for(email),
            "masked": "m", "requested_by": requested_by, "created_at": n, "revoked_at": None}


def test_first_key_needs_no_caller_but_later_ones_need_the_accounts_own():
    book = KeyBook()
    book.apply("k1", creation(1, requested_by=None))
    book.apply("k2", creation(2, requested_by=None))            # a stranger asking for this email
    book.apply("k3", creation(3, requested_by=tenant_for("x@y.z")))  # another account's key
    book.apply("k4", creation(4))
    assert [k.key_id for k in book.active_for(EMAIL)] == ["k1", "k4"]
    assert book.refused == {"k2", "k3"}


def test_sixth_active_key_is_refused_until_one_is_revoked():
    book = KeyBook()
    book.apply("k1", creation(1, requested_by=None))
    for n in range(2, 7):
        book.apply(f"k{n}", creation(n))
    assert [k.key_id for k in book.active_for(EMAIL)] == ["k1", "k2", "k3", "k4", "k5"]
    book.apply("k2", {**creation(2), "revoked_at": 100})
    book.apply("k7", creation(7))
    assert [k.key_id for k in book.active_for(EMAIL)] == ["k1", "k3", "k4", "k5", "k7"]


def test_the_last_active_key_cannot_be_revoked():
    book = KeyBook()
    book.apply("k1", creation(1, requested_by=None))
    book.apply("k2", creation(2))
    book.apply("k1", {**creation(1), "revoked_at": 50})
    book.apply("k2", {**creation(2), "revoked_at": 51})
    assert [(k.key_id, k.active) for k in book.keys_of(TENANT)] == [("k1", False), ("k2", True)]


def test_authenticate_only_active_keys():
    book = KeyBook()
    book.apply("k1", creation(1, requested_by=None))
    book.apply("k2", creation(2))
    assert book.authenticate("key-1").key_id == "k1"
    assert book.authenticate("key-9") is None
    book.apply("k1", {**creation(1), "revoked_at": 9})
    assert book.authenticate("key-1") is None


def test_key_format_and_account_identity():
    key = new_key()
    assert key.startswith("sk_live_") and len(key) == 8 + 43  # 256 bits, URL-safe base64
    assert set(key[8:]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert mask(key) == f"{key[:12]}...{key[-4:]}"
    assert normalize_email("  Ops@Example.COM ") == EMAIL
    assert tenant_for(" OPS@example.com") == TENANT


def test_read_only_keys_never_leave_an_account_without_a_full_key():
    book = KeyBook()
    book.apply("k0", {**creation(0, requested_by=None), "read_only": True})  # a read-only first key
    book.apply("k1", creation(1, requested_by=None))
    book.apply("k2", {**creation(2), "read_only": True})
    book.apply("k1", {**creation(1), "revoked_at": 50})  # only read-only k2 would remain
    book.apply("k3", creation(3))
    book.apply("k1", {**creation(1), "revoked_at": 60})  # now k3 remains
    book.apply("k2", {**creation(2), "revoked_at": 70})
    assert [(k.key_id, k.read_only, k.active) for k in book.keys_of(TENANT)] == [
        ("k1", False, False), ("k2", True, False), ("k3", False, True)]
    assert book.refused == {"k0", "k1@50"}


class NoScan(dict):
    """A dict that fails when iterated: what a request or the replay looks up must not scan the book."""

    def __iter__(self):
        raise AssertionError("scanned")

    values = items = keys = __iter__


def test_lookups_and_rules_use_the_indexes_not_a_scan():
    book = KeyBook()
    book.by_id = NoScan()
    book.apply("k1", creation(1, requested_by=None))
    for n in range(2, 5):
        book.apply(f"k{n}", creation(n))
    book.apply("k2", {**creation(2), "revoked_at": 9})
    book.apply("k10", creation(10, requested_by=None, email="other@example.com"))
    assert book.authenticate("key-3").key_id == "k3" and book.authenticate("key-2") is None
    assert book.has_account(EMAIL) and not book.has_account("nobody@example.com")
    assert [k.key_id for k in book.active_for(EMAIL)] == ["k1", "k3", "k4"]
    assert [(k.key_id, k.active) for k in book.keys_of(TENANT)] == [("k1", True), ("k2", False), ("k3", True),
                                                                    ("k4", True)]
    assert [k.key_id for k in book.keys_of(tenant_for("other@example.com"))] == ["k10"]
    assert book.revocable(book.by_id["k1"]) and book.keys_of("acct_none") == [] and book.active_for("x@y.z") == []
