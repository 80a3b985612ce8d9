from pipeline.limits import Denied, Grant, IntervalLimiter


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_one_grant_per_interval_with_exact_retry_after():
    clock = Clock()
    lim = IntervalLimiter(10, clock=clock)
    assert isinstance(lim.acquire("a"), Grant)
    clock.now += 2.58
    assert lim.acquire("a") == Denied(7420)
    assert Denied(7420).retry_after_seconds == 8
    assert isinstance(lim.acquire("b"), Grant)  # other keys are independent
    clock.now += 7.42
    assert isinstance(lim.acquire("a"), Grant)


def test_retry_after_rounds_up_never_down():
    clock = Clock()
    lim = IntervalLimiter(10, clock=clock)
    lim.acquire("a")
    clock.now += 9.9999
    assert lim.acquire("a") == Denied(1)
    assert Denied(1).retry_after_seconds == 1


def test_release_gives_the_slot_back():
    lim = IntervalLimiter(10, clock=Clock())
    grant = lim.acquire("a")
    assert lim.release(grant) is True
    assert isinstance(lim.acquire("a"), Grant)


def test_only_the_holder_of_a_window_can_release_it():
    clock = Clock()
    lim = IntervalLimiter(10, clock=clock)
    first = lim.acquire("a")
    clock.now += 10
    second = lim.acquire("a")  # the first window ended; a new holder
    assert first.token != second.token
    assert lim.release(first) is False  # a late failure of the first report must not free the second's window
    assert lim.acquire("a") == Denied(10_000)
    assert lim.release(Grant("a", 12345)) is False  # a made-up token frees nothing either
    assert lim.release(second) is True
    assert lim.release(second) is False  # twice is once
    assert isinstance(lim.acquire("a", token=77), Grant)
    assert lim.acquire("a", token=78) == Denied(10_000)


def test_a_report_stored_elsewhere_closes_the_window_until_its_end():
    clock, wall = Clock(), Clock(1_800_000_000.0)
    lim = IntervalLimiter(10, clock=clock, wall=wall)
    lim.mark("a", 1_800_000_000_000 - 4_000, token=5)  # granted 4 s ago on another replica
    assert lim.acquire("a") == Denied(6000)
    assert lim.release(Grant("a", 5)) is False  # no one here holds it
    lim.mark("b", 1_800_000_000_000 - 10_000, token=6)  # its window has ended: no effect
    assert isinstance(lim.acquire("b"), Grant)
    clock.now += 6
    wall.now += 6
    assert isinstance(lim.acquire("a"), Grant)


def test_a_replica_seeing_its_own_report_changes_nothing():
    clock, wall = Clock(), Clock(1_800_000_000.0)
    lim = IntervalLimiter(10, clock=clock, wall=wall)
    grant = lim.acquire("a", token=41)
    wall.now += 0.2  # the report comes back from Kafka a little later
    clock.now += 0.2
    lim.mark("a", 1_800_000_000_000 + 100, token=41)  # made 0.1 s after the grant's clock reading
    assert lim.release(grant) is True  # still the holder: its mark did not take the window over
    # a later report of another replica takes the window over (and its holder cannot release it)
    grant = lim.acquire("a", token=42)
    lim.mark("a", 1_800_000_000_000 + 1_000, token=99)
    assert lim.release(grant) is False
    assert lim.acquire("a") == Denied(10_800)  # 0.8 s from now + 10 s


def test_expired_keys_are_pruned():
    clock = Clock()
    lim = IntervalLimiter(10, clock=clock, prune_every=3)
    lim.acquire("a")
    lim.acquire("b")
    clock.now += 11
    lim.acquire("c")
    assert set(lim._next) == {"c"}
