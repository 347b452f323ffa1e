"""Files on the simulated ring: the sharing core's decisions on thousands of nodes.

Every node of a `Simulator` gets a book of the versions it holds (live or removed). Puts,
replaces and removals go to the owner a lookup names, as a client's would; repair rounds
run the same decisions as the node runtime (`files.repair`, `files.versions`),
with offers and copies delivered in memory. A version stands for its bytes: a node lists a
version only once all its chunks are stored, so a version held is every chunk of it held.

Safety is checked at every store, drop and crash:
- an acknowledged version (or a newer one) is always held by a live node: nothing
  acknowledged is lost while a copy exists;
- no node goes back from a version to an older one: a removed or replaced version never
  comes back where the newer one was.
Convergence is checked once repair has run (`problems`): every acknowledged file on exactly
its k ideal holders in its acknowledged version, removed names held live nowhere, and no
holder list naming a node that is gone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from chordshare.chord.lookup import LookupFailed
from chordshare.files.messages import FileError, FileVersion, OfferAnswer
from chordshare.files.names import conflict_name
from chordshare.files.placement import file_key
from chordshare.files.repair import (
    KeyHolders,
    RangeMap,
    confirmed_holders,
    drops,
    key_holders,
    plan_handoff,
    plan_repair,
    stand_ins,
)
from chordshare.files.versions import (
    Held,
    ancestry_after,
    answer_offer,
    judge_answer,
    judge_put,
    keep_aside,
    merged_removal,
    newest,
    put_parent,
    removal_ancestry,
    removal_applies,
    removal_version,
    removes,
    supersedes,
)
from chordshare.sim import file_checks
from chordshare.sim.simulator import Simulator


@dataclass
class FileBook:
    """What one simulated node holds: the newest version of each name, and who it last
    found holding them (what FindFile names as holders)."""

    held: dict[str, FileVersion] = field(default_factory=dict)
    confirmed: dict[str, set[str]] = field(default_factory=dict)
    # Removals newer than a live version written apart from them, kept beside it (as the
    # catalog keeps a tombstone newer than the file).
    removals: dict[str, FileVersion] = field(default_factory=dict)
    # Names offered to it since its full repair round before last (`offered_lately`).
    offered: list[set[str]] = field(default_factory=lambda: [set(), set()])


def _at_least(version: FileVersion, floor: FileVersion) -> bool:
    return not supersedes(floor, version)


class FileWorld:
    """The files of every node of `sim`, k copies each."""

    def __init__(self, sim: Simulator, replicas: int = 3) -> None:
        self.sim = sim
        self.k = replicas
        self.books: dict[str, FileBook] = {}
        self.acked: dict[str, FileVersion] = {}  # the newest acknowledged version of each name
        self.where: dict[str, set[str]] = defaultdict(set)  # name -> live nodes holding it
        self.violations: list[str] = []
        self.clock = 0.0
        self.stores = 0
        self.dropped = 0
        # Copies of a version older than the acknowledged one, stored where it was never
        # held: two nodes may both believe they own a key while the ring changes, and the
        # one with the old copy offers it to its successors until repair converges.
        self.stale_stores = 0
        self.touched: set[str] = set()  # nodes whose store changed since the runner looked
        self.full: set[str] = set()  # nodes whose disk is full: they take no new copy
        self.acknowledged: list[FileVersion] = []  # every live version a client was told of
        self.set_aside = 0  # versions kept under a conflict name
        self._no_room: set[tuple[str, str]] = set()  # (node, name) refused for room this round

    # A node's store.

    def book(self, address: str) -> FileBook:
        return self.books.setdefault(address, FileBook())

    def held(self, address: str, name: str) -> Held:
        book = self.book(address)
        version = book.held.get(name)
        removal = version if version is not None and version.deleted else book.removals.get(name)
        live = version if version is not None and not version.deleted else None
        if removal is None:
            return Held(name, live)
        return Held(name, live, tombstone=removal.version, tombstone_ancestry=removal.ancestry)

    def _store(self, address: str, version: FileVersion) -> None:
        book = self.book(address)
        previous = book.held.get(version.name)
        # A live version that a newer removal does not remove (written apart from it) is
        # no step back: the removal is kept beside it.
        apart = previous is not None and previous.deleted and not removes(previous, version)
        if previous is not None and supersedes(previous, version) and not apart:
            self.violations.append(
                f"{address} went back from {version.name!r} version {previous.version} "
                f"to {version.version}"
            )
        floor = self.acked.get(version.name)
        if floor is not None and not _at_least(version, floor):
            self.stale_stores += 1
        if previous is not None and previous.deleted and not version.deleted:
            if previous.version > version.version:  # written apart: the removal stays too
                book.removals[version.name] = previous
        elif version.deleted:
            book.removals.pop(version.name, None)
        book.held[version.name] = version
        self.where[version.name].add(address)
        self.stores += 1
        self.touched.add(address)

    def _drop(self, address: str, name: str) -> None:
        self.book(address).held.pop(name, None)
        self.book(address).confirmed.pop(name, None)
        self.where[name].discard(address)
        self.dropped += 1
        self.touched.add(address)
        self._check_kept(name)

    def _check_kept(self, name: str) -> None:
        floor = self.acked.get(name)
        if floor is None:
            return
        books = self.books
        held = [books[a].held[name] for a in self.where[name]]
        held += [r for a in self.where[name] if (r := books[a].removals.get(name)) is not None]
        if not any(_at_least(version, floor) for version in held):
            self.violations.append(f"{name!r} version {floor.version} is held by no live node")

    # What a node answers.

    def answer_offer(self, address: str, versions: list[FileVersion]) -> OfferAnswer:
        self.book(address).offered[-1].update(v.name for v in versions if v.version > 0)
        outcome = answer_offer(versions, lambda name: self.held(address, name).newest())
        answer, removals = outcome.answer, outcome.removals
        for removal in removals:
            self.apply_removal(address, removal)
        return answer

    def apply_removal(self, address: str, removal: FileVersion) -> None:
        held = self.held(address, removal.name)
        if removal_applies(held, removal):
            before = held.removal()
            self._store(address, removal if before is None else merged_removal(before, removal))

    def take_copy(self, address: str, version: FileVersion) -> bool:
        """A replica put; True when the node now holds this version or a newer one."""
        if address in self.full:
            return False  # refused: out of room (the copy may be its owner's only one)
        held = self.held(address, version.name)
        stored = judge_put(version, held, replica=True, replace=False, now=0.0)
        if stored is not None:
            if held.live is not None and keep_aside(held.live, version):
                self.keep_aside(address, held.live)
            self._store(address, version)
        mine = self.held(address, version.name).newest()
        return mine is not None and _at_least(mine, version)

    def keep_aside(self, address: str, version: FileVersion) -> None:
        """A version written apart from the one taking its name, kept under its conflict
        name at `address`, as a node's version book does."""
        name = conflict_name(version.name, version.version, version.sha256)
        if name not in self.book(address).held:
            self._store(address, FileVersion(name, version.version, version.sha256, ancestry=()))
            self.set_aside += 1

    # A client's requests, sent to the owner a lookup names.

    def _owner(self, name: str) -> str | None:
        origin = self.sim.members.choice(self.sim.rng)
        try:
            owner = self.sim.lookup(origin, file_key(self.sim.space, name)).owner
        except LookupFailed:
            return None
        if owner.address not in self.sim.live:
            return None
        # The node a lookup names takes a client's request only for a key it owns by its
        # own view: a lookup answered from old pointers may name a node that does not.
        owns = self.sim.state(owner.address).owns(file_key(self.sim.space, name))
        return owner.address if owns else None

    def _successors(self, address: str, count: int) -> tuple[str, ...]:
        state = self.sim.state(address)
        return key_holders(address, [n.address for n in state.successors], count + 1).holders[1:]

    def _elsewhere(self, owner: str, name: str) -> FileVersion | None:
        """The newest version the owner's successors hold, asked when it holds nothing of
        the name (it may be new to the key)."""
        if self.held(owner, name).newest() is not None:
            return None
        found = [
            v
            for a in self._successors(owner, self.k - 1)
            if a in self.sim.live and (v := self.book(a).held.get(name)) is not None
        ]
        return newest(found)

    def put(self, name: str, sha256: bytes, replace: bool = False) -> bool:
        """A client's put; True once acknowledged (the owner and one successor hold it)."""
        owner = self._owner(name)
        if owner is None or owner in self.full:
            return False
        self.clock += 1.0
        offered = FileVersion(name, self.clock, sha256)
        held, elsewhere = self.held(owner, name), self._elsewhere(owner, name)
        try:
            version = judge_put(
                offered, held, replica=False, replace=replace, now=self.clock, elsewhere=elsewhere
            )
        except FileError:
            return False
        if version is None:
            return False
        stored = FileVersion(
            name, version, sha256, ancestry=ancestry_after(put_parent(held, elsewhere))
        )
        self._store(owner, stored)
        return self._copy_and_acknowledge(owner, stored)

    def remove(self, name: str) -> bool:
        owner = self._owner(name)
        if owner is None:
            return False
        self.clock += 1.0
        held = self.held(owner, name)
        version = removal_version(held, self.clock)
        removal = FileVersion(name, version, b"", True, ancestry=removal_ancestry(held.parent()))
        if (before := held.removal()) is not None:
            removal = merged_removal(before, removal)
        self._store(owner, removal)
        return self._copy_and_acknowledge(owner, removal)

    def _copy_and_acknowledge(self, owner: str, version: FileVersion) -> bool:
        """Copy to the owner's k-1 successors; acknowledged once one holds it (or the owner
        is alone)."""
        targets = [a for a in self._successors(owner, self.k - 1) if a in self.sim.live]
        took = []
        for address in targets:
            if version.deleted:
                self.answer_offer(address, [version])
                mine = self.held(address, version.name).newest()
                ok = mine is not None and _at_least(mine, version)
            else:
                ok = self.take_copy(address, version)
            if ok:
                took.append(address)
        if targets and not took:
            return False
        self.book(owner).confirmed[version.name] = {owner, *took}
        if not version.deleted:
            self.acknowledged.append(version)
        floor = self.acked.get(version.name)
        if floor is None or supersedes(version, floor):
            self.acked[version.name] = version
        return True

    # Membership.

    def handoff(self, address: str) -> None:
        """A graceful leave: offer everything to the k nodes that follow."""
        versions = sorted(self.book(address).held.values(), key=lambda v: v.name)
        ranges = RangeMap()
        where = {v.name: self._holders_of(address, v.name, ranges) for v in versions}
        offers = plan_handoff(address, versions, where, self._successors(address, self.k))
        for target, offered in sorted(offers.items()):
            if target in self.sim.live and target != address:
                self._reconcile(address, target, offered)

    def crashed(self, address: str) -> FileBook:
        """Take a node that is gone off the books, check that what it held is still held,
        and return its book (a node that comes back may bring it)."""
        book = self.books.pop(address, FileBook())
        for name in book.held:
            self.where[name].discard(address)
        for name in book.held:
            self._check_kept(name)
        return book

    def came_back(self, address: str, book: FileBook) -> None:
        """A node joins with the copies it held before it went away: old versions, and
        names removed or replaced meanwhile. It forgot who held what."""
        self.books[address] = FileBook(dict(book.held))
        for name in book.held:
            self.where[name].add(address)
        self.touched.add(address)

    # Repair.

    def repair(self, address: str) -> bool:
        """One full round of repair at `address`; whether any node's store changed."""
        before = (self.stores, self.dropped)
        book = self.book(address)
        versions = sorted(book.held.values(), key=lambda v: v.name)
        ranges = RangeMap()
        where: dict[str, KeyHolders | None] = {}
        for version in versions:
            where[version.name] = self._holders_of(address, version.name, ranges)
        plan = plan_repair(address, versions, where)
        confirmed: set[tuple[str, str]] = set()
        self._no_room = set()
        for target, offered in sorted(plan.offers.items()):
            if target in self.sim.live:
                held = self._reconcile(address, target, offered)
                confirmed |= {(target, name) for name in held}
        confirmed |= self._stand_in(address, versions, where)
        live = [v.name for v in versions if not v.deleted]
        book.confirmed = confirmed_holders(address, live, confirmed)
        kept = book.offered[0] | book.offered[1]  # as `VersionBook.offered_lately`
        book.offered = [book.offered[1], set()]
        for name in drops(plan, confirmed, kept):
            self._drop(address, name)
        return (self.stores, self.dropped) != before

    def _stand_in(
        self, address: str, versions: list[FileVersion], where: dict[str, KeyHolders | None]
    ) -> set[tuple[str, str]]:
        """The owner's copies to the next nodes with room (as `sharing.stand_in`)."""
        full: dict[str, set[str]] = {}
        for target, name in self._no_room:
            full.setdefault(name, set()).add(target)
        confirmed: set[tuple[str, str]] = set()
        successors = [n.address for n in self.sim.state(address).successors]
        for version in versions:
            holders = where.get(version.name)
            if holders is None or version.name not in full:
                continue
            room = [a for a in successors if a in self.sim.live and a not in self.full]
            for target in stand_ins(holders, successors, full[version.name], room.__contains__):
                held = self._reconcile(address, target, [version])
                confirmed |= {(target, name) for name in held}
        return confirmed

    def _holders_of(self, address: str, name: str, ranges: RangeMap) -> KeyHolders | None:
        state = self.sim.state(address)
        key = file_key(self.sim.space, name)
        if state.owns(key):
            return key_holders(address, [n.address for n in state.successors], self.k)
        known = ranges.known(key)
        if known is not None:
            return known
        try:
            owner = self.sim.lookup(address, key).owner
        except LookupFailed:
            return None
        if owner.address not in self.sim.live:
            return None
        around = self.sim.state(owner.address)
        holders = key_holders(owner.address, [n.address for n in around.successors], self.k)
        pred = around.predecessor
        ranges.learn(pred.id if pred is not None else None, owner.id, holders)
        return holders

    def _reconcile(self, address: str, target: str, offered: list[FileVersion]) -> set[str]:
        answer = judge_answer(offered, self.answer_offer(target, offered))
        for mine, _ in answer.aside:
            self.keep_aside(address, mine)
        for removal in answer.removals:
            self.apply_removal(address, removal)
        held = set(answer.held)
        for name in answer.push:
            version = self.book(address).held.get(name)
            if version is None or version.deleted:
                continue
            if self.take_copy(target, version):
                held.add(name)
            elif target in self.full:
                self._no_room.add((target, name))
        return held

    # What converged means (`sim.file_checks`).

    def problems(self) -> list[str]:
        """Convergence problems: run once repair has settled on a converged ring."""
        return file_checks.problems(self)
