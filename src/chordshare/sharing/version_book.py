"""What one node holds of each name, and what it does with the versions others offer.

The decisions are `files.versions`; the book applies them to the node's store and
remembers which other holders confirmed each name's version (what FindFile names).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from chordshare.files.messages import FileVersion, OfferAnswer
from chordshare.files.versions import (
    Held,
    answer_offer,
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
        self, address: str, store: NodeStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.address = address
        self.store = store
        self.clock = clock
        # Holders known to have a file's current version (from replication), by name.
        self.confirmed: dict[str, set[str]] = {}
        self._listeners: list[Listener] = []

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
        manifest = self.store.manifest(name)
        live = None
        if manifest is not None:
            live = FileVersion.held(name, manifest.created, manifest.sha256)
        size = manifest.size if manifest is not None else None
        return Held(name, live, size, self.store.catalog.tombstone(name))

    def versions(self) -> list[FileVersion]:
        """Every name held here, as offered to other holders (tombstones included)."""
        live = [FileVersion.held(m.name, m.created, m.sha256) for m in self.store.manifests()]
        gone = [
            FileVersion.held(name, version, b"", deleted=True)
            for name, version in self.store.catalog.tombstones()
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
        answer, removals = answer_offer(versions, self.version_of)
        for removal in removals:
            await self.remove(removal.name, removal.version, replica=True)
        return answer

    async def remove(
        self, name: str, version: float = 0.0, replica: bool = False
    ) -> Removal | None:
        """Remove name: a client's removal gets a version newer than anything held; a
        removal another holder passes on (replica) keeps its version, and is None when a
        newer put outlived it."""
        held = self.held(name)
        if replica:
            if not removal_applies(held, version):
                return None
        else:
            version = removal_version(held, self.clock())
        await asyncio.to_thread(self.store.remove, name, version)
        self.confirmed.pop(name, None)
        if held.live is not None:
            log.info("removed %r at version %.6f", name, version)
        await self.changed(name)
        return Removal(FileVersion.held(name, version, b"", deleted=True), held.live is not None)
