"""Which version of a name descends from which: the line of versions each one replaced.

Every version stored since lineages were kept carries its ancestry: the versions it
replaced, newest first, up to ANCESTRY_KEPT of them, each as (version, first bytes of its
SHA-256). A first put has none; a replace has the version it replaced and that one's
ancestry; a removal names the version it removed and that one's ancestry. So when two
holders meet with different versions of a name, they can tell a replace (one descends from
the other: the newer wins, nothing is lost) from two writes made apart, on two sides of a
split ring, or from the same base at once (neither descends from the other: concurrent, and
both are kept). A version stored before lineages were kept has `None`: between such
versions only the order of `versions.newer` decides, as it always did.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

ANCESTRY_KEPT = 32  # replaced versions a version remembers; older ones count as ancestors
ID_PREFIX = 8  # bytes of a version's SHA-256 that, with its version, name it

Ancestor = tuple[float, bytes]  # (version, the first ID_PREFIX bytes of its SHA-256)
Ancestry = tuple[Ancestor, ...]
_ENTRY = struct.Struct(">d8s")


def ancestor(version: float, sha256: bytes) -> Ancestor:
    return (version, sha256[:ID_PREFIX])


def child_ancestry(version: float, sha256: bytes, ancestry: Ancestry | None) -> Ancestry:
    """The ancestry of a version that replaces (or removes) the given one."""
    return ((ancestor(version, sha256),) + (ancestry or ()))[:ANCESTRY_KEPT]


def descends(ancestry: Ancestry | None, version: float, sha256: bytes) -> bool:
    """Whether a version with `ancestry` replaced, directly or not, the given version. A
    version older than everything a full ancestry remembers counts as replaced."""
    if ancestry is None:
        return False
    if ancestor(version, sha256) in ancestry:
        return True
    return len(ancestry) >= ANCESTRY_KEPT and version < min(v for v, _ in ancestry)


def encode_ancestry(ancestry: Ancestry | None) -> bytes | None:
    """16 bytes an ancestor, for the catalog and the wire; None stays None."""
    if ancestry is None:
        return None
    return b"".join(_ENTRY.pack(version, prefix) for version, prefix in ancestry)


def decode_ancestry(data: bytes | None) -> Ancestry | None:
    """The inverse of `encode_ancestry` (ValueError if `data` is not a whole number of
    entries, or longer than ANCESTRY_KEPT of them)."""
    if data is None:
        return None
    if len(data) % _ENTRY.size or len(data) > ANCESTRY_KEPT * _ENTRY.size:
        raise ValueError(f"an ancestry is up to {ANCESTRY_KEPT} entries of {_ENTRY.size} bytes")
    return tuple(_ENTRY.unpack_from(data, at) for at in range(0, len(data), _ENTRY.size))


def all_known(ancestries: Sequence[Ancestry | None]) -> bool:
    return all(a is not None for a in ancestries)
