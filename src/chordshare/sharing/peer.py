"""A whole chordshare peer: a Chord node that also stores, serves, replicates and indexes
files. What `chordshare node` runs.

The node server gets a second gRPC service (Files) on the same port. A sharing loop runs
beside the ring's maintenance: it copies a file to the owner's successors as soon as it is
stored, repairs every name held whenever the node's neighbours change (and every
`repair_period` anyway), and publishes index records and locators every `republish`. A
scrubber (`scrub.py`) reads the stored chunks again, slowly, and heals a damaged one from
another holder. The download cache (`download_cache.py`) keeps the files the node fetched
for its REST API and its clients' gets (`keeping.py`), serves them to other getters and
announces them (at once when a file is cached or evicted); with `share_replicate`, the
shared folder's files are put into the ring too (`shared_copies.py`). File bytes move
under the node's caps (`throttle.NodeRates`): users' transfers under the upload and
download caps, repair and scrubbing under the repair cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable

from chordshare.chord.messages import Claim
from chordshare.files.manifest import Manifest
from chordshare.files.placement import file_key
from chordshare.files.publisher import Signer
from chordshare.files.unfinished import sweep_every
from chordshare.node import shortage
from chordshare.node.runtime import ChordNode
from chordshare.node.server import NodeServer, NodeSettings
from chordshare.sharing.client import FileClient
from chordshare.sharing.download_cache import DownloadCache
from chordshare.sharing.keeping import Keeper
from chordshare.sharing.peer_setup import (
    IDENTITY_FILE,
    SharingSettings,
    first_missing,
    lock_data_dir,
)
from chordshare.sharing.publishing import Publisher
from chordshare.sharing.replication import Replicator
from chordshare.sharing.ring import NodeRing, Placements
from chordshare.sharing.routes import RouteCache
from chordshare.sharing.scrub import Scrubber
from chordshare.sharing.service import FileService
from chordshare.sharing.shared_copies import SharedCopies
from chordshare.sharing.shared_dir import SharedDirectory
from chordshare.sharing.soft_state import SoftState
from chordshare.sharing.throttle import NodeRates, PacedPeers, paced_fetcher
from chordshare.sharing.version_book import VersionBook
from chordshare.storage.identity import load_or_create
from chordshare.storage.store import NodeStore
from chordshare.transport.base import PeerError
from chordshare.transport.files import FilePeers, LocalFirst, chunk_fetcher
from chordshare.transport.files_grpc import GrpcFilePeers
from chordshare.transport.files_servicer import FILES_SERVICE_NAME, serving_files

log = logging.getLogger(__name__)

TICK = 0.25  # how often the sharing loop looks at the node's neighbours
BATCH_WINDOW = 0.05  # how long a just-stored file waits for others to copy it with


class SharingPeer:
    def __init__(self, node_settings: NodeSettings, settings: SharingSettings) -> None:
        self.settings = settings
        self.shared = (
            SharedDirectory(settings.share, skip=settings.data_dir) if settings.share else None
        )
        self._lock_fd = -1
        self.store: NodeStore  # opened by start, once the node's port is its own
        self.server = NodeServer(node_settings, services=[serving_files(self._file_service)])
        self.server.extra_service_names.append(FILES_SERVICE_NAME)
        self.service: FileService | None = None
        self.replicator: Replicator | None = None
        self.publisher: Publisher | None = None
        self.peers: GrpcFilePeers | None = None
        # Its folder is emptied by start, once the data directory is this node's.
        self.cache = DownloadCache(settings.data_dir / "downloads", settings.cache_bytes)
        self.cache.on_change(self._note_cached)
        self.copies: SharedCopies | None = None
        self._copying: asyncio.Task[None] | None = None
        self._changed: set[str] = set()
        self._cache_changed: set[str] = set()
        self._predecessor: object = None  # the last predecessor seen, and since when
        self._predecessor_since = time.monotonic()
        self._started = time.monotonic()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.scrubber: Scrubber | None = None
        self.signer: Signer  # loaded by start, from the data directory
        self.rates = NodeRates.of(
            settings.max_upload_rate, settings.max_download_rate, settings.max_repair_rate
        )

    @property
    def user_peers(self) -> FilePeers | None:
        """The other nodes as this node's own users' transfers reach them (its REST API):
        what it sends paced by its upload cap, what it receives by its download cap."""
        if self.peers is None:
            return None
        return PacedPeers(self.peers, send=self.rates.upload, receive=self.rates.download)

    def _file_service(self, node: ChordNode) -> FileService:
        """Put the node's file parts together, each handed what it needs: what the node
        serves as its Files service."""
        address = node.me.address
        book = VersionBook(address, self.store, admins=self.settings.admin_keys)
        soft = SoftState()
        security = self.server.settings.security
        self.peers = GrpcFilePeers(health=node.transport.health, security=security)
        placements = Placements(node.state, NodeRing(node), self.settings.replicas)
        settled = 2 * self.settings.repair_period
        self.replicator = Replicator(
            book,
            self.store,
            node.state,
            placements,
            self.peers,
            self.settings.replicas,
            self.server.tasks,
            # Once its predecessor has stayed the same for two repair periods, the nodes
            # that held this node's keys before have handed them over.
            may_be_new=lambda: self._predecessor_age(node) <= settled,
            rates=self.rates,
        )
        self.publisher = Publisher(
            self.store,
            soft,
            node.state,
            placements,
            self.peers,
            functools.partial(self._answers, node),
            self.shared,
            self.settings.republish,
            self.cache,
        )
        service = FileService(
            address,
            self.store,
            self.shared,
            book=book,
            soft=soft,
            owns=lambda name: _owns(node, name),  # None while its view is unchecked
            holders=self.replicator,
            announcer=self.replicator,
            cache=self.cache,
            unfinished_ttl=self.settings.unfinished_put_ttl,
            rates=self.rates,
        )
        service.on_change(self._note_change)
        keep_with = functools.partial(self.user_files, node)
        service.keeper = Keeper(self.cache, keep_with, service.stores, self.server.tasks.start)
        node.on_leaving(self._handoff)
        self.service = service
        if self.settings.scrub_rate > 0:
            self.scrubber = Scrubber(
                self.store,
                self._other_holders,
                paced_fetcher(chunk_fetcher(self.peers, repair=True), self.rates.repair),
                self.server.tasks,
                self.settings.scrub_rate,
                self.settings.scrub_first_after,
                repair=self.rates.repair,
            )
        return service

    async def _other_holders(self, manifest: Manifest) -> list[str]:
        """Who else may serve manifest's chunks: the name's holders, then the peers
        sharing the same bytes in place."""
        assert self.replicator is not None and self.service is not None
        holders = await self.replicator.holders(manifest.name)
        holders += [
            locator.address
            for locator in self.service.soft.sharers(manifest.name)
            if locator.manifest.sha256 == manifest.sha256
        ]
        return [h for h in dict.fromkeys(holders) if h != self.service.address]

    @staticmethod
    async def _answers(node: ChordNode, address: str) -> bool:
        """Whether the peer at `address` answers a ping within its deadline."""
        transport = node.transport
        try:
            await transport.hello(address, transport.health.timeout_for(address))
        except PeerError:
            return False
        return True

    def _predecessor_age(self, node: ChordNode) -> float:
        """Seconds since this node's predecessor last changed (as far as it has looked)."""
        now = time.monotonic()
        if node.state.predecessor != self._predecessor:
            self._predecessor, self._predecessor_since = node.state.predecessor, now
        return now - self._predecessor_since

    def _note_change(self, name: str) -> None:
        self._changed.add(name)
        self._wake.set()

    def _note_cached(self, name: str) -> None:
        self._cache_changed.add(name)
        self._wake.set()

    def files(self, node: ChordNode) -> FileClient:
        """A client of the network's files on this node: what it owns is read and written
        here, not sent to itself over loopback gRPC."""
        assert self.peers is not None and self.service is not None
        peers = LocalFirst(node.me.address, self.service, self.peers)
        return FileClient(NodeRing(node), peers, self.settings.replicas, signer=self.signer)

    def user_files(self, node: ChordNode, routes: RouteCache | None = None) -> FileClient:
        """`files` as the node's users' transfers reach the network (its REST API, the
        copies it keeps for its clients): paced by its caps."""
        assert self.user_peers is not None and self.service is not None
        peers = LocalFirst(node.me.address, self.service, self.user_peers)
        return FileClient(NodeRing(node), peers, self.settings.replicas, routes, self.signer)

    async def start(self) -> ChordNode:
        """Listen, open the data directory, then join (StartError, DataDirInUse,
        JoinError). A node whose port is taken touches no data directory, and one that
        cannot join removes the one it created."""
        self.server.bind()
        data_dir = self.settings.data_dir
        created = first_missing(data_dir)  # what a failed start must remove again
        try:
            self._lock_fd = lock_data_dir(data_dir)
            self.store = NodeStore(
                data_dir,
                self.settings.max_store,
                recover_damaged=self.settings.recover_data,
                keep_replaced=self.settings.link_grace,
            )
            # The node's own publisher key: what signs the uploads of its API and console.
            self.signer, _ = await asyncio.to_thread(load_or_create, data_dir / IDENTITY_FILE)
            self.cache.empty()  # what an earlier run left
            node = await self.server.start()
        except BaseException:
            await self.server.stop(graceful=False)
            self._release()
            if created is not None:  # a node that never started leaves nothing behind
                shutil.rmtree(created, ignore_errors=True)
            raise
        self._task = self.server.tasks.start(self._loop(node), "sharing")
        settings = self.settings
        self.server.tasks.start(
            self._sweep("unfinished puts", self._sweep_unfinished, settings.unfinished_put_ttl),
            "unfinished puts",
        )
        self.server.tasks.start(
            self._sweep("replaced versions", self._sweep_retired, settings.link_grace),
            "replaced versions",
        )
        caps = [f"{kind} {t.rate:,.0f} B/s" for kind, t in self.rates.by_kind().items() if t.rate]
        if caps:
            log.info("rate limits: %s", ", ".join(caps))
        if self.scrubber is not None:
            self.scrubber.start()
        if self.shared is not None and self.settings.share_replicate:
            self.copies = SharedCopies(
                self.shared, lambda: self.files(node), data_dir, self.settings.republish
            )
            self._copying = self.server.tasks.start(self.copies.run(), "shared copies")
        return node

    async def _loop(self, node: ChordNode) -> None:
        assert self.replicator is not None and self.publisher is not None
        replicator, publisher = self.replicator, self.publisher
        settings = self.settings
        seen_view: object = None
        last_repair = last_publish = float("-inf")
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if self._changed:
                    # Let a burst of puts gather, so one round copies and indexes them all.
                    await asyncio.sleep(BATCH_WINDOW)
                changed, self._changed = self._changed, set()
                if changed:
                    # Never drops: a copy that just arrived may be one a leaving node
                    # handed over before the ring learned it left; the full rounds judge.
                    report = await replicator.repair(only=changed, may_drop=False)
                    if report.failed_peers:
                        # Tried again at the next tick, not at the next full round: until
                        # then these names may have fewer than k copies.
                        log.info(
                            "copying %d changed names failed at %s; trying again",
                            len(changed),
                            ", ".join(sorted(report.failed_peers)),
                        )
                        self._changed |= changed
                    await publisher.publish(only=changed)
                cached, self._cache_changed = self._cache_changed, set()
                if cached:
                    await publisher.publish_cached(only=cached)
                view = (node.state.predecessor, node.state.successors[: settings.replicas])
                now = time.monotonic()
                self._predecessor_age(node)
                if view != seen_view or now - last_repair >= settings.repair_period:
                    if view != seen_view:
                        await publisher.pass_on_soft_state()
                    seen_view, last_repair = view, now
                    settled = 2 * settings.repair_period
                    report = await replicator.repair(
                        may_drop=now - self._started > settled
                        and self._predecessor_age(node) > settled
                    )
                    if report.pushed or report.dropped:
                        log.info("repair: pushed %d, dropped %d", report.pushed, report.dropped)
                    await publisher.forget_departed_sharers()
                if now - last_publish >= settings.republish:
                    last_publish = now
                    await publisher.publish()
            except Exception as err:  # a failed round must never stop the loop
                if not shortage.waits(err, "sharing"):  # said once while it lasts
                    log.exception("sharing round failed")
            else:
                shortage.goes_on("sharing")

    async def _sweep(self, what: str, sweep: Callable[[], Awaitable[None]], ttl: float) -> None:
        """Drop what is kept past its time (`ttl`), at start (what expired while the node
        was down) and then as often as `sweep_every` says."""
        while True:
            try:
                await shortage.SHORTAGES.round(what, sweep())
            except Exception:  # a failed sweep must never stop the next
                log.exception("sweeping %s failed", what)
            if ttl <= 0:
                return  # none are kept: only those of an earlier start were to go
            await asyncio.sleep(sweep_every(ttl))

    async def _sweep_unfinished(self) -> None:
        if self.service is not None:
            await self.service.puts.sweep_unfinished()

    async def _sweep_retired(self) -> None:
        freed = await asyncio.to_thread(self.store.sweep_retired)
        if freed:
            log.info("dropped replaced versions kept for links: %d chunks freed", freed)

    async def _handoff(self) -> None:
        if self.service is not None:
            # From here puts are refused (the client puts again through the next owner),
            # so none lands after the handoff has taken its list of names.
            self.service.leaving = True
        await self._end_tasks()
        if self.replicator is not None:
            pushed = await self.replicator.handoff()
            log.info("handed %d files to the successors before leaving", pushed)

    async def _end_tasks(self) -> None:
        """Stop the sharing loop and the shared copies."""
        for task in (self._task, self._copying):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._copying = None

    async def stop(self, graceful: bool = True) -> None:
        if self.scrubber is not None:
            await self.scrubber.close()
        await self._end_tasks()
        # A graceful stop leaves the ring, and the leave hands our files over first.
        await self.server.stop(graceful=graceful)
        if self.service is not None:
            await self.service.close()
        if self.peers is not None:
            await self.peers.close()
        self._release()

    def _release(self) -> None:
        """Close the store and let go of the data directory, if start opened them."""
        store = vars(self).pop("store", None)
        if store is not None:
            store.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def _owns(node: ChordNode, name: str) -> bool | None:
    """Whether the node owns name's key; None when it cannot say yet (after a pause)."""
    claim = node.claim(file_key(node.space, name))
    return None if claim is Claim.UNSURE else claim is Claim.OWNER
