"""Conversions of the ring's soft state (keyword and content index records, locators of
files shared in place) and of a node's file listing to and from their protobuf messages,
checked as `files_codec` checks the rest."""

from __future__ import annotations

import math

from chordshare.files.messages import FileListing, IndexEntry, IndexRecord, Locator, StoredFile
from chordshare.transport.address import parse_address
from chordshare.transport.codec_checks import at_most, check_digest, required, short
from chordshare.transport.files_codec import manifest_from_pb, manifest_to_pb
from chordshare.transport.limits import MAX_INDEX_RECORDS, MAX_LOCATORS, MAX_SOFT_TTL
from chordshare.v1 import files_pb2 as pb

# Index and locators.


def index_entry_to_pb(entry: IndexEntry) -> pb.IndexEntry:
    return pb.IndexEntry(name=entry.name, size=entry.size, sha256=entry.sha256)


def index_entry_from_pb(msg: pb.IndexEntry) -> IndexEntry:
    short(msg.name, "a file name")
    check_digest(msg.sha256, f"the sha256 of index entry {msg.name!r}")
    return IndexEntry(msg.name, msg.size, bytes(msg.sha256))


def index_record_to_pb(record: IndexRecord) -> pb.IndexRecord:
    return pb.IndexRecord(key=record.key, entry=index_entry_to_pb(record.entry))


def index_record_from_pb(msg: pb.IndexRecord) -> IndexRecord:
    if not msg.key:
        raise ValueError("an index record without a key")
    short(msg.key, "an index key")
    required(msg, "entry", "an index record")
    return IndexRecord(msg.key, index_entry_from_pb(msg.entry))


def locator_to_pb(locator: Locator) -> pb.Locator:
    return pb.Locator(
        manifest=manifest_to_pb(locator.manifest),
        address=locator.address,
        cached=locator.cached,
    )


def locator_from_pb(msg: pb.Locator) -> Locator:
    required(msg, "manifest", "a locator")
    if not msg.address:
        raise ValueError("a locator without an address")
    parse_address(short(msg.address, "a locator's address"))
    return Locator(manifest_from_pb(msg.manifest), msg.address, msg.cached)


def soft_ttl_from_pb(ttl: float) -> float:
    """How long published records live: a finite number of seconds, up to MAX_SOFT_TTL."""
    if not (math.isfinite(ttl) and 0 <= ttl <= MAX_SOFT_TTL):
        raise ValueError(f"a time to live is 0 to {MAX_SOFT_TTL:g} seconds, got {ttl}")
    return ttl


def publish_index_from_pb(msg: pb.PublishIndexRequest) -> tuple[list[IndexRecord], float]:
    at_most(msg.records, MAX_INDEX_RECORDS, "index records")
    return [index_record_from_pb(r) for r in msg.records], soft_ttl_from_pb(msg.ttl)


def publish_locators_from_pb(msg: pb.PublishLocatorsRequest) -> tuple[list[Locator], float]:
    at_most(msg.locators, MAX_LOCATORS, "locators")
    return [locator_from_pb(loc) for loc in msg.locators], soft_ttl_from_pb(msg.ttl)


# Listing.


def stored_file_to_pb(stored: StoredFile) -> pb.StoredFile:
    return pb.StoredFile(manifest=manifest_to_pb(stored.manifest), shared=stored.shared)


def stored_file_from_pb(msg: pb.StoredFile) -> StoredFile:
    required(msg, "manifest", "a stored file")
    return StoredFile(manifest_from_pb(msg.manifest), shared=msg.shared)


def file_listing_to_pb(listing: FileListing) -> pb.ListFilesReply:
    # No quota travels as 0, as the proto says.
    return pb.ListFilesReply(
        files=[stored_file_to_pb(f) for f in listing.files],
        used_bytes=listing.used_bytes,
        max_bytes=listing.max_bytes or 0,
    )


def file_listing_from_pb(msg: pb.ListFilesReply) -> FileListing:
    return FileListing(
        tuple(stored_file_from_pb(f) for f in msg.files),
        msg.used_bytes,
        msg.max_bytes or None,
    )
