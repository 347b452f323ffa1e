"""How the catalog's rows read as the file layer's values, and its values as columns."""

from __future__ import annotations

from dataclasses import dataclass

from chordshare.files.lineage import Ancestry, decode_ancestry
from chordshare.files.manifest import DIGEST_BYTES, Manifest
from chordshare.files.publisher import Claim
from chordshare.files.unfinished import UnfinishedPut, decode_held


def manifest_of_row(row: tuple) -> Manifest:
    name, size, sha256, chunk_size, chunks, created, publisher, signature = row
    blob = bytes(chunks)
    digests = tuple(blob[i : i + DIGEST_BYTES] for i in range(0, len(blob), DIGEST_BYTES))
    claim = claim_of(publisher, signature)
    return Manifest(name, size, bytes(sha256), chunk_size, digests, created, claim)


COLUMNS = "name, size, sha256, chunk_size, chunks, created, publisher, signature"


def claim_of(publisher: bytes | None, signature: bytes | None) -> Claim | None:
    if publisher is None or signature is None:
        return None
    return Claim(bytes(publisher), bytes(signature))


def claim_columns(claim: Claim | None) -> tuple[bytes | None, bytes | None]:
    return (None, None) if claim is None else (claim.publisher, claim.signature)


UNFINISHED = "name, size, chunk_size, held, ended"


def unfinished_of_row(row: tuple) -> UnfinishedPut:
    name, size, chunk_size, held, ended = row
    return UnfinishedPut(name, size, chunk_size, decode_held(bytes(held)), ended)


def ancestry_of(blob: bytes | None) -> Ancestry | None:
    return decode_ancestry(None if blob is None else bytes(blob))


TOMBSTONE_COLUMNS = "name, version, ancestry, publisher, signature"


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A name's removal: its version, lineage and who signed it."""

    name: str
    version: float
    ancestry: Ancestry | None
    claim: Claim | None


def tombstone_of_row(row: tuple) -> Tombstone:
    name, version, ancestry, publisher, signature = row
    return Tombstone(
        str(name), float(version), ancestry_of(ancestry), claim_of(publisher, signature)
    )
