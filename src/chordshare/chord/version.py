"""Which peers a node can talk to: the protocol versions each speaks.

Every build speaks a range of versions, oldest to newest. Two nodes can talk when their
ranges meet, and then speak the newest version both know; a node that refuses a peer says
so in one line. A ring upgrades by steps that keep every pair of its nodes in reach: a build
that still speaks the version the ring runs on can join it, and once every node speaks a
newer one, a later build may drop the old.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The newest version this build speaks. 2: a lookup asks its owner candidate to confirm it
# owns the key (ConfirmOwner); a version-1 node answers that with a plain step, which is
# taken as a ping, so the two still make one ring.
PROTOCOL = 2
MIN_PROTOCOL = 1  # the oldest version this build still speaks
# What a peer that sends no version speaks: builds that send none all speak version 1.
UNVERSIONED = 1
_RANGE_TEXT = re.compile(r"([0-9]+)(?:\.\.([0-9]+))?")


@dataclass(frozen=True, slots=True)
class ProtocolRange:
    """The versions one node speaks: every one from `oldest` to `newest`."""

    oldest: int
    newest: int

    def __post_init__(self) -> None:
        if not 1 <= self.oldest <= self.newest:
            raise ValueError(f"no protocol range from {self.oldest} to {self.newest}")

    def __str__(self) -> str:
        return str(self.newest) if self.oldest == self.newest else f"{self.oldest}..{self.newest}"

    @classmethod
    def parse(cls, text: str) -> ProtocolRange:
        """The range `str` wrote ("2", "1..2"); ValueError for anything else."""
        found = _RANGE_TEXT.fullmatch(text)
        if found is None:
            raise ValueError(f"not a protocol range: {text!r}")
        oldest = int(found[1])
        return cls(oldest, int(found[2] or oldest))

    @classmethod
    def from_wire(cls, oldest: int, newest: int) -> ProtocolRange:
        """The range a peer sent; 0 is a field it left out. A peer that sends no newest
        version speaks UNVERSIONED only; one that sends no oldest speaks its newest only."""
        if newest == 0:
            return cls(UNVERSIONED, UNVERSIONED)
        return cls(oldest or newest, newest)

    def common(self, other: ProtocolRange) -> int | None:
        """The version two nodes speak to each other: the newest both know; None when
        their ranges do not meet."""
        newest = min(self.newest, other.newest)
        return newest if max(self.oldest, other.oldest) <= newest else None


THIS_BUILD = ProtocolRange(MIN_PROTOCOL, PROTOCOL)


def refusal(peer: str, theirs: ProtocolRange, mine: ProtocolRange) -> str | None:
    """Why a node speaking `mine` cannot talk to `peer`, which speaks `theirs`, in one line;
    None when it can."""
    if mine.common(theirs) is not None:
        return None
    return (
        f"peer {peer} speaks chordshare protocol {theirs}; this node speaks {mine}: "
        "upgrade the ring together"
    )
