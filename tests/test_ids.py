from pipeline.ids import EPOCH_MS, IdGenerator, id_time_ms


def clock_at(ms):
    return lambda: ms * 1_000_000


def test_layout_time_node_sequence():
    gen = IdGenerator(node_id=5, clock=clock_at(EPOCH_MS + 1000))
    assert [gen.next_id() for _ in range(3)] == [(1000 << 12) | (5 << 7) | s for s in range(3)]


def test_ids_stay_exact_in_javascript_until_2095():
    gen = IdGenerator(node_id=31, clock=clock_at(EPOCH_MS + (1 << 41) - 2))
    assert gen.next_id() < 2**53


def test_sequence_exhaustion_borrows_next_millisecond_instead_of_repeating():
    gen = IdGenerator(node_id=0, clock=clock_at(EPOCH_MS + 10))
    ids = [gen.next_id() for _ in range(300)]
    assert len(set(ids)) == 300
    assert ids == sorted(ids)
    assert id_time_ms(ids[127]) == EPOCH_MS + 10 and id_time_ms(ids[128]) == EPOCH_MS + 11


def test_clock_going_backwards_never_repeats():
    now = [EPOCH_MS + 500]
    gen = IdGenerator(node_id=1, clock=lambda: now[0] * 1_000_000)
    first = gen.next_id()
    now[0] -= 100
    assert gen.next_id() > first


def test_distinct_nodes_never_collide():
    a = IdGenerator(node_id=1, clock=clock_at(EPOCH_MS + 7))
    b = IdGenerator(node_id=2, clock=clock_at(EPOCH_MS + 7))
    assert not {a.next_id() for _ in range(200)} & {b.next_id() for _ in range(200)}
