"""The index (words and content hashes -> names) and the locators of shared and cached
files: soft state that each owner of a file (and each sharer, and each node whose download
cache keeps a file) publishes again every `republish` seconds to the owner of the record's
key and its successors, and that expires if it is not. A cached file's locator is withdrawn
(published with a time to live of 0) as soon as the cache evicts the file.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

from chordshare.chord.state import RoutingState
from chordshare.files.manifest import Manifest
from chordshare.files.messages import FileError, IndexEntry, IndexRecord, Locator
from chordshare.files.placement import file_key, index_key
from chordshare.files.search import index_records
from chordshare.sharing.download_cache import DownloadCache
from chordshare.sharing.folder_index import FolderIndex
from chordshare.sharing.ring import Placement, Placements
from chordshare.sharing.shared_dir import SharedDirectory
from chordshare.sharing.soft_state import SoftState
from chordshare.storage.store import NodeStore
from chordshare.transport.base import PeerError
from chordshare.transport.files import FilePeers

log = logging.getLogger(__name__)


class Publisher:
    def __init__(
        self,
        store: NodeStore,
        soft: SoftState,
        state: RoutingState,
        placements: Placements,
        peers: FilePeers,
        answers: Callable[[str], Awaitable[bool]],
        shared: SharedDirectory | None = None,
        republish: float = 30.0,
        cache: DownloadCache | None = None,
    ) -> None:
        self.store = store
        self.soft = soft
        self.state = state
        self.placements = placements
        self.peers = peers
        self.answers = answers  # whether the peer at an address answers a ping now
        self.shared = shared
        self.republish = republish
        self.address = state.me.address
        self.cache = cache
        self.folders = FolderIndex(store)
        self._published: dict[str, list[IndexRecord]] = {}
        self._cached: dict[str, Locator] = {}  # the cache's locators published, by name

    async def pass_on_soft_state(self) -> None:
        """Index records and locators held here go on to their key's current holders, with
        the time they have left (so a dead publisher's records still expire): a node that
        joins next to a key gets them at once rather than at the publisher's next round,
        and they survive the crash of a holder. Run when the node's neighbours change."""
        placement = self.placements.new()
        batches: dict[tuple[str, int], list[IndexRecord]] = defaultdict(list)
        for record_key, rows in self.soft.index.rows().items():
            try:
                key = index_key(self.state.space, record_key)
                holders = (await placement.holders_of(key)).holders
            except Exception:
                continue
            for entry, left in rows:
                if isinstance(entry, IndexEntry) and left >= 1:
                    for address in holders:
                        # Whole seconds, rounded down: one call per holder and lifetime.
                        batches[(address, int(left))].append(IndexRecord(record_key, entry))
        for (address, left), records in batches.items():
            if address != self.address:
                await self._publish_to(address, records, float(left), remove=False)
        for rows in self.soft.locators.rows().values():
            for locator, left in rows:
                if isinstance(locator, Locator) and left > 0:
                    await self._send_locator(locator, left, placement, skip_self=True)

    async def publish(self, only: set[str] | None = None) -> int:
        """Publish the index records of the files this node owns or shares, the locators
        of what it shares, and withdraw records of names it no longer has. With `only`,
        just those names (just stored or removed here)."""
        ttl = self.republish * 3
        current: dict[str, list[IndexRecord]] = {}
        if only is None:
            manifests = self.store.manifests()
        else:
            found = (self.store.manifest(name) for name in sorted(only))
            manifests = [m for m in found if m is not None]
        owned = [m for m in manifests if self.state.owns(file_key(self.state.space, m.name))]
        current.update(await asyncio.to_thread(self.folders.records_of, owned))
        if only is None:
            self.folders.keep_only(owned)
        locators: list[Locator] = []
        shared = self.shared
        if shared is not None and only is None:
            for local in await asyncio.to_thread(shared.scan):
                current.setdefault(local.manifest.name, index_records(local.manifest))
                locators.append(Locator(local.manifest, self.address))
        withdrawn: list[IndexRecord] = []
        for name, records in list(self._published.items()):
            if name not in current and (only is None or name in only):
                withdrawn += records
                del self._published[name]
        placement = self.placements.get(fresh=only is None)
        publish = await self._by_holder(placement, [r for rs in current.values() for r in rs])
        withdraw = await self._by_holder(placement, withdrawn)
        sent = 0
        for address, records in publish.items():
            sent += await self._publish_to(address, records, ttl, remove=False)
        for address, records in withdraw.items():
            await self._publish_to(address, records, ttl, remove=True)
        for locator in locators:
            await self._send_locator(locator, ttl, placement)
        self._published.update(current)
        if only is None:
            await self.publish_cached(placement=placement)
        return sent

    async def publish_cached(
        self, only: set[str] | None = None, placement: Placement | None = None
    ) -> None:
        """Publish a locator marked `cached` for each name the download cache keeps, and
        withdraw those of names it no longer keeps. With `only`, just those names (just
        cached or evicted). A name this node stores or shares with the same bytes is a
        source already, and gets no second locator."""
        if self.cache is None:
            return
        placement = placement or self.placements.get(fresh=only is None)
        current = {
            m.name: Locator(m, self.address, cached=True)
            for m in self.cache.manifests()
            if (only is None or m.name in only) and not self._serves_otherwise(m)
        }
        for name, locator in list(self._cached.items()):
            if name not in current and (only is None or name in only):
                del self._cached[name]
                await self._send_locator(locator, 0.0, placement)  # 0: withdrawn
        for name, locator in current.items():
            self._cached[name] = locator
            await self._send_locator(locator, self.republish * 3, placement)

    def _serves_otherwise(self, manifest: Manifest) -> bool:
        stored = self.store.manifest(manifest.name)
        if stored is not None and stored.sha256 == manifest.sha256:
            return True
        shared = self.shared.named(manifest.name) if self.shared is not None else None
        return shared is not None and shared.manifest.sha256 == manifest.sha256

    async def forget_departed_sharers(self) -> list[str]:
        """Ping every peer the locators held here name, and forget the locators of those
        that do not answer: a sharer that crashed is otherwise named as a source until its
        locators expire, three of its republish periods later. One that was only slow
        publishes them again at its next round. The addresses forgotten."""
        others = sorted(self.soft.sharer_addresses() - {self.address})
        answered = await asyncio.gather(*(self.answers(address) for address in others))
        gone = [address for address, answers in zip(others, answered, strict=True) if not answers]
        for address in gone:
            self.soft.forget_sharer(address)
        if gone:
            log.info("forgot the locators of sharers that are gone: %s", ", ".join(gone))
        return gone

    async def _by_holder(
        self, placement: Placement, records: list[IndexRecord]
    ) -> dict[str, list[IndexRecord]]:
        """Records grouped by the holders of their keys: one call per holder."""
        grouped: dict[str, list[IndexRecord]] = defaultdict(list)
        for record in records:
            try:
                key = index_key(self.state.space, record.key)
                holders = (await placement.holders_of(key)).holders
            except Exception as err:  # no owner now: the next round publishes it
                log.debug("index: no owner for %r: %s", record.key, err)
                continue
            for address in holders:
                grouped[address].append(record)
        return grouped

    async def _publish_to(
        self, address: str, records: list[IndexRecord], ttl: float, remove: bool
    ) -> int:
        if address == self.address:
            await self.soft.publish_index(records, ttl, remove)
            return len(records)
        try:
            await self.peers.at(address).publish_index(records, ttl, remove)
        except (PeerError, FileError):
            return 0
        return len(records)

    async def _send_locator(
        self, locator: Locator, ttl: float, placement: Placement, skip_self: bool = False
    ) -> None:
        try:
            key = file_key(self.state.space, locator.manifest.name)
            holders = (await placement.holders_of(key)).holders
        except Exception:
            return
        for address in holders:
            if address == self.address:
                if not skip_self:
                    await self.soft.publish_locators([locator], ttl)
                continue
            try:
                await self.peers.at(address).publish_locators([locator], ttl)
            except (PeerError, FileError):
                continue
