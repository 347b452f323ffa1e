"""Puts that ended unfinished: what the owner keeps of one, for how long, and what a rerun
of it sends.

A client's put cut off before its commit (the client killed, its connection lost, the
owner stopped) leaves chunks on the owner's disk. The owner keeps them as the name's
*unfinished put*: each chunk's index and SHA-256, for `ttl` seconds after the put ended
(the node's --unfinished-put-ttl, an hour by default), counted in its quota. One per name:
a later put of the name that ends unfinished replaces it, and a commit of the name ends it.

A rerun of the put hears of it in the owner's FindFile answer. When the file is as long as
the unfinished put said, in chunks of the same size, the rerun hashes the file first and
sends only the chunks the owner lacks. A file that is not the one the interrupted put was
sending (another size, or a chunk kept whose hash is not the file's at that index) is put
from the start: every chunk is sent again, and what was kept is dropped once it ends.
Either way the owner checks every chunk and the whole file's SHA-256 as for any put.

Plain values and decisions: the catalog keeps the records, the put pipeline makes them and
the putter acts on them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from chordshare.files.manifest import DIGEST_BYTES, MAX_CHUNKS, Manifest
from chordshare.files.messages import FileError, PutCutOff, Refusal

DEFAULT_TTL = 3600.0  # seconds an unfinished put's chunks are kept after it ended
SWEEP_AT_MOST_EVERY = 60.0  # seconds between looks for unfinished puts past their time

Held = tuple[tuple[int, bytes], ...]  # (index, SHA-256) of each chunk kept, by index
_ENTRY = struct.Struct(">I32s")


@dataclass(frozen=True, slots=True)
class UnfinishedPut:
    """What a node keeps of a put of `name` that ended unfinished at `ended` (its clock):
    the chunks it stored, of a file of `size` bytes in `chunk_size`-byte chunks."""

    name: str
    size: int
    chunk_size: int
    held: Held
    ended: float

    @property
    def chunk_count(self) -> int:
        return -(-self.size // self.chunk_size)

    def chunk_length(self, index: int) -> int:
        return max(0, min(self.chunk_size, self.size - index * self.chunk_size))

    @property
    def held_bytes(self) -> int:
        """The bytes of the file the node holds for a rerun."""
        return sum(self.chunk_length(index) for index, _ in self.held)

    def check(self) -> None:
        """ValueError when the record contradicts itself (as a peer may send it)."""
        if self.size < 0 or self.chunk_size <= 0:
            raise ValueError("an unfinished put's size must be >= 0 and its chunk size > 0")
        if self.chunk_count > MAX_CHUNKS:
            raise ValueError(f"a file has at most {MAX_CHUNKS} chunks")
        indexes = [index for index, _ in self.held]
        if indexes != sorted(set(indexes)):
            raise ValueError("an unfinished put lists its chunks once each, by index")
        if indexes and not 0 <= indexes[0] <= indexes[-1] < self.chunk_count:
            raise ValueError(f"an unfinished put's chunks are 0..{self.chunk_count - 1}")
        if any(len(digest) != DIGEST_BYTES for _, digest in self.held):
            raise ValueError("an unfinished put's chunk hashes are SHA-256 digests (32 bytes)")


def encode_held(held: Held) -> bytes:
    """36 bytes a chunk kept: its index (big-endian) and SHA-256; for the catalog."""
    return b"".join(_ENTRY.pack(index, digest) for index, digest in held)


def decode_held(data: bytes) -> Held:
    """The inverse of `encode_held` (ValueError if `data` is not whole entries)."""
    if len(data) % _ENTRY.size:
        raise ValueError(f"chunks kept are entries of {_ENTRY.size} bytes")
    return tuple(_ENTRY.unpack_from(data, at) for at in range(0, len(data), _ENTRY.size))


# The owner's side.


def kept_after(error: BaseException, replica: bool, ttl: float) -> bool:
    """Whether a put that ended before its commit with `error` leaves an unfinished put
    behind: a client's put that was cut off (its client went away or stopped sending, its
    stream ended early: `PutCutOff`, or the node is stopping) or turned away for now
    (UNAVAILABLE, ABORTED). Not a replica (its holder asks again which chunks are
    missing), nor a put refused for what it sent or for room: that one starts over, and
    nothing of it is kept."""
    if replica or ttl <= 0:
        return False
    if isinstance(error, FileError) and not isinstance(error, PutCutOff):
        return error.refusal in (Refusal.UNAVAILABLE, Refusal.ABORTED)
    return True


def held_after(
    stored: Mapping[int, bytes], manifest: Manifest | None, on_disk: Callable[[bytes], bool]
) -> Held:
    """The chunks an unfinished put keeps: those it stored on disk (`stored`, by index)
    and, for a put whose manifest came first, every other chunk of that manifest the node
    has on disk (those the client did not send, kept by an earlier unfinished put or by a
    stored file). Nothing when the put stored nothing on disk: an earlier unfinished put
    of the name then stays as it was."""
    kept = {index: digest for index, digest in stored.items() if on_disk(digest)}
    if not kept:
        return ()
    if manifest is not None:
        for index, digest in enumerate(manifest.chunks):
            if index not in kept and on_disk(digest):
                kept[index] = digest
    return tuple(sorted(kept.items()))


def expired(record: UnfinishedPut, now: float, ttl: float) -> bool:
    """Whether an unfinished put's time is up. One that ended further in the future than
    `ttl` (the clock was set back) is past its time too, so that nothing stays forever."""
    return now - record.ended >= ttl or record.ended - now > ttl


def sweep_every(ttl: float) -> float:
    """Seconds between looks for unfinished puts past their time: a quarter of the ttl,
    so none outlives it by much, and at most a minute."""
    return min(SWEEP_AT_MOST_EVERY, max(ttl / 4, 0.05))


def to_sweep(
    records: Collection[UnfinishedPut], now: float, ttl: float, busy: Collection[str]
) -> list[str]:
    """The names whose unfinished puts are past their time, but for those being put right
    now (a rerun under way may be sending exactly the chunks that are missing)."""
    return [r.name for r in records if r.name not in busy and expired(r, now, ttl)]


# The putter's side.


@dataclass(frozen=True, slots=True)
class Resume:
    """What a rerun of an interrupted put found on the owner: `held_bytes` of the file
    there already (not sent again), or, `changed`, that the file is not the one the
    interrupted put was sending (it is then put from the start)."""

    held_bytes: int
    changed: bool = False


def resumable(record: UnfinishedPut | None, size: int, chunk_size: int) -> bool:
    """Whether a put of a file of `size` bytes in `chunk_size`-byte chunks may continue
    `record`: it kept chunks of a file as long, cut the same way. Then the putter hashes
    its file first, to learn which chunks those are."""
    return (
        record is not None
        and bool(record.held)
        and (record.size, record.chunk_size) == (size, chunk_size)
    )


def changed_since(record: UnfinishedPut, manifest: Manifest) -> bool:
    """Whether the file `manifest` describes differs from what the unfinished put sent: a
    chunk it kept whose hash is not the file's at that index (or another length)."""
    if (record.size, record.chunk_size) != (manifest.size, manifest.chunk_size):
        return True
    return any(manifest.chunks[index] != digest for index, digest in record.held)


def to_send(manifest: Manifest, missing: Collection[int], changed: bool) -> set[int]:
    """The chunks a put sends: those the owner said it lacks, or every one when the file
    changed since its interrupted put (put from the start)."""
    return set(range(manifest.chunk_count)) if changed else set(missing)


def bytes_held(manifest: Manifest, sending: Collection[int]) -> int:
    """The bytes of the file the owner has already: every chunk not being sent."""
    return manifest.size - sum(manifest.chunk_length(index) for index in set(sending))
