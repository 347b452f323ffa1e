"""What one node holds of each name, and what it does with the versions others offer.

The decisions are `files.versions`; the book applies them to the node's store and
remembers which other holders confirmed each name's version (what FindFile names).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from chordshare.files.lineage import Ancestry
from chordshare.files.messages import FileVersion, OfferAnswer
from chordshare.files.names import conflict_name
from chordshare.files.publisher import Claim
from chordshare.files.versions import (
    Held,
    answer_offer,
    merged_removal,
    refuse_unless_allowed,
    removal_ancestry,
    removal_applies,
    removal_version,
)
from chordshare.storage.store import NodeStore

log = logging.getLogger(__name__)

Listener = Callable[[str], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Removal:
    tombstone: FileVersion  # the removal as offered to the other holders
    existed: bool  # whether a live copy was removed here


class VersionBook:
    def __init__(
        self,
        address: str,
        store: NodeStore,
        clock: Callable[[], float] = time.time,
        admins: frozenset[bytes] = frozenset(),
    ) -> None:
        self.address = address
        self.store = store
        self.clock = clock
        # Keys that may replace or remove any name, besides its publisher's.
        self.admins = admins
        # Holders known to have a file's current version (from replication), by name.
        self.confirmed: dict[str, set[str]] = {}
        # Names offered here since the last two full repair rounds asked: an owner that
        # offers a name counts this node among its holders (`offered_lately`).
        self._offered: list[set[str]] = [set(), set()]
        self._listeners: list[Listener] = []
        self._warned: set[tuple[str, float, bool]] = set()  # refused offers, said once

    def on_change(self, listener: Listener) -> None:
        """Call listener(name) after a file is stored, replaced or removed here."""
        self._listeners.append(listener)

    async def changed(self, name: str) -> None:
        for listener in self._listeners:
            result = listener(name)
            if result is not None:
                await result

    def held(self, name: str) -> Held:
        """What this node holds of name, for the version decisions."""
        catalog = self.store.catalog
        manifest = self.store.manifest(name)
        live = None
        if manifest is not None:
            live = FileVersion.held(
                name,
                manifest.created,
                manifest.sha256,
                ancestry=catalog.ancestry(name),
                claim=manifest.claim,
            )
        size = manifest.size if manifest is not None else None
        removal = catalog.removal(name)
        if removal is None:
            return Held(name, live, size)
        return Held(name, live, size, removal.version, removal.ancestry, removal.claim)

    def versions(self) -> list[FileVersion]:
        """Every name held here, as offered to other holders (tombstones included)."""
        ancestries = self.store.catalog.ancestries()
        live = [
            FileVersion.held(
                m.name, m.created, m.sha256, ancestry=ancestries.get(m.name), claim=m.claim
            )
            for m in self.store.manifests()
        ]
        gone = [
            FileVersion.held(t.name, t.version, b"", True, ancestry=t.ancestry, claim=t.claim)
            for t in self.store.catalog.tombstones()
        ]
        return live + gone

    def version_of(self, name: str) -> FileVersion | None:
        return self.held(name).newest()

    def holders(self, name: str) -> list[str]:
        """This node, then the others known to hold name's version."""
        return [self.address, *sorted(self.confirmed.get(name, set()) - {self.address})]

    def confirm(self, name: str, address: str) -> None:
        self.confirmed.setdefault(name, {self.address}).add(address)

    async def offer(self, versions: Sequence[FileVersion]) -> OfferAnswer:
        # A probe (version 0, asked before a first put) is no offer of a copy.
        self._offered[-1].update(v.name for v in versions if v.version > 0)
        outcome = answer_offer(versions, self.version_of, self.admins)
        self._warn_refused(outcome.refused)
        for removal in outcome.removals:
            await self.remove(
                removal.name, removal.version, removal.ancestry, replica=True, claim=removal.claim
            )
        # Said with every answer, so a peer pushes no copy this node has no room for.
        return replace(outcome.answer, room=await asyncio.to_thread(self.store.room))

    def _warn_refused(self, refused: Sequence[tuple[FileVersion, str]]) -> None:
        """Say once per version when a peer offers one its publisher did not sign: a
        member of the ring is passing on versions it made up."""
        for offered, why in refused:
            seen = (offered.name, offered.version, offered.deleted)
            if seen not in self._warned:
                self._warned.add(seen)
                log.warning("refused a version of %r a peer offered: %s", offered.name, why)

    def offered_lately(self) -> set[str]:
        """The names offered here since the full repair round before last (called once a
        full round): two rounds, so that an owner whose rounds run a little slower than
        this node's is not missed."""
        lately = self._offered[0] | self._offered[1]
        self._offered = [self._offered[1], set()]
        return lately

    async def remove(
        self,
        name: str,
        version: float = 0.0,
        ancestry: Ancestry | None = None,
        replica: bool = False,
        claim: Claim | None = None,
    ) -> Removal | None:
        """Remove name: a client's removal gets a version newer than anything held (a
        signed one keeps the version it signed) and names what it removes; a removal
        another holder passes on (replica) keeps its version and lineage, and is None when
        the live copy here is not one it removes (a newer put, or one written apart from
        it). One not signed by the name's publisher (or an admin key) is refused with
        PERMISSION_DENIED."""
        held = self.held(name)
        if replica:
            removal = FileVersion.held(name, version, b"", True, ancestry, claim)
            refuse_unless_allowed(held.newest(), removal, self.admins)
            if not removal_applies(held, removal):
                return None
        else:
            signed = None if claim is None else FileVersion(name, version, b"", True, claim=claim)
            version = removal_version(held, self.clock(), signed, self.admins)
            ancestry = removal_ancestry(held.parent())
        before = held.removal()
        if before is not None:  # one removal, removing what either removes
            mine = FileVersion.held(name, version, b"", True, ancestry, claim)
            merged = merged_removal(before, mine)
            version, ancestry, claim = merged.version, merged.ancestry, merged.claim
        await asyncio.to_thread(self.store.remove, name, version, ancestry, claim)
        self.confirmed.pop(name, None)
        if held.live is not None:
            log.info("removed %r at version %.6f", name, version)
        await self.changed(name)
        tombstone = FileVersion.held(name, version, b"", True, ancestry, claim)
        return Removal(tombstone, held.live is not None)

    async def set_aside(self, name: str, winner: FileVersion) -> None:
        """Keep the live version of name under its conflict name: it was written apart
        from `winner`, which takes the name. Every holder of it picks the same name and
        version, so their copies are one file, which repair takes to its own holders."""
        held = self.store.manifest(name)
        if held is None:
            return
        aside = replace(held, name=conflict_name(name, held.created, held.sha256))
        if self.store.manifest(aside.name) is None:
            await asyncio.to_thread(self.store.commit, aside, ())
        log.warning(
            "%r was written apart on two sides of the ring: version %.6f (sha256 %s…) keeps "
            "the name, version %.6f (sha256 %s…) is kept as %r",
            name,
            winner.version,
            winner.sha256.hex()[:16],
            held.created,
            held.sha256.hex()[:16],
            aside.name,
        )
        await self.changed(aside.name)
