"""Adaptive deadlines and node-wide suspicion of peers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chordshare.transport.address import is_loopback, is_wildcard, normalize_address, parse_address
from chordshare.transport.health import PeerHealth


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@given(st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=50))
def test_deadline_stays_between_floor_and_ceiling(samples: list[float]) -> None:
    health = PeerHealth(floor=0.1, ceiling=2.0)
    for rtt in samples:
        health.record_success("a:1", rtt)
        assert 0.1 <= health.timeout_for("a:1") <= 2.0


def test_deadline_follows_round_trips() -> None:
    health = PeerHealth(floor=0.05, ceiling=2.0, initial=1.0)
    assert health.timeout_for("a:1") == 1.0  # nothing known yet
    for _ in range(30):
        health.record_success("a:1", 0.010)
    assert health.timeout_for("a:1") == pytest.approx(0.05)  # steady 10 ms: the floor
    for _ in range(30):
        health.record_success("b:1", 0.300)
    assert 0.3 <= health.timeout_for("b:1") < 0.5
    # A peer never heard from gets the node-wide estimate, not the cold 1 s.
    assert health.timeout_for("c:1") < 1.0


def test_suspicion_is_shared_and_ages_out() -> None:
    clock = FakeClock()
    health = PeerHealth(suspicion_ttl=10.0, clock=clock)
    health.record_failure("a:1")
    assert "a:1" in health and "b:1" not in health
    assert health.suspected() == ["a:1"]
    clock.now = 5.0
    assert "a:1" in health
    health.record_success("a:1", 0.01)  # it answered again
    assert "a:1" not in health
    health.record_failure("a:1")
    clock.now = 16.0
    assert "a:1" not in health  # retried after the suspicion aged out


@pytest.mark.parametrize(
    ("text", "normal"),
    [("127.0.0.1:7000", "127.0.0.1:7000"), ("[::1]:80", "[::1]:80"), (" node-3:9 ", "node-3:9")],
)
def test_addresses_normalize(text: str, normal: str) -> None:
    assert normalize_address(text) == normal


@pytest.mark.parametrize(
    "text", ["", "7000", "host", "host:", ":7000", "host:0", "host:70000", "::1:80", "a b:1"]
)
def test_malformed_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="malformed address"):
        parse_address(text)


def test_wildcard_and_loopback() -> None:
    assert is_wildcard("0.0.0.0:0") and is_wildcard("[::]:7000")
    assert not is_wildcard("10.0.0.1:7000")
    assert is_loopback("127.0.0.5:1") and is_loopback("localhost:1") and is_loopback("[::1]:1")
    assert not is_loopback("node-1:7000")
