"""Keeping every file on k nodes as the ring changes.

One round of repair, for every name held here (tombstones too), decided by
`files.repair`: the owner of a name's key offers it to the key's other holders and
pushes the bytes to each that lacks that version; any other node offers it to the owner,
and once the owner confirmed, drops its own copy if it is not among the k holders. So keys
move to a node that joins, the survivors of a crash restore k copies, and a node that held
a copy it no longer should gives it up. A graceful leave hands everything over first.
Offers carry versions, so a newer put or a removal always wins over an old copy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from chordshare.chord.state import RoutingState
from chordshare.files.lineage import Ancestry
from chordshare.files.manifest import Manifest
from chordshare.files.messages import FileError, FileVersion, PutHeader, PutOutcome, Refusal
from chordshare.files.names import is_legacy_name
from chordshare.files.placement import (
    file_key,
)
from chordshare.files.repair import (
    KeyHolders,
    confirmed_holders,
    drops,
    plan_handoff,
    plan_repair,
    successor_addresses,
)
from chordshare.files.room import RoomTable
from chordshare.files.versions import judge_answer, newest
from chordshare.ids import IdSpace
from chordshare.node.tasks import NodeTasks
from chordshare.sharing.ring import Placement, Placements
from chordshare.sharing.stand_in import stand_in_copies
from chordshare.sharing.throttle import NodeRates
from chordshare.sharing.version_book import VersionBook
from chordshare.storage.store import NodeStore
from chordshare.transport.base import PeerError
from chordshare.transport.files import FilePeers

log = logging.getLogger(__name__)

OFFER_BATCH = 512


@dataclass(frozen=True, slots=True)
class Copy:
    """A version a put copies to the successors: its manifest, its chunks when they are at
    hand (a small put), its lineage."""

    manifest: Manifest
    at_hand: Mapping[int, bytes] | None
    ancestry: Ancestry | None


@dataclass
class RepairReport:
    offered: int = 0
    pushed: int = 0
    held_back: int = 0  # copies not pushed: the peer has no room for them
    no_room: set[tuple[str, str]] = field(default_factory=set)  # (address, name) held back
    dropped: int = 0
    failed_peers: set[str] = field(default_factory=set)


class Replicator:
    """Keeps every name held here on its k holders: repair rounds, the copies a put waits
    for, removals passed on, the handoff before a graceful leave."""

    def __init__(
        self,
        book: VersionBook,
        store: NodeStore,
        state: RoutingState,
        placements: Placements,
        peers: FilePeers,
        replicas: int,
        tasks: NodeTasks,
        may_be_new: Callable[[], bool] = lambda: True,
        rates: NodeRates | None = None,
    ) -> None:
        self.book = book
        self.tasks = tasks  # the node's: the copies a put leaves running are among them
        self.rooms = RoomTable()  # which peers have room for a copy
        self.full_rounds = 0  # full repair rounds done
        self.store = store
        self.state = state
        self.placements = placements
        self.peers = peers
        self.replicas = replicas
        # Whether this node may still be new to its keys (its predecessor changed lately):
        # only then does a first put of a name ask the other holders for theirs.
        self.may_be_new = may_be_new
        # Repair pushes go under the repair cap; a put's own copies under the upload cap.
        self.rates = rates if rates is not None else NodeRates()

    def _placement(self, fresh: bool) -> Placement:
        return self.placements.get(fresh)

    @property
    def space(self) -> IdSpace:
        return self.state.space

    def owns(self, key: int) -> bool:
        """Whether this node owns the key, by the Chord core's one answer."""
        return self.state.owns(key)

    async def holders(self, name: str) -> list[str]:
        """The addresses of name's k holders (its key's owner first), as the ring says."""
        where = await self._placement(fresh=False).holders_of(file_key(self.space, name))
        return list(where.holders)

    def _successor_addresses(self, count: int | None = None) -> list[str]:
        """The first `count` (default k-1) other nodes of the successor list."""
        successors = [node.address for node in self.state.successors]
        count = self.replicas - 1 if count is None else count
        return successor_addresses(self.state.me.address, successors, count)

    # Repair.

    async def repair(self, only: set[str] | None = None, may_drop: bool = True) -> RepairReport:
        """One round over every name held here, or over `only` those (just stored or
        removed: they need copying now, the rest can wait for the next full round).
        may_drop=False keeps copies this node seems not to need: right after a restart or
        a change of neighbours, the view of who holds what may be out of date, and a copy
        dropped then would only have to be pushed back."""
        report = RepairReport()
        me = self.state.me.address
        if only is None:
            versions = self.book.versions()
        else:
            found = (self.book.version_of(name) for name in sorted(only))
            versions = [v for v in found if v is not None]
        placement = self._placement(fresh=only is None)
        where: dict[str, KeyHolders | None] = {}
        for version in versions:
            try:
                where[version.name] = await placement.holders_of(file_key(self.space, version.name))
            except Exception as err:  # a lookup that fails now is retried next round
                log.debug("repair: no owner for %r: %s", version.name, err)
        # A quick round after a put skips the holders the put's own copy has reached
        # already; the full rounds offer to every one of them.
        plan = plan_repair(me, versions, where, reached=self.book.confirmed if only else None)
        confirmed: set[tuple[str, str]] = set()  # (address, name) that hold our version
        for address, offered in plan.offers.items():
            for start in range(0, len(offered), OFFER_BATCH):
                batch = offered[start : start + OFFER_BATCH]
                report.offered += len(batch)
                try:
                    held = await self.reconcile(address, batch, report)
                except PeerError:
                    report.failed_peers.add(address)
                    break
                confirmed |= {(address, name) for name in held}
        confirmed |= await stand_in_copies(self, versions, where, report)
        if only is None:
            # Who holds what, as this round found out: a holder that died or left is no
            # longer named (FindFile, listings, a get's sources).
            live = [v.name for v in versions if not v.deleted]
            self.book.confirmed = confirmed_holders(me, live, confirmed)
        kept = self.book.offered_lately() if only is None else set()
        if may_drop:
            for name in drops(plan, confirmed, kept):
                await asyncio.to_thread(self.store.remove, name)
                self.book.confirmed.pop(name, None)
                report.dropped += 1
        if only is None:
            self.full_rounds += 1
        return report

    async def reconcile(
        self, address: str, versions: Sequence[FileVersion], report: RepairReport
    ) -> set[str]:
        """Offer versions to a peer and push what it wants. Returns the names it now holds
        in our version (or a newer one)."""
        offered = await self.peers.at(address).offer(versions)
        self.rooms.reported(address, offered.room)
        answer = judge_answer(versions, offered, self.book.admins)
        for mine, theirs in answer.aside:  # written apart; the peer's takes the name
            await self.book.set_aside(mine.name, theirs)
        for removal in answer.removals:  # removed while this node was away
            await self.book.remove(
                removal.name, removal.version, removal.ancestry, replica=True, claim=removal.claim
            )
        held = set(answer.held)
        for name in answer.push:
            manifest = self.store.manifest(name)
            if manifest is None:
                continue  # removed meanwhile
            if not self.rooms.may_push(address, manifest.size, time.monotonic()):
                report.held_back += 1  # it has no room for it: not sent until it has
                report.no_room.add((address, name))
                continue
            try:
                await self.push(address, manifest, ancestry=self.store.catalog.ancestry(name))
            except FileError as err:
                self._refused(address, err)
                if err.refusal is Refusal.RESOURCE_EXHAUSTED:
                    report.no_room.add((address, name))
                log.info("repair: %s refused %r: %s", address, name, err.message)
                continue
            self.rooms.took(address, manifest.size)
            held.add(name)
            report.pushed += 1
        for name in held:
            if self.store.manifest(name) is not None:
                self.book.confirm(name, address)
        return held

    async def version_elsewhere(self, name: str) -> FileVersion | None:
        """The newest version of name that this node's k-1 successors hold (or removed),
        asked of them all at once: an offer of version 0 makes each answer with its own.
        None without asking once this node has held its keys for a while."""
        if not self.may_be_new():
            return None
        probe = [FileVersion(name, 0.0, bytes(32))]
        answers = await asyncio.gather(
            *(self.peers.at(a).offer(probe) for a in self._successor_addresses()),
            return_exceptions=True,
        )
        found = [
            v
            for answer in answers
            if not isinstance(answer, BaseException)
            for v in answer.newer
            if v.name == name
        ]
        return newest(found)

    async def announce(self, version: FileVersion) -> int | None:
        """Offer one version (a removal) to this node's k-1 successors at once; how many
        answered (None: there is no other node)."""
        targets = self._successor_addresses()
        if not targets:
            return None
        answers = await asyncio.gather(
            *(self.peers.at(a).offer([version]) for a in targets), return_exceptions=True
        )
        return sum(not isinstance(answer, BaseException) for answer in answers)

    async def push(
        self,
        address: str,
        manifest: Manifest,
        at_hand: Mapping[int, bytes] | None = None,
        ancestry: Ancestry | None = None,
        repair: bool = True,
    ) -> PutOutcome:
        """Copy a file to a peer, sending only the chunks it lacks (not asked for a one-chunk
        file: the question would cost as much as the answer saves). Chunks come from
        `at_hand` when given (a small put, copied while it commits here), else from the store.
        `repair`: a repair push, paced as repair traffic on both sides; else a put's own
        copy, paced as a user's transfer."""
        if len(manifest.chunks) > 1:
            missing = set(await self.peers.at(address).missing_chunks(manifest.chunks))
        else:
            missing = set(range(len(manifest.chunks)))
        chunks = (
            _given_chunks(at_hand, missing)
            if at_hand is not None
            else self._stored_chunks(manifest, missing)
        )
        legacy = is_legacy_name(manifest.name)  # held, so stored before the new-name rule
        header = PutHeader(
            manifest, replica=True, legacy_name=legacy, ancestry=ancestry, repair=repair
        )
        throttle = self.rates.repair if repair else self.rates.upload
        return await self.peers.at(address).put_file(header, throttle.paced(chunks))

    async def _stored_chunks(
        self, manifest: Manifest, indexes: set[int]
    ) -> AsyncIterator[tuple[int, bytes]]:
        for index in sorted(indexes):
            digest = manifest.chunks[index]
            yield index, await asyncio.to_thread(self.store.read_chunk, digest, False)

    async def replicate(
        self,
        name: str,
        manifest: Manifest | None = None,
        at_hand: Mapping[int, bytes] | None = None,
        ancestry: Ancestry | None = None,
    ) -> int | None:
        """Copy a just-put name to this node's k-1 successors at once, and return as soon
        as one of them holds it: 1, or 0 if none could. The other copies go on in the
        background. None when there is no other node to copy to. `manifest`, `at_hand`
        (its chunks by index) and `ancestry`: the version to copy, when it is not read from
        the store."""
        if manifest is None:
            manifest = self.store.manifest(name)
            ancestry = self.store.catalog.ancestry(name)
        targets = self._successor_addresses()
        if manifest is None or not targets:
            return None

        first: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        copy = Copy(manifest, at_hand, ancestry)
        copies = self.tasks.start(self._copy_to_all(copy, targets, first), f"copies of {name!r}")
        try:
            return 1 if await first else 0
        except asyncio.CancelledError:
            copies.cancel()  # the put failed: none of its copies is wanted
            raise

    async def _copy_to_all(
        self, copy: Copy, targets: Sequence[str], first: asyncio.Future[bool]
    ) -> None:
        """Copy to every target at once, as one of the node's tasks; `first` learns as soon
        as one holds the version (or that none could), and the rest go on here."""
        name = copy.manifest.name

        async def copy_to(address: str) -> None:
            if await self._copy(address, copy) and not first.done():
                first.set_result(True)

        try:
            async with asyncio.TaskGroup() as group:
                for address in targets:
                    group.create_task(copy_to(address))
        except ExceptionGroup as group_error:  # errors no copy expected: the put reports one
            err = group_error.exceptions[0]
            if first.done():
                log.error("copying %r failed", name, exc_info=err)
            else:
                first.set_exception(err)
        finally:
            if not first.done():
                first.set_result(False)

    async def _copy(self, address: str, copy: Copy) -> bool:
        # Pushed without an offer first: a successor that has this version already answers
        # "unchanged", and the put's answer waits one round trip less.
        manifest, name = copy.manifest, copy.manifest.name
        if not self.rooms.may_push(address, manifest.size, time.monotonic()):
            return False  # no room there for it (the next successor has it, or repair)
        try:
            outcome = await self.push(address, manifest, copy.at_hand, copy.ancestry, repair=False)
        except (PeerError, FileError) as err:
            if isinstance(err, FileError):
                self._refused(address, err)
            log.info("copy of %r to %s failed: %s", name, address, err)
            return False
        self.rooms.took(address, manifest.size)
        theirs = outcome.manifest
        if (theirs.sha256, theirs.created) != (manifest.sha256, manifest.created):
            return False  # it keeps another version (or a removal): not our copy
        self.book.confirm(name, address)
        return True

    def _refused(self, address: str, err: FileError) -> None:
        if err.refusal is Refusal.RESOURCE_EXHAUSTED:  # out of room: let it be until it has
            self.rooms.refused(address, time.monotonic())

    async def handoff(self) -> int:
        """Before a graceful leave: offer every name held here where it must go
        (`plan_handoff`), all peers at once. The k nodes that follow hold this node's keys
        once it is gone, so no name drops below k copies, even when the first successor
        already had it."""
        versions = self.book.versions()
        targets = self._successor_addresses(self.replicas)
        if not targets:
            log.info("the last node on the ring leaves; its files stay in its data directory")
            return 0
        placement = self._placement(fresh=True)
        where: dict[str, KeyHolders | None] = {}
        for version in versions:
            try:
                where[version.name] = await placement.holders_of(file_key(self.space, version.name))
            except Exception:  # unknown: the name goes to the successors
                where[version.name] = None
        offers = plan_handoff(self.state.me.address, versions, where, targets)
        report = RepairReport()

        async def offer_all(address: str, offered: list[FileVersion]) -> bool:
            try:
                for start in range(0, len(offered), OFFER_BATCH):
                    await self.reconcile(address, offered[start : start + OFFER_BATCH], report)
            except PeerError as err:
                log.warning("handoff to %s failed: %s", address, err)
                return False
            return True

        took = await asyncio.gather(*(offer_all(a, vs) for a, vs in offers.items()))
        if versions and not any(took):
            log.error("handoff failed: no peer took this node's %d names", len(versions))
        return report.pushed


async def _given_chunks(
    chunks: Mapping[int, bytes], indexes: set[int]
) -> AsyncIterator[tuple[int, bytes]]:
    for index in sorted(indexes):
        yield index, chunks[index]
