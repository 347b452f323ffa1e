"""Membership hints on the wire: events and digests survive encoding; bad ones are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chordshare.chord.membership import Digest, MemberEvent, MemberState
from chordshare.ids import IdSpace
from chordshare.transport.membership_codec import MembershipCodec, field_size
from chordshare.v1 import chord_pb2 as pb

SPACE = IdSpace(160)
CODEC = MembershipCodec(SPACE)


@st.composite
def events(draw: st.DrawFn) -> MemberEvent:
    state = draw(st.sampled_from(list(MemberState)))
    address = f"10.0.0.{draw(st.integers(1, 254))}:{draw(st.integers(1, 65535))}"
    if state is not MemberState.ALIVE and draw(st.booleans()):
        address = ""
    return MemberEvent(
        draw(st.integers(0, SPACE.size - 1)), address, draw(st.integers(0, 2**64 - 1)), state
    )


digests = st.builds(
    Digest, st.integers(0, 2**32 - 1), st.lists(st.integers(0, 2**64 - 1), min_size=1).map(tuple)
)


@given(st.lists(events(), max_size=10), st.none() | digests)
def test_gossip_survives_the_wire(evs: list[MemberEvent], digest: Digest | None) -> None:
    msg = CODEC.gossip(evs, digest)
    back = pb.Gossip.FromString(msg.SerializeToString())
    assert CODEC.gossip_from(back) == (evs, digest)


@given(st.lists(events(), max_size=10), st.none() | digests)
def test_field_size_is_what_the_field_adds_to_its_message(
    evs: list[MemberEvent], digest: Digest | None
) -> None:
    gossip = CODEC.gossip(evs, digest)
    bare = pb.PingRequest()
    carrying = pb.PingRequest()
    if evs or digest is not None:
        carrying.gossip.CopyFrom(gossip)
    assert field_size(gossip) == carrying.ByteSize() - bare.ByteSize()


@pytest.mark.parametrize(
    ("state", "wire"),
    [
        (MemberState.ALIVE, pb.MemberEvent.ALIVE),
        (MemberState.FAILED, pb.MemberEvent.FAILED),
        (MemberState.LEFT, pb.MemberEvent.LEFT),
    ],
)
def test_each_state_has_its_own_wire_value(state: MemberState, wire: int) -> None:
    event = MemberEvent(5, "10.0.0.1:7000", 1, state)
    assert CODEC.event(event).state == wire


@pytest.mark.parametrize(
    "msg",
    [
        pb.MemberEvent(id=b"\x01", address="10.0.0.1:7000"),  # no state
        pb.MemberEvent(id=b"\x01", state=pb.MemberEvent.ALIVE),  # alive, no address
        pb.MemberEvent(id=b"\x01" * 21, address="10.0.0.1:7000", state=pb.MemberEvent.ALIVE),
        pb.MemberEvent(id=b"\x01", address="not an address", state=pb.MemberEvent.ALIVE),
    ],
)
def test_a_bad_event_is_refused(msg: pb.MemberEvent) -> None:
    with pytest.raises(ValueError):
        CODEC.event_from(msg)


def test_a_digest_without_arcs_is_refused() -> None:
    with pytest.raises(ValueError):
        CODEC.digest_from(pb.MemberDigest(count=3))
