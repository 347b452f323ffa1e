"""The values one node sends another about files, and the refusals it answers with.

Plain frozen dataclasses, as `chord.messages` is for the ring: the sharing core decides with
them, the transport carries them, and the faces show them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from chordshare.files.lineage import Ancestry
from chordshare.files.manifest import Manifest
from chordshare.files.names import is_legacy_name
from chordshare.files.publisher import Claim


class Refusal(enum.Enum):
    """Why a node refused a file request; each maps to one gRPC status code."""

    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    ABORTED = "ABORTED"  # a concurrent put of the same name
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DATA_LOSS = "DATA_LOSS"  # bytes that do not match their hash
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"  # over the node's quota
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    # The request was sent to this node as the owner of a name's key, and it is not: the
    # sender guessed from an old view of the ring, and looks the owner up instead.
    OUT_OF_RANGE = "OUT_OF_RANGE"
    # Not now, not here: the node is leaving, or no other node confirmed a copy yet. Callers
    # treat it as an unreachable peer and try again (the owner may have changed).
    UNAVAILABLE = "UNAVAILABLE"
    # The name belongs to another publisher's key (`files.publisher`), or the version's
    # signature does not match it.
    PERMISSION_DENIED = "PERMISSION_DENIED"


class FileError(Exception):
    """A node refused a file request; the message says why in a user's words."""

    def __init__(
        self,
        refusal: Refusal,
        message: str,
        retry_after: float | None = None,
        version_floor: float | None = None,
    ) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.message = message
        # Seconds to wait before asking again, when the node refused only for load.
        self.retry_after = retry_after
        # A signed version must be newer than this (the name's newest here): the client's
        # clock is behind, and it signs again above it.
        self.version_floor = version_floor


class PutCutOff(FileError):
    """A put's stream ended before the put did: before its closing manifest, or with
    chunks of its manifest still missing. The node cannot tell a client that closed its
    stream early from one killed or cut off on its way (gRPC may end the stream of a
    caller that went away rather than cancel it), so it keeps what the put stored, as for
    any put cut off (`files.unfinished`); a client still listening hears the refusal."""


@dataclass(frozen=True, slots=True)
class PutHeader:
    manifest: Manifest
    replace: bool = False
    replica: bool = False
    owner_only: bool = False  # refuse (OUT_OF_RANGE) unless the receiver owns the name
    # The manifest's hashes come after the chunks (the `trailer`): the manifest here is a
    # promise of the name, size, chunk size and version, without hashes.
    manifest_last: bool = False
    # A replica's name was stored before names were checked for control characters
    # (`files.names`): the receiver takes it although the new-name rule refuses it.
    legacy_name: bool = False
    # A replica's lineage (`files.lineage`): the versions it replaced. None: not known.
    ancestry: Ancestry | None = None
    # A replica pushed by repair, a handoff or a stand-in copy (not a put's own copy to the
    # successors): paced by the receiver's repair cap, not its cap for users' transfers.
    repair: bool = False


@dataclass(frozen=True, slots=True)
class PutOutcome:
    manifest: Manifest  # as stored, with the version the owner gave it
    unchanged: bool


# A put of at most this many bytes goes in one message (PutSmallFile), and the owner
# receives it whole before deciding anything (hashing that much is quick).
SMALL_PUT = 64 * 1024

# The largest file a FindFile answer carries whole, when the asker wants it (a small get
# then needs no FetchChunks call).
INLINE_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class FoundFile:
    manifest: Manifest
    holders: tuple[str, ...]
    # The file's bytes, sent along by the node that answered (holders[0]); unverified.
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class FileVersion:
    name: str
    version: float
    sha256: bytes
    deleted: bool = False
    legacy_name: bool = False  # as in PutHeader
    # The versions this one replaced (a removal: the one it removed, and its line), newest
    # first; None when not known (stored before lineages were kept).
    ancestry: Ancestry | None = None
    claim: Claim | None = None  # who published it (`files.publisher`); None: not signed

    @classmethod
    def held(
        cls,
        name: str,
        version: float,
        sha256: bytes,
        deleted: bool = False,
        ancestry: Ancestry | None = None,
        claim: Claim | None = None,
    ) -> FileVersion:
        """A version of a name held here, as offered to a peer: marked legacy_name when
        the new-name rule refuses the name (only a name stored before it can be held)."""
        return cls(name, version, sha256, deleted, is_legacy_name(name), ancestry, claim)


@dataclass(frozen=True, slots=True)
class OfferAnswer:
    wanted: tuple[str, ...]  # names the peer lacks or holds in an older version
    newer: tuple[FileVersion, ...]  # offered names it holds in a newer version, or removed
    room: int | None = None  # bytes the peer can still take (None: it did not say)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    name: str
    size: int
    sha256: bytes


@dataclass(frozen=True, slots=True)
class IndexRecord:
    key: str  # "word:report" or "sha256:<hex>"
    entry: IndexEntry


@dataclass(frozen=True, slots=True)
class Locator:
    """A peer that serves a file without holding one of its k copies: from its `--share`
    folder, or (`cached`) from its download cache, which keeps a version it fetched and
    never outlives a removal of it."""

    manifest: Manifest
    address: str
    cached: bool = False


@dataclass(frozen=True, slots=True)
class StoredFile:
    manifest: Manifest
    shared: bool


@dataclass(frozen=True, slots=True)
class FileListing:
    files: tuple[StoredFile, ...]
    used_bytes: int
    max_bytes: int | None


class KeepOutcome(enum.Enum):
    """What a node answers a client that asks it to keep a copy of a file it just got
    through the node (the wire's `KeepFileReply.Outcome`)."""

    STARTED = "STARTED"  # fetching it into its download cache, in the background
    NOT_NOW = "NOT_NOW"  # as many keeps as it runs at once are under way: dropped
    HELD = "HELD"  # stored or cached there already
    OFF = "OFF"  # it keeps no downloads (cache size 0), or none this big
    UNKNOWN = "UNKNOWN"  # no such version of that name in the network
