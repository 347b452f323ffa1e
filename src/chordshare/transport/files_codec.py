"""Conversions between the file-sharing values of `files.messages` and their protobuf messages.

Encoding is plain. Decoding checks what the other side sent (hash lengths, a manifest that
contradicts itself, a missing field, a number that is not finite, a list or a text longer
than `transport.limits` allows) and raises `ValueError` naming the problem: the server
refuses such a request with INVALID_ARGUMENT, the client reports such a reply as a peer that
answered garbage. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from chordshare.files.lineage import Ancestry, decode_ancestry, encode_ancestry
from chordshare.files.manifest import MAX_CHUNKS, Manifest
from chordshare.files.messages import (
    FileVersion,
    FoundFile,
    KeepOutcome,
    OfferAnswer,
    PutHeader,
    PutOutcome,
)
from chordshare.files.names import check_stored_name
from chordshare.files.publisher import Claim
from chordshare.transport.codec_checks import at_most, check_digest, finite, required, short
from chordshare.transport.limits import (
    MAX_FETCH_INDEXES,
    MAX_OFFER_FILES,
)
from chordshare.v1 import files_pb2 as pb

# Manifest.


def manifest_to_pb(manifest: Manifest) -> pb.Manifest:
    return pb.Manifest(
        name=manifest.name,
        size=manifest.size,
        sha256=manifest.sha256,
        chunk_size=manifest.chunk_size,
        chunks=list(manifest.chunks),
        created=manifest.created,
        **claim_fields(manifest.claim),
    )


def claim_fields(claim: Claim | None) -> dict[str, bytes]:
    if claim is None:
        return {}
    return {"publisher": claim.publisher, "signature": claim.signature}


def claim_from_pb(msg: pb.Manifest | pb.FileVersion | pb.DeleteRequest) -> Claim | None:
    """A message's publisher and signature: both there, or neither (not signed)."""
    if not msg.publisher and not msg.signature:
        return None
    return Claim(bytes(msg.publisher), bytes(msg.signature))


def _check_shape(msg: pb.Manifest) -> None:
    if msg.size < 0:  # uint64 cannot be negative on the wire; kept for hand-built messages
        raise ValueError(f"a manifest's size cannot be negative, got {msg.size}")
    if msg.chunk_size <= 0:
        raise ValueError(f"a manifest's chunk size must be positive, got {msg.chunk_size}")
    short(msg.name, "a file name")
    finite(msg.created, f"the version of {msg.name!r}")


def promised_manifest_from_pb(msg: pb.Manifest) -> Manifest:
    """The header's manifest of a put whose hashes follow its chunks: no hashes yet."""
    _check_shape(msg)
    if msg.sha256 or msg.chunks:
        raise ValueError("a put with manifest_last sends its hashes after its chunks")
    manifest = Manifest(msg.name, msg.size, b"", msg.chunk_size, (), msg.created)
    if manifest.chunk_count > MAX_CHUNKS:
        raise ValueError(
            f"a file has at most {MAX_CHUNKS} chunks, {msg.name!r} has {manifest.chunk_count}"
        )
    return manifest


def manifest_from_pb(msg: pb.Manifest, whole_hash_optional: bool = False) -> Manifest:
    """A manifest; one a client puts may leave its whole-file sha256 empty
    (`whole_hash_optional`): the owner computes it as the chunks arrive."""
    _check_shape(msg)
    if msg.sha256 or not whole_hash_optional:
        check_digest(msg.sha256, "a manifest's sha256")
    at_most(msg.chunks, MAX_CHUNKS, "chunk hashes in a manifest")
    chunks = tuple(check_digest(c, f"chunk hash {i}") for i, c in enumerate(msg.chunks))
    manifest = Manifest(
        name=msg.name,
        size=msg.size,
        sha256=bytes(msg.sha256),
        chunk_size=msg.chunk_size,
        chunks=chunks,
        created=msg.created,
        claim=claim_from_pb(msg),
    )
    try:
        manifest.check(whole_hash_optional)
    except ValueError as err:
        raise ValueError(f"inconsistent manifest for {msg.name!r}: {err}") from None
    return manifest


# Putting.


def put_header_to_pb(header: PutHeader) -> pb.PutHeader:
    return pb.PutHeader(
        manifest=manifest_to_pb(header.manifest),
        replace=header.replace,
        replica=header.replica,
        owner_only=header.owner_only,
        manifest_last=header.manifest_last,
        legacy_name=header.legacy_name,
        ancestry=encode_ancestry(header.ancestry),
        repair=header.repair,
    )


def put_header_from_pb(msg: pb.PutHeader) -> PutHeader:
    required(msg, "manifest", "a put header")
    if msg.manifest_last:
        manifest = promised_manifest_from_pb(msg.manifest)
    else:
        manifest = manifest_from_pb(msg.manifest, whole_hash_optional=not msg.replica)
    return PutHeader(
        manifest,
        replace=msg.replace,
        replica=msg.replica,
        owner_only=msg.owner_only,
        manifest_last=msg.manifest_last,
        legacy_name=msg.legacy_name,
        ancestry=_ancestry(msg, f"the lineage of {msg.manifest.name!r}"),
        repair=msg.replica and msg.repair,  # a client's put is a user's transfer
    )


def _ancestry(msg: pb.PutHeader | pb.FileVersion, what: str) -> Ancestry | None:
    """A message's lineage: None when absent (not known), else its decoded entries."""
    try:
        return decode_ancestry(msg.ancestry) if msg.HasField("ancestry") else None
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None


def check_chunk_index(index: int, manifest: Manifest) -> None:
    """Raise ValueError unless index is one of the manifest's chunks. A chunk's bytes are
    left to the receiver, which checks them against the chunk's hash (a DATA_LOSS matter)."""
    if index >= manifest.chunk_count:
        raise ValueError(
            f"chunk {index} is beyond the {manifest.chunk_count} chunks of {manifest.name!r}"
        )


def put_chunk_from_pb(msg: pb.PutChunk, manifest: Manifest) -> tuple[int, bytes]:
    """A chunk of a put whose index is one of the header's manifest (see check_chunk_index)."""
    check_chunk_index(msg.index, manifest)
    return msg.index, bytes(msg.data)


def put_outcome_to_pb(outcome: PutOutcome) -> pb.PutReply:
    return pb.PutReply(manifest=manifest_to_pb(outcome.manifest), unchanged=outcome.unchanged)


def put_outcome_from_pb(msg: pb.PutReply) -> PutOutcome:
    required(msg, "manifest", "a put reply")
    return PutOutcome(manifest_from_pb(msg.manifest), unchanged=msg.unchanged)


# Chunks.


def digests_to_pb(digests: Sequence[bytes]) -> pb.MissingChunksRequest:
    return pb.MissingChunksRequest(chunks=list(digests))


def digests_from_pb(msg: pb.MissingChunksRequest) -> list[bytes]:
    at_most(msg.chunks, MAX_CHUNKS, "chunk hashes")
    return [check_digest(d, f"chunk hash {i}") for i, d in enumerate(msg.chunks)]


def missing_from_pb(msg: pb.MissingChunksReply, asked: int) -> list[int]:
    """The missing indexes of a reply to a request of `asked` digests."""
    missing = list(msg.missing)
    for index in missing:
        if index >= asked:
            raise ValueError(f"missing chunk index {index} but only {asked} were asked about")
    return missing


def _manifest_id(msg: pb.FetchRequest | pb.FindFileRequest) -> bytes:
    """The manifest id a request asks by, if any (empty: it asks as before ids)."""
    return check_digest(msg.manifest_id, "a manifest id") if msg.manifest_id else b""


def fetch_request_to_pb(
    sha256: bytes, indexes: Sequence[int], repair: bool, manifest_id: bytes = b""
) -> pb.FetchRequest:
    return pb.FetchRequest(
        sha256=sha256, indexes=list(indexes), repair=repair, manifest_id=manifest_id
    )


def fetch_request_from_pb(msg: pb.FetchRequest) -> tuple[bytes, list[int], bool, bytes]:
    at_most(msg.indexes, MAX_FETCH_INDEXES, "chunk indexes")
    manifest_id = _manifest_id(msg)
    return check_digest(msg.sha256, "the file's sha256"), list(msg.indexes), msg.repair, manifest_id


# Finding.


def find_request_from_pb(msg: pb.FindFileRequest) -> tuple[str, int, bool, bytes]:
    """A lookup: any name a node may hold, those stored before the new-name rule too."""
    check_stored_name(msg.name)
    manifest_id = _manifest_id(msg)
    return msg.name, msg.inline_up_to, msg.owner_only, manifest_id


def found_file_to_pb(found: FoundFile | None) -> pb.FindFileReply:
    if found is None:
        return pb.FindFileReply(found=False)
    return pb.FindFileReply(
        found=True,
        manifest=manifest_to_pb(found.manifest),
        holders=list(found.holders),
        data=found.data or b"",
    )


def found_file_from_pb(msg: pb.FindFileReply) -> FoundFile | None:
    if not msg.found:
        return None
    required(msg, "manifest", "a found file")
    check_stored_name(msg.manifest.name)  # a get saves the file under it
    for holder in msg.holders:
        if not holder:
            raise ValueError("an empty holder address")
    manifest = manifest_from_pb(msg.manifest)
    data = msg.data or None
    if data is not None and len(data) != manifest.size:
        raise ValueError(f"{len(data)} inline bytes for a file of {manifest.size}")
    if data is not None and not msg.holders:
        raise ValueError("inline bytes without the holder that sent them")
    return FoundFile(manifest, tuple(msg.holders), data)


# Replication.


def file_version_to_pb(version: FileVersion) -> pb.FileVersion:
    return pb.FileVersion(
        name=version.name,
        version=version.version,
        sha256=version.sha256,
        deleted=version.deleted,
        legacy_name=version.legacy_name,
        ancestry=encode_ancestry(version.ancestry),
        **claim_fields(version.claim),
    )


def file_version_from_pb(msg: pb.FileVersion) -> FileVersion:
    short(msg.name, "a file name")
    finite(msg.version, f"the version of {msg.name!r}")
    # A tombstone has no content, so its hash may be empty.
    if not (msg.deleted and not msg.sha256):
        check_digest(msg.sha256, f"the sha256 of version {msg.version} of {msg.name!r}")
    return FileVersion(
        msg.name,
        msg.version,
        bytes(msg.sha256),
        deleted=msg.deleted,
        legacy_name=msg.legacy_name,
        ancestry=_ancestry(msg, f"the lineage of version {msg.version} of {msg.name!r}"),
        claim=claim_from_pb(msg),
    )


def offer_to_pb(versions: Sequence[FileVersion]) -> pb.OfferRequest:
    return pb.OfferRequest(files=[file_version_to_pb(v) for v in versions])


def offer_from_pb(msg: pb.OfferRequest) -> list[FileVersion]:
    at_most(msg.files, MAX_OFFER_FILES, "offered versions")
    return [file_version_from_pb(v) for v in msg.files]


def offer_answer_to_pb(answer: OfferAnswer) -> pb.OfferReply:
    return pb.OfferReply(
        wanted=list(answer.wanted),
        newer=[file_version_to_pb(v) for v in answer.newer],
        room=answer.room,
    )


def offer_answer_from_pb(msg: pb.OfferReply) -> OfferAnswer:
    room = msg.room if msg.HasField("room") else None
    return OfferAnswer(tuple(msg.wanted), tuple(file_version_from_pb(v) for v in msg.newer), room)


def delete_from_pb(msg: pb.DeleteRequest) -> tuple[str, float, bool, Claim | None]:
    check_stored_name(msg.name)  # names stored before the new-name rule can be removed too
    version = finite(msg.version, f"the version of {msg.name!r}")
    return msg.name, version, msg.replica, claim_from_pb(msg)


# Keeping a copy.


def keep_request_from_pb(msg: pb.KeepFileRequest) -> tuple[str, bytes]:
    """A keep names a version exactly: a name and its manifest's id, both required."""
    check_stored_name(msg.name)
    return msg.name, check_digest(msg.manifest_id, "a manifest id")


def keep_outcome_to_pb(outcome: KeepOutcome) -> pb.KeepFileReply:
    return pb.KeepFileReply(outcome=outcome.name)


def keep_outcome_from_pb(msg: pb.KeepFileReply) -> KeepOutcome:
    name = pb.KeepFileReply.Outcome.Name(msg.outcome)
    if name not in KeepOutcome.__members__:
        raise ValueError(f"a keep answered with outcome {name}")
    return KeepOutcome[name]
