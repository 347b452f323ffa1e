"""Which peers a node talks to: two ranges of protocol versions meet or they do not, a peer
that names none speaks version 1, and a refusal is one line naming both sides."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chordshare.chord.version import (
    MIN_PROTOCOL,
    PROTOCOL,
    THIS_BUILD,
    UNVERSIONED,
    ProtocolRange,
    refusal,
)

versions = st.integers(1, 40)


@st.composite
def ranges(draw: st.DrawFn) -> ProtocolRange:
    oldest = draw(versions)
    return ProtocolRange(oldest, draw(st.integers(oldest, 40)))


def spoken(r: ProtocolRange) -> set[int]:
    return set(range(r.oldest, r.newest + 1))


@given(ranges(), ranges())
def test_two_ranges_speak_the_newest_version_both_know(a: ProtocolRange, b: ProtocolRange) -> None:
    both = spoken(a) & spoken(b)
    assert a.common(b) == b.common(a) == (max(both) if both else None)


@given(ranges(), ranges(), st.from_regex(r"[a-z0-9.]{1,20}:[0-9]{1,5}", fullmatch=True))
def test_a_refusal_is_one_line_naming_both_sides(
    mine: ProtocolRange, theirs: ProtocolRange, peer: str
) -> None:
    line = refusal(peer, theirs, mine)
    if mine.common(theirs) is not None:
        assert line is None
        return
    assert line == (
        f"peer {peer} speaks chordshare protocol {theirs}; this node speaks {mine}: "
        "upgrade the ring together"
    )
    assert "\n" not in line


@given(ranges())
def test_a_range_reads_back_from_its_text(r: ProtocolRange) -> None:
    assert ProtocolRange.parse(str(r)) == r
    assert str(r) == (str(r.oldest) if r.oldest == r.newest else f"{r.oldest}..{r.newest}")


@given(ranges())
def test_a_range_reads_back_from_the_wire(r: ProtocolRange) -> None:
    assert ProtocolRange.from_wire(r.oldest, r.newest) == r
    assert ProtocolRange.from_wire(0, r.newest) == ProtocolRange(r.newest, r.newest)


@given(st.integers(0, 40))
def test_a_peer_that_names_no_version_speaks_version_1(oldest: int) -> None:
    assert ProtocolRange.from_wire(oldest, 0) == ProtocolRange(UNVERSIONED, UNVERSIONED)


def test_this_build_talks_to_peers_that_name_no_version() -> None:
    assert ProtocolRange(MIN_PROTOCOL, PROTOCOL) == THIS_BUILD
    assert THIS_BUILD.common(ProtocolRange.from_wire(0, 0)) == UNVERSIONED
    assert refusal("127.0.0.1:7001", ProtocolRange(3, 3), ProtocolRange(1, 2)) == (
        "peer 127.0.0.1:7001 speaks chordshare protocol 3; this node speaks 1..2: "
        "upgrade the ring together"
    )


@pytest.mark.parametrize("text", ["", "0", "2..1", "x", "1..", "1..2..3", "-1"])
def test_what_is_no_range_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        ProtocolRange.parse(text)


@pytest.mark.parametrize(("oldest", "newest"), [(0, 1), (2, 1), (-1, 3)])
def test_a_range_runs_upwards_from_1(oldest: int, newest: int) -> None:
    with pytest.raises(ValueError):
        ProtocolRange(oldest, newest)
