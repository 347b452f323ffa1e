"""Which version of a name wins, and what a put, an offer or a removal does to it.

A file's `created` is its version, set by the owner on a client's put. A second put of a
name with other bytes is refused unless `replace` is asked; then it gets a version newer
than the old one and every holder converges on it. A removal leaves a tombstone at a newer
version, so an old copy offered later does not bring the name back.

Each version also names the versions it replaced (`files.lineage`). When two holders meet
with versions of which neither replaced the other, they were written apart (on two sides of
a split ring, or by two owners at once): both are kept. The one that wins by `newer`'s order
keeps the name; the other is kept under a conflict name (`names.conflict_name`) by whichever
node holds it when it meets the winner. A removal removes only the version it names and
those before it: a version written apart from it stays.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from chordshare.files.lineage import ANCESTRY_KEPT, Ancestry, ancestor, child_ancestry, descends
from chordshare.files.messages import FileError, FileVersion, OfferAnswer, Refusal
from chordshare.files.names import accepts_from_peer
from chordshare.files.publisher import MAX_AHEAD, Claim, why_refused

VERSION_STEP = 1e-6  # how much newer a replacing version is than the one it replaces


def newer(version: float, sha256: bytes, than_version: float, than_sha256: bytes) -> bool:
    """Whether (version, sha256) supersedes the other: the later version wins, and equal
    versions are ordered by content so every node picks the same winner."""
    return (version, sha256) > (than_version, than_sha256)


def supersedes(a: FileVersion, b: FileVersion) -> bool:
    return newer(a.version, a.sha256, b.version, b.sha256)


def newest(versions: Iterable[FileVersion]) -> FileVersion | None:
    """The version that wins among these (by `newer`'s order), or None if there is none."""
    return max(versions, key=lambda v: (v.version, v.sha256), default=None)


def replaced(a: FileVersion, b: FileVersion) -> bool:
    """Whether version `a` replaced `b`, directly or not, as far as `a`'s lineage says."""
    return descends(a.ancestry, b.version, b.sha256)


def concurrent(a: FileVersion, b: FileVersion) -> bool:
    """Whether `a` and `b` were written apart: both lineages known, neither replaced the
    other. Between them `newer`'s order picks the name's version, and the other is kept."""
    if a.ancestry is None or b.ancestry is None:
        return False
    if (a.version, a.sha256, a.deleted) == (b.version, b.sha256, b.deleted):
        return False
    return not replaced(a, b) and not replaced(b, a)


def removes(removal: FileVersion, version: FileVersion) -> bool:
    """Whether `removal` removes `version`: it names it or a version that replaced it; a
    removal or a version of unknown lineage goes by `newer`'s order, as before lineages. A
    removal is always newer than what it removes: its lineage is not signed, so it cannot
    reach past its own (signed) version."""
    if removal.version <= version.version:
        return False
    return replaced(removal, version) or removal.ancestry is None or version.ancestry is None


def takes(offered: FileVersion, mine: FileVersion) -> bool:
    """Whether a holder of `mine` takes the live version `offered` in its place (a
    removal in its place: `removes`). Of two written apart the order's winner is taken,
    the loser to be kept under a conflict name by its holder (`keep_aside`)."""
    if mine.deleted:
        return not removes(mine, offered)
    # A version that replaced another is always newer than it (`judge_put`), so the order
    # decides between live versions; lineage only says whether the loser is kept.
    return supersedes(offered, mine)


def keep_aside(mine: FileVersion, other: FileVersion) -> bool:
    """Whether the live version `mine`, meeting `other`, must be kept under a conflict name:
    they were written apart and `other` wins the name."""
    return (
        not mine.deleted
        and not other.deleted
        and concurrent(mine, other)
        and supersedes(other, mine)
    )


@dataclass(frozen=True, slots=True)
class Held:
    """What a node holds of one name: its live version (and size), and its tombstone."""

    name: str
    live: FileVersion | None = None
    size: int | None = None
    tombstone: float | None = None
    tombstone_ancestry: Ancestry | None = None  # what the removal removed, and before it
    tombstone_claim: Claim | None = None  # who signed the removal

    def removal(self) -> FileVersion | None:
        if self.tombstone is None:
            return None
        return FileVersion.held(
            self.name,
            self.tombstone,
            b"",
            deleted=True,
            ancestry=self.tombstone_ancestry,
            claim=self.tombstone_claim,
        )

    def newest(self) -> FileVersion | None:
        """The version offered to other holders: the live one, else the removal."""
        return self.live if self.live is not None else self.removal()

    def parent(self) -> FileVersion | None:
        """What a client's put or removal of the name now replaces: the live version,
        else the removal it follows."""
        return self.newest()


def ancestry_after(parent: FileVersion | None) -> Ancestry:
    """The lineage of a version written over `parent` (None: a first put)."""
    if parent is None:
        return ()
    return child_ancestry(parent.version, parent.sha256, parent.ancestry)


def removal_ancestry(parent: FileVersion | None) -> Ancestry | None:
    """The lineage of a client's removal: the version it removes, and its line. A removal
    at a node that holds nothing of the name names nothing (None): it removes what is older
    than it, as removals did before lineages."""
    return None if parent is None else ancestry_after(parent)


def merged_removal(a: FileVersion, b: FileVersion) -> FileVersion:
    """Two removals of one name as one: the newer's version, removing what either removes."""
    newer_one, older = (a, b) if supersedes(a, b) else (b, a)
    if a.ancestry is None or b.ancestry is None:
        return replace(newer_one, ancestry=None)
    entries = {*a.ancestry, *b.ancestry, ancestor(older.version, older.sha256)}
    return replace(newer_one, ancestry=tuple(sorted(entries, reverse=True))[:ANCESTRY_KEPT])


def refuse_unless_allowed(
    held: FileVersion | None,
    offered: FileVersion,
    admins: frozenset[bytes],
    content: bytes | None = None,
) -> None:
    """Refuse (PERMISSION_DENIED) a version whose signature does not hold, or that is not
    signed by the publisher of the name's version held (or an admin key)."""
    why = why_refused(held, offered, admins, content)
    if why is not None:
        raise FileError(Refusal.PERMISSION_DENIED, why)


def signed_version(name: str, offered: float, floor: float, now: float) -> float:
    """The version a client's signed put or removal stores: the one it signed, which must
    be newer than anything held of the name and not far ahead of this node's clock."""
    if offered <= floor:
        raise FileError(
            Refusal.FAILED_PRECONDITION,
            f"the version signed for {name!r} ({offered:.6f}) is not after the one held "
            f"({floor:.6f}): the client's clock is behind; sign again above it",
            version_floor=floor,
        )
    if offered > now + MAX_AHEAD:
        raise FileError(
            Refusal.INVALID_ARGUMENT,
            f"the version signed for {name!r} is {offered - now:.0f} s ahead of this node's "
            "clock: set the client's clock right",
        )
    return offered


def judge_put(
    offered: FileVersion,
    held: Held,
    *,
    replica: bool,
    replace: bool,
    now: float,
    elsewhere: FileVersion | None = None,
    admins: frozenset[bytes] = frozenset(),
    content: bytes = b"",
) -> float | None:
    """The version a put of `offered` (its `version` is the manifest's `created`) stores,
    or None when there is nothing to store. A client's put (not `replica`) that would
    overwrite other bytes without `replace` is refused with ALREADY_EXISTS. `elsewhere` is
    the newest version the other holders know of: a node that just became a name's owner
    judges a client's put against their copy. A version not signed by the name's publisher
    (or an admin key), or whose signature does not match its `content`
    (`Manifest.content`), is refused with PERMISSION_DENIED."""
    live, size, tombstone = held.live, held.size, held.tombstone
    current = held.newest()
    if elsewhere is not None and not replica:
        current = newest(v for v in (current, elsewhere) if v is not None)
        if elsewhere.deleted:
            tombstone = max(tombstone or 0.0, elsewhere.version)
        elif live is None or supersedes(elsewhere, live):
            live, size = elsewhere, None
    if replica:
        if live is not None and not takes(offered, live):
            return None
        removal = held.removal()
        if removal is not None and removes(removal, offered):
            return None
        refuse_unless_allowed(current, offered, admins, content)
        return offered.version
    if live is not None and live.sha256 == offered.sha256:
        return None  # the same bytes: nothing changes, whoever asks
    refuse_unless_allowed(current, offered, admins, content)
    if live is not None and not replace:
        known = f"{size} bytes, " if size is not None else ""
        raise FileError(
            Refusal.ALREADY_EXISTS,
            f"{offered.name!r} already exists ({known}sha256 "
            f"{live.sha256.hex()[:16]}…); put it with --replace to overwrite it",
        )
    floor = max(live.version if live is not None else 0.0, tombstone or 0.0)
    if offered.claim is not None:
        return signed_version(offered.name, offered.version, floor, now)
    # The client puts its manifest's `created` above any version it found elsewhere on the
    # ring (a new owner may not hold the old copy yet): never go below it.
    return max(now, floor + VERSION_STEP, offered.version)


def removal_version(
    held: Held,
    now: float,
    signed: FileVersion | None = None,
    admins: frozenset[bytes] = frozenset(),
) -> float:
    """The version of a client's removal: newer than anything held of the name; a signed
    removal's (`signed`) is the one it signed, by a key the name's version allows."""
    floor = max(held.live.version if held.live is not None else 0.0, held.tombstone or 0.0)
    if signed is None:
        refuse_unless_allowed(held.newest(), FileVersion(held.name, now, b"", True), admins)
        return max(now, floor + VERSION_STEP)
    refuse_unless_allowed(held.newest(), signed, admins)
    return signed_version(held.name, signed.version, floor, now)


def put_parent(held: Held, elsewhere: FileVersion | None = None) -> FileVersion | None:
    """What a client's put of the name replaces: the newest of the live version here and
    the one the other holders know of, else the removal it follows (None: a first put)."""
    live = held.live
    if (
        elsewhere is not None
        and not elsewhere.deleted
        and (live is None or supersedes(elsewhere, live))
    ):
        live = elsewhere
    if live is not None:
        return live
    removals = [r for r in (held.removal(), elsewhere) if r is not None and r.deleted]
    return newest(removals)


def removal_applies(held: Held, removal: FileVersion) -> bool:
    """Whether a removal a peer passes on removes the live copy here: not when a newer put
    outlived it, nor a version written apart from it."""
    return held.live is None or removes(removal, held.live)


class OfferVerdict(enum.Enum):
    SAME = "same"  # this node holds that very version
    HOLD_NEWER = "hold newer"  # this node holds a newer version (or a newer removal)
    WANT = "want"  # this node lacks it or holds an older version: send the bytes
    REMOVE = "remove"  # a removal newer than what this node holds: apply it
    REFUSE = "refuse"  # a name no peer may send (the new-name rule, not marked legacy)


def judge_offer(mine: FileVersion | None, offered: FileVersion) -> OfferVerdict:
    """What a node does with a version another holder offers it."""
    if not accepts_from_peer(offered.name, offered.legacy_name):
        return OfferVerdict.REFUSE
    if mine is None:
        return OfferVerdict.REMOVE if offered.deleted else OfferVerdict.WANT
    if mine.deleted and offered.deleted:
        # Of two removals, what either removes stays removed: taken when it adds to mine.
        if merged_removal(mine, offered) != mine:
            return OfferVerdict.REMOVE
        same = (mine.version, mine.ancestry) == (offered.version, offered.ancestry)
        return OfferVerdict.SAME if same else OfferVerdict.HOLD_NEWER
    same = (mine.version, mine.sha256, mine.deleted) == (
        offered.version,
        offered.sha256,
        offered.deleted,
    )
    if same:
        return OfferVerdict.SAME
    if offered.deleted:
        return OfferVerdict.REMOVE if removes(offered, mine) else OfferVerdict.HOLD_NEWER
    return OfferVerdict.WANT if takes(offered, mine) else OfferVerdict.HOLD_NEWER


@dataclass(frozen=True, slots=True)
class OfferOutcome:
    """How a node answers an offer: its answer, the removals it applies (offered ones
    newer than what it holds), and the versions it would have taken but for who signed
    them, each with the reason (a peer passing on versions their publishers did not
    sign)."""

    answer: OfferAnswer
    removals: tuple[FileVersion, ...]
    refused: tuple[tuple[FileVersion, str], ...]


def answer_offer(
    versions: Sequence[FileVersion],
    mine: Callable[[str], FileVersion | None],
    admins: frozenset[bytes] = frozenset(),
) -> OfferOutcome:
    """How a node answers versions another holder offers, given what it holds of each name
    (`mine`). A removal taken counts as held for the rest of the offer. A version that could
    not replace the one held (`files.publisher`: not signed by the name's publisher) is
    neither wanted nor applied: the peer is told of the version held instead."""
    wanted: list[str] = []
    held_newer: list[FileVersion] = []
    removals: list[FileVersion] = []
    refused: list[tuple[FileVersion, str]] = []
    taken: dict[str, FileVersion] = {}
    for offered in versions:
        held = taken.get(offered.name) or mine(offered.name)
        verdict = judge_offer(held, offered)
        if verdict in (OfferVerdict.WANT, OfferVerdict.REMOVE):
            why = why_refused(held, offered, admins)
            if why is not None:
                refused.append((offered, why))
                verdict = OfferVerdict.HOLD_NEWER
        if verdict is OfferVerdict.HOLD_NEWER and held is not None:
            held_newer.append(held)
        elif verdict is OfferVerdict.REMOVE:
            removals.append(offered)
            taken[offered.name] = offered
        elif verdict is OfferVerdict.WANT:
            wanted.append(offered.name)
    answer = OfferAnswer(tuple(wanted), tuple(held_newer))
    return OfferOutcome(answer, tuple(removals), tuple(refused))


@dataclass(frozen=True, slots=True)
class AnswerPlan:
    """What the offering node does with a peer's answer to its offer."""

    removals: tuple[FileVersion, ...]  # removals the peer knows of: apply them here too
    push: tuple[str, ...]  # names the peer wants: send it this node's copy
    held: frozenset[str]  # names the peer holds in this node's version or a newer one
    # (this node's version, the peer's) written apart, the peer's winning: keep this
    # node's under its conflict name before anything replaces or drops it.
    aside: tuple[tuple[FileVersion, FileVersion], ...] = ()


def judge_answer(
    offered: Sequence[FileVersion], answer: OfferAnswer, admins: frozenset[bytes] = frozenset()
) -> AnswerPlan:
    """What to do with a peer's answer. Its newer versions count only where they could
    replace this node's (`files.publisher`): a peer cannot remove a file, or have it set
    aside, with a version its publisher did not sign."""
    mine = {v.name: v for v in offered}
    wanted = [name for name in answer.wanted if name in mine]
    theirs = {
        v.name: v
        for v in answer.newer
        if v.name in mine and why_refused(mine[v.name], v, admins) is None
    }
    removals = tuple(v for v in theirs.values() if v.deleted)
    held = frozenset(set(mine) - set(wanted))
    aside = tuple(
        (version, theirs[version.name])
        for version in offered
        if version.name in theirs and keep_aside(version, theirs[version.name])
    )
    return AnswerPlan(removals, tuple(wanted), held, aside)
