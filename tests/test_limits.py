from pipeline.limits import Denied, IntervalLimiter


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_one_grant_per_interval_with_exact_retry_after():
    clock = Clock()
    lim = IntervalLimiter(10, clock=clock)
    assert lim.acquire("a") is None
    clock.now += 2.58
    assert lim.acquire("a") == Denied(7420)
    assert Denied(7420).retry_after_seconds == 8
    assert lim.acquire("b") is None  # other keys are independent
    clock.now += 7.42
    assert lim.acquire("a") is None


def test_retry_after_rounds_up_never_down():
    clock = Clock()
    lim = IntervalLimiter(10, clock=clock)
    lim.acquire("a")
    clock.now += 9.9999
    assert lim.acquire("a") == Denied(1)
    assert Denied(1).retry_after_seconds == 1


def test_release_gives_the_slot_back():
    lim = IntervalLimiter(10, clock=Clock())
    assert lim.acquire("a") is None
    lim.release("a")
    assert lim.acquire("a") is None


def test_expired_keys_are_pruned():
    clock = Clock()
    lim = IntervalLimiter(10, clock=clock, prune_every=3)
    lim.acquire("a")
    lim.acquire("b")
    clock.now += 11
    lim.acquire("c")
    assert set(lim._next) == {"c"}
