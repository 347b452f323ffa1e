"""Membership hints on the wire: events and digests to and from their protobuf messages.

A runtime sets the `gossip` field of a peer request or reply from `gossip`, and hands what
`gossip_from` decodes to `Membership.apply` (events) and `Membership.diff` (a digest).
Decoding checks what a peer sent, as `Codec` does: a bad id, a missing state or a live
member without an address raises `ValueError`.
"""

from __future__ import annotations

from collections.abc import Sequence

from chordshare.chord.membership import Digest, MemberEvent, MemberState
from chordshare.ids import IdSpace
from chordshare.transport.address import normalize_address
from chordshare.v1 import chord_pb2 as pb

_TO_WIRE = {
    MemberState.ALIVE: pb.MemberEvent.ALIVE,
    MemberState.FAILED: pb.MemberEvent.FAILED,
    MemberState.LEFT: pb.MemberEvent.LEFT,
}
_FROM_WIRE = {wire: state for state, wire in _TO_WIRE.items()}
# A digest of more arcs than this is refused: it would cost more to compare than to send.
MAX_ARCS = 4096


class MembershipCodec:
    def __init__(self, space: IdSpace) -> None:
        self.space = space

    def event(self, value: MemberEvent) -> pb.MemberEvent:
        return pb.MemberEvent(
            id=self.space.id_bytes(value.id),
            address=value.address,
            incarnation=value.incarnation,
            state=_TO_WIRE[value.state],
        )

    def event_from(self, msg: pb.MemberEvent) -> MemberEvent:
        state = _FROM_WIRE.get(msg.state)
        if state is None:
            raise ValueError(f"member event with state {msg.state}")
        if state is MemberState.ALIVE and not msg.address:
            raise ValueError("a live member without an address")
        address = normalize_address(msg.address) if msg.address else ""
        return MemberEvent(self.space.id_from_bytes(msg.id), address, msg.incarnation, state)

    def digest(self, value: Digest) -> pb.MemberDigest:
        return pb.MemberDigest(count=value.count, arcs=value.arcs)

    def digest_from(self, msg: pb.MemberDigest) -> Digest:
        if not 0 < len(msg.arcs) <= MAX_ARCS:
            raise ValueError(f"a digest of {len(msg.arcs)} arcs")
        return Digest(msg.count, tuple(msg.arcs))

    def gossip(self, events: Sequence[MemberEvent], digest: Digest | None = None) -> pb.Gossip:
        msg = pb.Gossip(events=[self.event(e) for e in events])
        if digest is not None:
            msg.digest.CopyFrom(self.digest(digest))
        return msg

    def gossip_from(self, msg: pb.Gossip) -> tuple[list[MemberEvent], Digest | None]:
        events = [self.event_from(e) for e in msg.events]
        digest = self.digest_from(msg.digest) if msg.HasField("digest") else None
        return events, digest


def field_size(msg: pb.Gossip) -> int:
    """Bytes the gossip adds to the message that carries it: its tag, length and body; 0
    for one with nothing in it (left unset)."""
    body = msg.ByteSize()
    if not body and not msg.HasField("digest"):
        return 0
    return framed_size(body)


def framed_size(body: int) -> int:
    """Bytes of a field of `body` bytes inside a message: its tag, length and body."""
    return 1 + varint_size(body) + body


def varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


__all__ = ["MAX_ARCS", "MembershipCodec", "field_size"]
