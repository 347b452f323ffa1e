"""The identifier space: m-bit ids on a ring, hashing, and interval tests.

Pure functions, no I/O. Every interval is read clockwise from its first end. When both ends
are equal, the open interval (a, a) is the whole ring but a, and the half-open (a, a] is the
whole ring: that is what a lone node, whose successor is itself, needs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

DEFAULT_BITS = 160
MIN_BITS = 3
MAX_BITS = 160  # SHA-1 gives 160 bits; a larger space would leave ids unused.


def between(a: int, x: int, b: int) -> bool:
    """x in the open interval (a, b) on the ring."""
    if a < b:
        return a < x < b
    if a > b:
        return x > a or x < b
    return x != a


def between_right(a: int, x: int, b: int) -> bool:
    """x in the half-open interval (a, b] on the ring."""
    if a < b:
        return a < x <= b
    if a > b:
        return x > a or x <= b
    return True


@dataclass(frozen=True, slots=True)
class IdSpace:
    """The ring of ids 0 .. 2**bits - 1."""

    bits: int = DEFAULT_BITS

    def __post_init__(self) -> None:
        if not MIN_BITS <= self.bits <= MAX_BITS:
            raise ValueError(f"bits must be between {MIN_BITS} and {MAX_BITS}, got {self.bits}")

    @property
    def size(self) -> int:
        return 1 << self.bits

    def hash(self, name: str | bytes) -> int:
        """The id of a name or address: SHA-1, reduced to this space's width."""
        data = name.encode() if isinstance(name, str) else name
        digest = int.from_bytes(hashlib.sha1(data).digest(), "big")
        return digest >> (160 - self.bits)

    def check(self, ident: int) -> int:
        """Return ident if it lies in the space, else raise ValueError."""
        if not 0 <= ident < self.size:
            raise ValueError(f"id {ident} is outside 0..{self.size - 1} ({self.bits}-bit ring)")
        return ident

    def distance(self, a: int, b: int) -> int:
        """Clockwise distance from a to b."""
        return (b - a) % self.size

    def finger_start(self, n: int, i: int) -> int:
        """Start of node n's i-th finger interval: n + 2**i."""
        return (n + (1 << i)) % self.size

    def id_bytes(self, ident: int) -> bytes:
        """Big-endian bytes of an id, as it travels on the wire."""
        return ident.to_bytes((self.bits + 7) // 8, "big")

    def id_from_bytes(self, data: bytes) -> int:
        """Decode an id from the wire, refusing anything outside the space."""
        if len(data) > (self.bits + 7) // 8:
            raise ValueError(f"id of {len(data)} bytes is too long for a {self.bits}-bit ring")
        return self.check(int.from_bytes(data, "big"))
