"""Keeping every file on k nodes, and the index pointing at them, as the ring changes.

One round of repair, for every name held here (tombstones too):
- if this node owns the name's key, it offers the name to its k-1 successors and pushes
  the bytes to each that lacks that version;
- otherwise it offers the name to the key's owner (which replicates it further), and once
  the owner has it, drops its own copy if it is not among the owner's k-1 successors.
So keys move to a node that joins (its successor offers them), after a crash the survivors
restore k copies, and a node that held a copy it no longer should gives it up. A graceful
leave hands everything to the successor first. Offers carry versions, so a newer put or a
removal always wins over an old copy.

The index (words and content hashes -> names) and the locators of shared files are soft
state: each owner of a file (and each sharer) publishes them again every `republish`
seconds to the owner of the record's key and its successors, and they expire if not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from chordshare.chord.state import RoutingState
from chordshare.ids import IdSpace
from chordshare.sharing.core.repair import (
    KeyHolders,
    RangeMap,
    confirmed_holders,
    drops,
    key_holders,
    plan_handoff,
    plan_repair,
    successor_addresses,
)
from chordshare.sharing.core.versions import judge_answer
from chordshare.sharing.names import is_legacy_name
from chordshare.sharing.peers import (
    FileError,
    FilePeers,
    FileVersion,
    IndexEntry,
    IndexRecord,
    Locator,
    PutHeader,
    PutOutcome,
)
from chordshare.sharing.placement import (
    file_key,
    index_key,
)
from chordshare.sharing.ring import Ring
from chordshare.sharing.search import index_records
from chordshare.sharing.service import FileService
from chordshare.storage.catalog import Manifest
from chordshare.transport.base import PeerError

log = logging.getLogger(__name__)

OFFER_BATCH = 512
PLACEMENT_TTL = 2.0  # seconds the rounds after puts trust what a lookup taught them


@dataclass
class RepairReport:
    offered: int = 0
    pushed: int = 0
    dropped: int = 0
    failed_peers: set[str] = field(default_factory=set)


class Placement:
    """Who holds which keys, learned during one round of work: a lookup names a key's
    owner, its neighbours give the range it owns and its successors (`RangeMap`)."""

    def __init__(self, replicator: Replicator) -> None:
        self.replicator = replicator
        self.ranges = RangeMap()

    async def holders_of(self, key: int) -> KeyHolders:
        """The key's owner and its k holders (owner first): this node's own answer when
        it owns the key, else a lookup's."""
        r = self.replicator
        state = r.state
        if state.owns(key):
            successors = [node.address for node in state.successors]
            return key_holders(state.me.address, successors, r.replicas)
        known = self.ranges.known(key)
        if known is not None:
            return known
        owner = await r.ring.owner(key)
        around = await r.ring.neighbors(owner)
        successors = [node.address for node in around.successors]
        holders = key_holders(owner.address, successors, r.replicas)
        pred = around.predecessor
        self.ranges.learn(pred.id if pred is not None else None, owner.id, holders)
        return holders


class Replicator:
    def __init__(
        self,
        service: FileService,
        state: RoutingState,
        ring: Ring,
        peers: FilePeers,
        replicas: int,
        republish: float = 30.0,
    ) -> None:
        self.service = service
        self.state = state
        self.ring = ring
        self.peers = peers
        self.replicas = replicas
        self.republish = republish
        self._published: dict[str, list[IndexRecord]] = {}
        self._cached_placement: tuple[float, object, Placement] | None = None
        self._background: set[asyncio.Task[bool]] = set()  # copies still under way

    def _placement(self, fresh: bool) -> Placement:
        """A full round learns placement afresh; the small rounds that follow puts reuse
        what was learned for PLACEMENT_TTL seconds (while this node's own neighbours stay
        the same), instead of looking the same word keys up for every file."""
        now = time.monotonic()
        view = (self.state.predecessor, tuple(self.state.successors))
        cached = self._cached_placement
        if fresh or cached is None or now - cached[0] > PLACEMENT_TTL or cached[1] != view:
            self._cached_placement = (now, view, Placement(self))
        return self._cached_placement[2]

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
            versions = self.service.versions()
        else:
            found = (self.service.version_of(name) for name in sorted(only))
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
        plan = plan_repair(me, versions, where, reached=self.service.confirmed if only else None)
        confirmed: set[tuple[str, str]] = set()  # (address, name) that hold our version
        for address, offered in plan.offers.items():
            for start in range(0, len(offered), OFFER_BATCH):
                batch = offered[start : start + OFFER_BATCH]
                report.offered += len(batch)
                try:
                    held = await self._reconcile(address, batch, report)
                except PeerError:
                    report.failed_peers.add(address)
                    break
                confirmed |= {(address, name) for name in held}
        if only is None:
            # Who holds what, as this round found out: a holder that died or left is no
            # longer named (FindFile, listings, a get's sources).
            live = [v.name for v in versions if not v.deleted]
            self.service.confirmed = confirmed_holders(me, live, confirmed)
        if may_drop:
            for name in drops(plan, confirmed):
                await asyncio.to_thread(self.service.store.remove, name)
                self.service.confirmed.pop(name, None)
                report.dropped += 1
        return report

    async def pass_on_soft_state(self) -> None:
        """Index records and locators held here go on to their key's current holders, with
        the time they have left (so a dead publisher's records still expire): a node that
        joins next to a key gets them at once rather than at the publisher's next round,
        and they survive the crash of a holder. Run when the node's neighbours change."""
        placement = Placement(self)
        batches: dict[tuple[str, int], list[IndexRecord]] = defaultdict(list)
        for record_key, rows in self.service.index.rows().items():
            try:
                holders = (await placement.holders_of(index_key(self.space, record_key))).holders
            except Exception:
                continue
            for entry, left in rows:
                if isinstance(entry, IndexEntry) and left >= 1:
                    for address in holders:
                        # Whole seconds, rounded down: one call per holder and lifetime.
                        batches[(address, int(left))].append(IndexRecord(record_key, entry))
        for (address, left), records in batches.items():
            if address != self.service.address:
                await self._publish_to(address, records, float(left), remove=False)
        for rows in self.service.locators.rows().values():
            for locator, left in rows:
                if isinstance(locator, Locator) and left > 0:
                    await self._send_locator(locator, left, placement, skip_self=True)

    async def _reconcile(
        self, address: str, versions: Sequence[FileVersion], report: RepairReport
    ) -> set[str]:
        """Offer versions to a peer and push what it wants. Returns the names it now holds
        in our version (or a newer one)."""
        answer = judge_answer(versions, await self.peers.offer(address, versions))
        for removal in answer.removals:  # removed while this node was away
            await self.service.delete(removal.name, removal.version, replica=True)
        held = set(answer.held)
        for name in answer.push:
            manifest = self.service.store.manifest(name)
            if manifest is None:
                continue  # removed meanwhile
            try:
                await self.push(address, manifest)
            except FileError as err:
                log.info("repair: %s refused %r: %s", address, name, err.message)
                continue
            held.add(name)
            report.pushed += 1
        for name in held:
            if self.service.store.manifest(name) is not None:
                self.service.confirmed.setdefault(name, {self.service.address}).add(address)
        return held

    async def version_elsewhere(self, name: str) -> FileVersion | None:
        """The newest version of name that this node's k-1 successors hold (or removed),
        asked of them all at once: an offer of version 0 makes each answer with its own."""
        probe = [FileVersion(name, 0.0, bytes(32))]
        answers = await asyncio.gather(
            *(self.peers.offer(a, probe) for a in self._successor_addresses()),
            return_exceptions=True,
        )
        found = [
            v
            for answer in answers
            if not isinstance(answer, BaseException)
            for v in answer.newer
            if v.name == name
        ]
        return max(found, key=lambda v: (v.version, v.sha256), default=None)

    async def announce(self, version: FileVersion) -> None:
        """Offer one version (a removal) to this node's k-1 successors at once."""
        await asyncio.gather(
            *(self.peers.offer(a, [version]) for a in self._successor_addresses()),
            return_exceptions=True,
        )

    async def push(
        self, address: str, manifest: Manifest, at_hand: Mapping[int, bytes] | None = None
    ) -> PutOutcome:
        """Copy a file to a peer, sending only the chunks it lacks (not asked for a one-chunk
        file: the question would cost as much as the answer saves). Chunks come from
        `at_hand` when given (a small put, copied while it commits here), else from the store."""
        if len(manifest.chunks) > 1:
            missing = set(await self.peers.missing_chunks(address, manifest.chunks))
        else:
            missing = set(range(len(manifest.chunks)))
        chunks = (
            _given_chunks(at_hand, missing)
            if at_hand is not None
            else self._stored_chunks(manifest, missing)
        )
        legacy = is_legacy_name(manifest.name)  # held, so stored before the new-name rule
        header = PutHeader(manifest, replica=True, legacy_name=legacy)
        return await self.peers.put_file(address, header, chunks)

    async def _stored_chunks(
        self, manifest: Manifest, indexes: set[int]
    ) -> AsyncIterator[tuple[int, bytes]]:
        for index in sorted(indexes):
            digest = manifest.chunks[index]
            yield index, await asyncio.to_thread(self.service.store.read_chunk, digest, False)

    async def replicate(
        self,
        name: str,
        manifest: Manifest | None = None,
        at_hand: Mapping[int, bytes] | None = None,
    ) -> int | None:
        """Copy a just-put name to this node's k-1 successors at once, and return as soon
        as one of them holds it: 1, or 0 if none could. The other copies go on in the
        background. None when there is no other node to copy to. `manifest` and `at_hand`
        (its chunks by index): the version to copy, when it is not read from the store."""
        if manifest is None:
            manifest = self.service.store.manifest(name)
        targets = self._successor_addresses()
        if manifest is None or not targets:
            return None

        async def copy(address: str) -> bool:
            # Pushed without an offer first: a successor that has this version already
            # answers "unchanged", and the put's answer waits one round trip less.
            try:
                outcome = await self.push(address, manifest, at_hand)
            except (PeerError, FileError) as err:
                log.info("copy of %r to %s failed: %s", name, address, err)
                return False
            theirs = outcome.manifest
            if (theirs.sha256, theirs.created) != (manifest.sha256, manifest.created):
                return False  # it keeps another version (or a removal): not our copy
            self.service.confirmed.setdefault(name, {self.service.address}).add(address)
            return True

        pending = {asyncio.create_task(copy(address)) for address in targets}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(task.result() for task in done):
                for task in pending:  # kept referenced until they end
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
                return 1
        return 0

    async def close(self) -> None:
        """Stop the copies still under way (repair makes up for them)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def handoff(self) -> int:
        """Before a graceful leave: offer every name held here where it must go
        (`plan_handoff`), all peers at once. The k nodes that follow hold this node's keys
        once it is gone, so no name drops below k copies, even when the first successor
        already had it."""
        versions = self.service.versions()
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
                    await self._reconcile(address, offered[start : start + OFFER_BATCH], report)
            except PeerError as err:
                log.warning("handoff to %s failed: %s", address, err)
                return False
            return True

        took = await asyncio.gather(*(offer_all(a, vs) for a, vs in offers.items()))
        if versions and not any(took):
            log.error("handoff failed: no peer took this node's %d names", len(versions))
        return report.pushed

    # Index and locators.

    async def publish(self, only: set[str] | None = None) -> int:
        """Publish the index records of the files this node owns or shares, the locators
        of what it shares, and withdraw records of names it no longer has. With `only`,
        just those names (just stored or removed here)."""
        ttl = self.republish * 3
        current: dict[str, list[IndexRecord]] = {}
        if only is None:
            manifests = self.service.store.manifests()
        else:
            found = (self.service.store.manifest(name) for name in sorted(only))
            manifests = [m for m in found if m is not None]
        for manifest in manifests:
            if self.owns(file_key(self.space, manifest.name)):
                current[manifest.name] = index_records(manifest)
        locators: list[Locator] = []
        shared = self.service.shared
        if shared is not None and only is None:
            for local in await asyncio.to_thread(shared.scan):
                current.setdefault(local.manifest.name, index_records(local.manifest))
                locators.append(Locator(local.manifest, self.service.address))
        withdrawn: list[IndexRecord] = []
        for name, records in list(self._published.items()):
            if name not in current and (only is None or name in only):
                withdrawn += records
                del self._published[name]
        placement = self._placement(fresh=only is None)
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
        return sent

    async def _by_holder(
        self, placement: Placement, records: list[IndexRecord]
    ) -> dict[str, list[IndexRecord]]:
        """Records grouped by the holders of their keys: one call per holder."""
        grouped: dict[str, list[IndexRecord]] = defaultdict(list)
        for record in records:
            try:
                holders = (await placement.holders_of(index_key(self.space, record.key))).holders
            except Exception as err:  # no owner now: the next round publishes it
                log.debug("index: no owner for %r: %s", record.key, err)
                continue
            for address in holders:
                grouped[address].append(record)
        return grouped

    async def _publish_to(
        self, address: str, records: list[IndexRecord], ttl: float, remove: bool
    ) -> int:
        if address == self.service.address:
            await self.service.publish_index(records, ttl, remove)
            return len(records)
        try:
            await self.peers.publish_index(address, records, ttl, remove)
        except (PeerError, FileError):
            return 0
        return len(records)

    async def _send_locator(
        self, locator: Locator, ttl: float, placement: Placement, skip_self: bool = False
    ) -> None:
        try:
            key = file_key(self.space, locator.manifest.name)
            holders = (await placement.holders_of(key)).holders
        except Exception:
            return
        for address in holders:
            if address == self.service.address:
                if not skip_self:
                    await self.service.publish_locators([locator], ttl)
                continue
            try:
                await self.peers.publish_locators(address, [locator], ttl)
            except (PeerError, FileError):
                continue


async def _given_chunks(
    chunks: Mapping[int, bytes], indexes: set[int]
) -> AsyncIterator[tuple[int, bytes]]:
    for index in sorted(indexes):
        yield index, chunks[index]
