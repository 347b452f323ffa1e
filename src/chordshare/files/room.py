"""Which peers have room for a copy: what repair may push where.

A node that pushes a copy to a peer whose disk is full only wastes both their bandwidth:
the bytes are refused when they arrive (or when the first chunk finds no space), and the
next round sends them again. So every offer answer says how many bytes the answering node
can still take (`OfferAnswer.room`), and a push that was refused for space counts as room
for nothing until the peer reports more. A peer that never reports its room (an older
build) is left alone for a while after each refusal, the wait doubling up to MAX_WAIT.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_WAIT = 30.0  # seconds a peer that refused for space and reports no room is let be
MAX_WAIT = 600.0


@dataclass
class _Peer:
    room: int | None = None  # bytes it said it can take; None: never said
    refused_at: float | None = None  # when it last refused a push for space
    wait: float = 0.0  # how long after that refusal it is let be (no room reported)


class RoomTable:
    """What this node knows of its peers' room, from their answers and refusals."""

    def __init__(self) -> None:
        self._peers: dict[str, _Peer] = {}

    def reported(self, address: str, room: int | None) -> None:
        """A peer's answer said how many bytes it can take (None: it did not say)."""
        if room is None:
            return
        peer = self._peers.setdefault(address, _Peer())
        peer.room, peer.refused_at, peer.wait = room, None, 0.0

    def refused(self, address: str, now: float) -> None:
        """A push to the peer was refused for space."""
        peer = self._peers.setdefault(address, _Peer())
        peer.room = 0 if peer.room is not None else None
        peer.wait = min(MAX_WAIT, peer.wait * 2 if peer.wait else FIRST_WAIT)
        peer.refused_at = now

    def took(self, address: str, size: int) -> None:
        """A push of `size` bytes to the peer was taken: it has that much less room."""
        peer = self._peers.get(address)
        if peer is not None and peer.room is not None:
            peer.room = max(0, peer.room - size)

    def may_push(self, address: str, size: int, now: float) -> bool:
        """Whether a copy of `size` bytes may be pushed to the peer now."""
        peer = self._peers.get(address)
        if peer is None:
            return True
        if peer.room is not None:
            return size <= peer.room
        return peer.refused_at is None or now - peer.refused_at >= peer.wait
