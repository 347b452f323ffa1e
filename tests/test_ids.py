"""The identifier space: interval tests against a brute-force walk, hashing, encoding."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chordshare.ids import DEFAULT_BITS, IdSpace, between, between_right


def walk(a: int, b: int, size: int) -> list[int]:
    """The ids met walking clockwise from a (excluded) to b (included), a full turn when
    a == b: the definition of (a, b]."""
    out = []
    x = (a + 1) % size
    while True:
        out.append(x)
        if x == b:
            return out
        x = (x + 1) % size


@pytest.mark.parametrize("bits", [3, 4, 5])
def test_intervals_match_a_walk_round_the_ring_exhaustively(bits: int) -> None:
    size = 1 << bits
    for a in range(size):
        for b in range(size):
            half_open = set(walk(a, b, size))
            open_ = half_open - {b}
            for x in range(size):
                assert between_right(a, x, b) == (x in half_open), (a, x, b)
                assert between(a, x, b) == (x in open_), (a, x, b)


small = st.integers(3, 8).flatmap(
    lambda bits: st.tuples(st.just(bits), *(st.integers(0, (1 << bits) - 1) for _ in range(3)))
)


@given(small)
def test_intervals_match_a_walk_in_small_spaces(case: tuple[int, int, int, int]) -> None:
    bits, a, x, b = case
    path = walk(a, b, 1 << bits)
    assert between_right(a, x, b) == (x in path)
    assert between(a, x, b) == (x in path[:-1])


big = st.integers(0, (1 << 160) - 1)


def in_half_open(a: int, x: int, b: int, size: int) -> bool:
    """(a, b] by distances: x is at most as far clockwise from a as b is (a full turn when
    a == b)."""
    dx = (x - a) % size or size
    db = (b - a) % size or size
    return dx <= db


@given(big, big, big)
def test_intervals_on_the_160_bit_ring(a: int, x: int, b: int) -> None:
    size = 1 << 160
    assert between_right(a, x, b) == in_half_open(a, x, b, size)
    assert between(a, x, b) == (in_half_open(a, x, b, size) and x != b)


@given(big, big)
def test_intervals_on_the_160_bit_ring_at_their_ends(a: int, b: int) -> None:
    assert not between(a, a, b)
    assert not between(a, b, b)
    assert between_right(a, b, b)
    assert between_right(a, a, b) == (a == b)
    assert between(a, (a + 1) % (1 << 160), b) == ((a + 1) % (1 << 160) != b)


@given(big, big, big)
def test_half_open_intervals_split_the_ring(a: int, x: int, b: int) -> None:
    """(a, b] and (b, a] cover the ring, and do not overlap unless a == b."""
    assert between_right(a, x, b) or between_right(b, x, a)
    if a != b:
        assert between_right(a, x, b) != between_right(b, x, a)


@given(big, big, big)
def test_open_intervals_and_their_ends_split_the_ring(a: int, x: int, b: int) -> None:
    """With a != b, the ring is the disjoint union of (a, b), {b}, (b, a), {a}."""
    if a == b:
        return
    parts = [between(a, x, b), x == b, between(b, x, a), x == a]
    assert sum(parts) == 1


@given(big, big)
def test_equal_ends(a: int, x: int) -> None:
    assert between_right(a, x, a)
    assert between(a, x, a) == (x != a)


# Hashing.


@given(st.integers(3, 160), st.binary(max_size=64))
def test_hash_is_the_top_bits_of_sha1(bits: int, data: bytes) -> None:
    space = IdSpace(bits)
    full = int.from_bytes(hashlib.sha1(data).digest(), "big")
    h = space.hash(data)
    assert 0 <= h < space.size
    assert h == full >> (160 - bits)
    assert h == space.hash(data)


@given(st.text(max_size=40))
def test_hash_of_text_is_the_hash_of_its_utf8(name: str) -> None:
    space = IdSpace()
    assert space.hash(name) == space.hash(name.encode("utf-8"))


def test_hash_in_the_full_space_is_the_sha1_digest() -> None:
    space = IdSpace(160)
    name = "10.0.0.1:7000"
    assert space.hash(name) == int(hashlib.sha1(name.encode()).hexdigest(), 16)
    assert DEFAULT_BITS == 160 and IdSpace().bits == 160


def test_hash_of_a_small_space_keeps_the_high_bits() -> None:
    digest = hashlib.sha1(b"abc").digest()  # a9993e36...
    assert IdSpace(8).hash(b"abc") == digest[0] == 0xA9
    assert IdSpace(4).hash(b"abc") == 0xA


# Checking and constructing.


@pytest.mark.parametrize("bits", [3, 5, 8, 160])
def test_check_accepts_exactly_the_space(bits: int) -> None:
    space = IdSpace(bits)
    assert space.size == 2**bits
    assert space.check(0) == 0
    assert space.check(2**bits - 1) == 2**bits - 1
    with pytest.raises(ValueError):
        space.check(-1)
    with pytest.raises(ValueError):
        space.check(2**bits)


@pytest.mark.parametrize("bits", [-1, 0, 1, 2, 161, 256])
def test_space_rejects_bad_widths(bits: int) -> None:
    with pytest.raises(ValueError):
        IdSpace(bits)


@pytest.mark.parametrize("bits", [3, 160])
def test_space_accepts_its_limits(bits: int) -> None:
    assert IdSpace(bits).bits == bits


# Wire encoding.


@given(st.integers(3, 160).flatmap(lambda b: st.tuples(st.just(b), st.integers(0, 2**b - 1))))
def test_id_bytes_round_trip(case: tuple[int, int]) -> None:
    bits, ident = case
    space = IdSpace(bits)
    data = space.id_bytes(ident)
    assert len(data) == (bits + 7) // 8
    assert space.id_from_bytes(data) == ident
    # A shorter encoding (leading zero bytes dropped) decodes to the same id.
    assert space.id_from_bytes(data.lstrip(b"\0")) == ident


@pytest.mark.parametrize("bits", [3, 8, 9, 160])
def test_id_from_bytes_rejects_too_long_input(bits: int) -> None:
    space = IdSpace(bits)
    with pytest.raises(ValueError):
        space.id_from_bytes(b"\0" * ((bits + 7) // 8 + 1))


def test_id_from_bytes_rejects_ids_outside_a_narrow_space() -> None:
    space = IdSpace(5)
    assert space.id_from_bytes(bytes([31])) == 31
    with pytest.raises(ValueError):
        space.id_from_bytes(bytes([32]))
    with pytest.raises(ValueError):
        IdSpace(9).id_from_bytes(b"\x02\x00")


# Distances and finger starts.


@settings(max_examples=200)
@given(small)
def test_distance_counts_clockwise_steps(case: tuple[int, int, int, int]) -> None:
    bits, a, b, _ = case
    space = IdSpace(bits)
    d = space.distance(a, b)
    assert 0 <= d < space.size
    assert (a + d) % space.size == b
    assert d == (0 if a == b else len(walk(a, b, space.size)))
    if a != b:
        assert d + space.distance(b, a) == space.size


@given(st.integers(3, 160).flatmap(lambda b: st.tuples(st.just(b), st.integers(0, 2**b - 1))))
def test_finger_starts(case: tuple[int, int]) -> None:
    bits, n = case
    space = IdSpace(bits)
    starts = [space.finger_start(n, i) for i in range(bits)]
    assert starts[0] == (n + 1) % space.size
    for i, s in enumerate(starts):
        assert 0 <= s < space.size
        assert space.distance(n, s) == 2**i
    # The last finger start is the point opposite n.
    assert space.distance(starts[-1], n) == space.size // 2
