"""What a node checks of a put before it stores a byte of it: the header, each chunk's place
and length, and the manifest that closes a put whose hashes come last. Each refusal is a
`FileError` the putter hears."""

from __future__ import annotations

from collections.abc import Sequence

from chordshare.files.manifest import MAX_CHUNKS, Manifest
from chordshare.files.messages import FileError, PutHeader, Refusal
from chordshare.files.names import BadName, check_sent_name

MAX_CHUNK_SIZE = 8 * 1024 * 1024


def refuse_bad_header(header: PutHeader, has_trailer: bool) -> None:
    """A put's header: its name, its manifest (or a promise of one), its sizes."""
    manifest = header.manifest
    if header.manifest_last and (header.replica or not has_trailer):
        raise FileError(
            Refusal.INVALID_ARGUMENT,
            "only a client's put streamed with PutFile may send its manifest last",
        )
    try:
        check_sent_name(manifest.name, header.replica, header.legacy_name)
        if not header.manifest_last:  # a promise carries no hashes yet
            manifest.check(whole_hash_optional=not header.replica)
    except (BadName, ValueError) as err:
        raise FileError(Refusal.INVALID_ARGUMENT, str(err)) from None
    if manifest.chunk_size > MAX_CHUNK_SIZE:
        raise FileError(
            Refusal.INVALID_ARGUMENT,
            f"chunks are at most {MAX_CHUNK_SIZE} bytes, the manifest says {manifest.chunk_size}",
        )
    if manifest.chunk_count > MAX_CHUNKS:
        raise FileError(Refusal.INVALID_ARGUMENT, f"a file has at most {MAX_CHUNKS} chunks")


def check_trailer(promise: Manifest, claimed: Manifest, digests: Sequence[bytes]) -> None:
    """The manifest that closes a streamed put, against its header and what arrived."""
    if (claimed.name, claimed.size, claimed.chunk_size) != (
        promise.name,
        promise.size,
        promise.chunk_size,
    ):
        raise FileError(
            Refusal.INVALID_ARGUMENT,
            f"the closing manifest of {promise.name!r} is not the one its header promised "
            f"({claimed.name!r}, {claimed.size} bytes in {claimed.chunk_size}-byte chunks)",
        )
    if len(digests) != promise.chunk_count:
        raise FileError(
            Refusal.INVALID_ARGUMENT,
            f"the put of {promise.name!r} ended after {len(digests)} of "
            f"{promise.chunk_count} chunks",
        )
    wrong = [i for i, (a, b) in enumerate(zip(claimed.chunks, digests, strict=True)) if a != b]
    if wrong:
        raise FileError(
            Refusal.DATA_LOSS,
            f"{len(wrong)} chunks of {promise.name!r} do not match the hashes of its manifest "
            f"(first: chunk {wrong[0]})",
        )


def check_chunk(manifest: Manifest, index: int, data: bytes) -> None:
    if not 0 <= index < manifest.chunk_count:
        raise FileError(
            Refusal.INVALID_ARGUMENT,
            f"chunk {index} is out of range: {manifest.name!r} has {manifest.chunk_count}",
        )
    expected_length = manifest.chunk_length(index)
    if len(data) != expected_length:
        raise FileError(
            Refusal.INVALID_ARGUMENT,
            f"chunk {index} of {manifest.name!r} has {len(data)} bytes, "
            f"the manifest says {expected_length}",
        )
