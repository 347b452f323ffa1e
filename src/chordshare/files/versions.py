"""Which version of a name wins, and what a put, an offer or a removal does to it.

A file's `created` is its version, set by the owner on a client's put. A second put of a
name with other bytes is refused unless `replace` is asked; then it gets a version newer
than the old one and every holder converges on it. A removal leaves a tombstone at a newer
version, so an old copy offered later does not bring the name back.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from chordshare.files.messages import FileError, FileVersion, OfferAnswer, Refusal
from chordshare.files.names import accepts_from_peer

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


@dataclass(frozen=True, slots=True)
class Held:
    """What a node holds of one name: its live version (and size), and its tombstone."""

    name: str
    live: FileVersion | None = None
    size: int | None = None
    tombstone: float | None = None

    def newest(self) -> FileVersion | None:
        """The version offered to other holders: the live one, else the removal."""
        if self.live is not None:
            return self.live
        if self.tombstone is not None:
            return FileVersion.held(self.name, self.tombstone, b"", deleted=True)
        return None


def judge_put(
    offered: FileVersion,
    held: Held,
    *,
    replica: bool,
    replace: bool,
    now: float,
    elsewhere: FileVersion | None = None,
) -> float | None:
    """The version a put of `offered` (its `version` is the manifest's `created`) stores,
    or None when there is nothing to store. A client's put (not `replica`) that would
    overwrite other bytes without `replace` is refused with ALREADY_EXISTS. `elsewhere` is
    the newest version the other holders know of: a node that just became a name's owner
    judges a client's put against their copy."""
    live, size, tombstone = held.live, held.size, held.tombstone
    if elsewhere is not None and not replica:
        if elsewhere.deleted:
            tombstone = max(tombstone or 0.0, elsewhere.version)
        elif live is None or supersedes(elsewhere, live):
            live, size = elsewhere, None
    if replica:
        if live is not None and not newer(
            offered.version, offered.sha256, live.version, live.sha256
        ):
            return None
        if tombstone is not None and tombstone >= offered.version:
            return None
        return offered.version
    if live is not None and live.sha256 == offered.sha256:
        return None
    if live is not None and not replace:
        known = f"{size} bytes, " if size is not None else ""
        raise FileError(
            Refusal.ALREADY_EXISTS,
            f"{offered.name!r} already exists ({known}sha256 "
            f"{live.sha256.hex()[:16]}…); put it with --replace to overwrite it",
        )
    floor = max(live.version if live is not None else 0.0, tombstone or 0.0)
    # The client puts its manifest's `created` above any version it found elsewhere on the
    # ring (a new owner may not hold the old copy yet): never go below it.
    return max(now, floor + VERSION_STEP, offered.version)


def removal_version(held: Held, now: float) -> float:
    """The version of a client's removal: newer than anything held of the name."""
    floor = max(held.live.version if held.live is not None else 0.0, held.tombstone or 0.0)
    return max(now, floor + VERSION_STEP)


def removal_applies(held: Held, removal: float) -> bool:
    """Whether a removal a peer passes on removes the live copy here: not when a newer put
    outlived it."""
    return held.live is None or held.live.version < removal


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
    if mine is not None and not supersedes(offered, mine):
        same = (mine.version, mine.sha256) == (offered.version, offered.sha256)
        return OfferVerdict.SAME if same else OfferVerdict.HOLD_NEWER
    return OfferVerdict.REMOVE if offered.deleted else OfferVerdict.WANT


def answer_offer(
    versions: Sequence[FileVersion], mine: Callable[[str], FileVersion | None]
) -> tuple[OfferAnswer, list[FileVersion]]:
    """How a node answers versions another holder offers, given what it holds of each name
    (`mine`): the answer, and the removals it is to apply (offered ones newer than what it
    holds). A removal taken counts as held for the rest of the offer."""
    wanted: list[str] = []
    held_newer: list[FileVersion] = []
    removals: list[FileVersion] = []
    taken: dict[str, FileVersion] = {}
    for offered in versions:
        held = taken.get(offered.name) or mine(offered.name)
        verdict = judge_offer(held, offered)
        if verdict is OfferVerdict.HOLD_NEWER and held is not None:
            held_newer.append(held)
        elif verdict is OfferVerdict.REMOVE:
            removals.append(offered)
            taken[offered.name] = offered
        elif verdict is OfferVerdict.WANT:
            wanted.append(offered.name)
    return OfferAnswer(tuple(wanted), tuple(held_newer)), removals


@dataclass(frozen=True, slots=True)
class AnswerPlan:
    """What the offering node does with a peer's answer to its offer."""

    removals: tuple[FileVersion, ...]  # removals the peer knows of: apply them here too
    push: tuple[str, ...]  # names the peer wants: send it this node's copy
    held: frozenset[str]  # names the peer holds in this node's version or a newer one


def judge_answer(offered: Sequence[FileVersion], answer: OfferAnswer) -> AnswerPlan:
    names = {v.name for v in offered}
    wanted = [name for name in answer.wanted if name in names]
    removals = tuple(v for v in answer.newer if v.deleted and v.name in names)
    held = frozenset(names - set(wanted))
    return AnswerPlan(removals, tuple(wanted), held)
