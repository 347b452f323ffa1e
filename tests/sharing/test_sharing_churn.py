"""Files survive churn: random joins, graceful leaves and crashes (fewer than k at once,
repair between) lose no file. The real file-sharing code (FileService, Replicator,
FileClient, NodeStore on disk) on Chord runtimes over the in-memory network.

No timer runs: after every event the test drives the ring to convergence (stabilize,
check predecessor, fix fingers on every live node, in rounds) and then runs repair on
every live node, in rounds, until each file sits on exactly its k holders (the owner of
its key, the first node id >= the key, and the owner's k-1 successors) in its newest
version. Bounded rounds: a ring or a placement that does not settle fails the test.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chordshare.chord.invariants import convergence_problems
from chordshare.chord.messages import NodeRef
from chordshare.files.placement import file_key
from chordshare.ids import IdSpace
from chordshare.node.runtime import ChordNode, Timing
from chordshare.sharing.client import FileClient
from chordshare.sharing.replication import Replicator
from chordshare.sharing.ring import NodeRing, Placements
from chordshare.sharing.routes import RouteCache
from chordshare.sharing.service import FileService
from chordshare.sharing.version_book import VersionBook
from chordshare.storage.store import NodeStore
from chordshare.transport.files_memory import MemoryFilePeers
from chordshare.transport.memory import MemoryNetwork, MemoryTransport

SPACE = IdSpace(32)
K = 3  # replicas
SUCCESSORS = 4  # successor list length: more than the 2 nodes that may crash at once
CHUNK = 1024
# The timer loops are never meant to fire: the test drives every maintenance step itself.
NO_TIMERS = Timing(stabilize=1e6, check_predecessor=1e6, fix_fingers=1e6, join_deadline=1.0)
CONVERGE_ROUNDS = 30
REPAIR_ROUNDS = 6


@dataclass
class Peer:
    node: ChordNode
    store: NodeStore
    service: FileService
    replicator: Replicator

    @property
    def address(self) -> str:
        return self.node.me.address


@dataclass
class Expected:
    """What the network must hold under a name: these bytes, at this version."""

    data: bytes
    version: float

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.data).digest()


class ChurnNet:
    """Sharing peers on one MemoryNetwork, driven by hand."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.network = MemoryNetwork()
        self.services: dict[str, FileService] = {}
        self.live: dict[str, Peer] = {}
        self.dead: list[Peer] = []
        self.files: dict[str, Expected] = {}
        self.counter = 0
        self.downloads = 0
        self.log: list[str] = []  # what happened, for failure messages
        # One route cache for every client: it goes stale as nodes come and go, and the
        # guessed owners must refuse what is not theirs.
        self.routes = RouteCache()

    # Membership.

    def _fresh_address(self) -> str:
        taken = {p.node.me.id for p in self.live.values()}
        while True:
            address = f"mem-{self.counter}:1"
            self.counter += 1
            if SPACE.hash(address) not in taken:
                return address

    async def add(self) -> Peer:
        address = self._fresh_address()
        node = ChordNode(
            NodeRef(SPACE.hash(address), address),
            SPACE,
            MemoryTransport(self.network, address=address),
            successors=SUCCESSORS,
            timing=NO_TIMERS,
        )
        store = NodeStore(self.root / address.replace(":", "_"))
        book = VersionBook(address, store)
        placements = Placements(node.state, NodeRing(node), K)
        peers = MemoryFilePeers(self.network, self.services, origin=address)
        replicator = Replicator(book, store, node.state, placements, peers, K, node.tasks)
        # No holders handed in: a put here is not copied until repair runs, which is
        # what the schedule's steps count on.
        service = FileService(
            address, store, book=book, owns=lambda name: node.state.owns(file_key(SPACE, name))
        )

        async def handoff() -> None:
            await replicator.handoff()

        node.on_leaving(handoff)
        self.network.attach(address, node)
        self.services[address] = service
        if self.live:
            bootstrap = self.rng.choice(sorted(self.live))
            await node.join(bootstrap)
        else:
            await node.create()
        await node.stop_maintenance()  # no timers: the test drives maintenance
        peer = Peer(node, store, service, replicator)
        self.live[address] = peer
        self.log.append(f"join {address} (id {node.me.id})")
        return peer

    async def leave(self, peer: Peer) -> None:
        """Graceful: the leave hands every file to the successor first."""
        await peer.node.leave()
        self._gone(peer)
        self.log.append(f"leave {peer.address}")

    async def crash(self, peers: list[Peer]) -> None:
        """Gone at once, without a word; their disks are lost to the network."""
        for peer in peers:
            self.network.kill(peer.address)
        for peer in peers:
            await peer.node.stop_maintenance()
            self._gone(peer)
        self.log.append(f"crash {[p.address for p in peers]}")

    def _gone(self, peer: Peer) -> None:
        self.network.kill(peer.address)
        self.services.pop(peer.address, None)
        del self.live[peer.address]
        peer.store.close()
        self.dead.append(peer)

    async def close(self) -> None:
        for peer in list(self.live.values()):
            await peer.node.stop_maintenance()
            self._gone(peer)

    # Driving the ring and repair.

    def ring_problems(self) -> list[str]:
        states = {a: p.node.state for a, p in self.live.items()}
        return convergence_problems(states, set(states))

    async def converge(self) -> int:
        """Maintenance rounds on every live node until every pointer is the ideal one."""
        for rounds in range(CONVERGE_ROUNDS):
            if not self.ring_problems():
                return rounds
            peers = list(self.live.values())
            self.rng.shuffle(peers)
            for peer in peers:
                await peer.node.stabilize()
            for peer in peers:
                await peer.node.check_predecessor()
            for peer in peers:
                await peer.node.fix_fingers()
        problems = self.ring_problems()
        assert not problems, (
            f"the ring did not converge in {CONVERGE_ROUNDS} rounds after {self.log[-3:]}: "
            f"{problems[:5]}"
        )
        return CONVERGE_ROUNDS

    def expected_holders(self, name: str) -> list[str]:
        """The owner of the name's key (first id >= key, wrapping) and its K-1 successors."""
        ring = sorted(self.live.values(), key=lambda p: p.node.me.id)
        ids = [p.node.me.id for p in ring]
        first = bisect.bisect_left(ids, file_key(SPACE, name))
        return [ring[(first + j) % len(ring)].address for j in range(min(K, len(ring)))]

    def holders(self, name: str) -> dict[str, float]:
        """Live addresses that store the name, with the version each has."""
        held = {}
        for address, peer in self.live.items():
            manifest = peer.store.manifest(name)
            if manifest is not None:
                held[address] = manifest.created
        return held

    def placement_problems(self) -> list[str]:
        problems = []
        for name, want in sorted(self.files.items()):
            expected = sorted(self.expected_holders(name))
            held = self.holders(name)
            if sorted(held) != expected:
                problems.append(f"{name} is on {sorted(held)}, should be on {expected}")
            for address in held:
                manifest = self.live[address].store.manifest(name)
                assert manifest is not None
                if (manifest.created, manifest.sha256) != (want.version, want.sha256):
                    problems.append(
                        f"{address} holds {name} at version {manifest.created} "
                        f"(sha256 {manifest.sha256.hex()[:12]}), the newest is {want.version} "
                        f"(sha256 {want.sha256.hex()[:12]})"
                    )
            for address, peer in self.live.items():
                if peer.store.catalog.tombstone(name) is not None:
                    problems.append(f"{address} has a tombstone for {name}, never removed")
        return problems

    def lost(self) -> list[str]:
        """Names no live node holds in their newest version."""
        missing = []
        for name, want in sorted(self.files.items()):
            newest = [
                a
                for a, p in self.live.items()
                if (m := p.store.manifest(name)) is not None
                and (m.created, m.sha256) == (want.version, want.sha256)
            ]
            if not newest:
                missing.append(name)
        return missing

    async def repair(self) -> int:
        """Repair rounds on every live node until every file is on exactly its holders."""
        for rounds in range(REPAIR_ROUNDS):
            if not self.placement_problems():
                return rounds
            peers = list(self.live.values())
            self.rng.shuffle(peers)
            for peer in peers:
                await peer.replicator.repair()
        problems = self.placement_problems()
        assert not problems, (
            f"repair did not settle in {REPAIR_ROUNDS} rounds after {self.log[-3:]}: {problems[:5]}"
        )
        return REPAIR_ROUNDS

    async def settle(self) -> None:
        await self.converge()
        lost = self.lost()
        assert not lost, f"files lost after {self.log[-3:]}: {lost}"
        await self.repair()

    # Files, through the real client.

    def client(self, via: Peer | None = None) -> FileClient:
        via = via or self.live[self.rng.choice(sorted(self.live))]
        peers = MemoryFilePeers(self.network, self.services, origin=via.address)
        return FileClient(NodeRing(via.node), peers, K, self.routes)

    async def put(self, name: str, data: bytes, replace: bool = False) -> None:
        source = self.root / "sources" / name
        source.parent.mkdir(exist_ok=True)
        source.write_bytes(data)
        outcome = await self.client().put(source, name, replace=replace, chunk_size=CHUNK)
        assert not outcome.unchanged
        assert outcome.manifest.sha256 == hashlib.sha256(data).digest()
        previous = self.files.get(name)
        assert previous is None or outcome.manifest.created > previous.version
        self.files[name] = Expected(data, outcome.manifest.created)
        self.log.append(f"{'replace' if replace else 'put'} {name}")

    async def check_gets(self) -> None:
        """Every file, fetched through a random live node, has exactly its bytes."""
        out_dir = self.root / "downloads"
        out_dir.mkdir(exist_ok=True)
        for name, want in sorted(self.files.items()):
            self.downloads += 1
            out = out_dir / f"{self.downloads}-{name}"
            report = await self.client().get(name, out)
            assert report.sha256 == want.sha256, f"{name}: fetched another version"
            assert out.read_bytes() == want.data, f"{name}: fetched other bytes"
            out.unlink()


def random_bytes(rng: random.Random, low: int, high: int) -> bytes:
    return rng.randbytes(rng.randint(low, high))


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """Where the nodes keep their stores. In memory (tmpfs) where there is one: every
    store write is fsynced, and on a slow disk that alone would take most of a minute."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="chordshare-churn-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.asynccontextmanager
async def churn_net(root: Path, seed: int) -> AsyncIterator[ChurnNet]:
    net = ChurnNet(root, random.Random(seed))
    try:
        yield net
    finally:
        await net.close()


MIN_LIVE = 4
MAX_LIVE = 12


async def one_event(net: ChurnNet) -> str:
    rng = net.rng
    size = len(net.live)
    kinds = ["join", "leave", "crash", "replace", "put-leave"]
    weights = [
        0.35 if size < MAX_LIVE else 0.0,
        0.25 if size > MIN_LIVE else 0.0,
        0.3 if size > MIN_LIVE else 0.0,
        0.1,
        0.05 if size > MIN_LIVE else 0.0,
    ]
    kind = rng.choices(kinds, weights)[0]
    if kind == "join":
        await net.add()
    elif kind == "leave":
        await net.leave(net.live[rng.choice(sorted(net.live))])
    elif kind == "crash":
        count = 2 if size - 2 >= MIN_LIVE and rng.random() < 0.6 else 1
        ring = sorted(net.live.values(), key=lambda p: p.node.me.id)
        first = rng.randrange(len(ring))
        if count == 2 and rng.random() < 0.5:  # neighbours: an owner and its first replica
            victims = [ring[first], ring[(first + 1) % len(ring)]]
        else:
            victims = rng.sample(ring, count)
        await net.crash(victims)
    elif kind == "replace":
        name = rng.choice(sorted(net.files))
        await net.put(name, random_bytes(rng, 1, 5 * CHUNK), replace=True)
    else:
        # A new file, and its owner leaves before any repair copied it: only the handoff
        # saves it.
        name = f"late-{len(net.files):03d}.bin"
        await net.put(name, random_bytes(rng, 1, 5 * CHUNK))
        owner = net.live[net.expected_holders(name)[0]]
        assert list(net.holders(name)) == [owner.address]
        await net.leave(owner)
    return kind


# One seed in `make test`; the others, about 13 s each, in `make test-system`.
SEEDS = [1, *(pytest.param(seed, marks=pytest.mark.system) for seed in (2, 3))]
INITIAL = 8
FILES = 20
EVENTS = 200


@pytest.mark.parametrize("seed", SEEDS)
async def test_churn_loses_no_file(root: Path, seed: int) -> None:
    started = time.monotonic()
    async with churn_net(root, seed) as net:
        for _ in range(INITIAL):
            await net.add()
        await net.converge()
        for i in range(FILES):
            # Sizes around the chunk size: empty, one partial chunk, several chunks.
            data = b"" if i == 0 else random_bytes(net.rng, 1, 6 * CHUNK)
            await net.put(f"file-{i:02d}.bin", data)
        await net.repair()
        await net.check_gets()

        kinds: dict[str, int] = {}
        for step in range(1, EVENTS + 1):
            kind = await one_event(net)
            kinds[kind] = kinds.get(kind, 0) + 1
            await net.settle()
            if step % 20 == 0:
                await net.check_gets()
        await net.check_gets()
        assert not net.placement_problems()
        # The schedule did churn: every kind of event happened, many times over.
        assert kinds.get("join", 0) >= 20, kinds
        assert kinds.get("leave", 0) >= 20, kinds
        assert kinds.get("crash", 0) >= 20, kinds
        assert kinds.get("put-leave", 0) >= 3, kinds
        assert len(net.dead) >= 40
    print(f"seed {seed}: {kinds}, {time.monotonic() - started:.1f} s")


async def test_owner_and_first_replica_crash_together(root: Path) -> None:
    async with churn_net(root, 7) as net:
        for _ in range(6):
            await net.add()
        await net.converge()
        name = "report.pdf"
        data = random_bytes(net.rng, 3 * CHUNK + 1, 3 * CHUNK + 1)
        await net.put(name, data)
        await net.repair()
        holders = net.expected_holders(name)
        assert sorted(net.holders(name)) == sorted(holders)

        owner, first_replica, last_replica = (net.live[a] for a in holders)
        await net.crash([owner, first_replica])
        await net.converge()
        # Before any repair: the one copy left is found and fetched, whole.
        assert list(net.holders(name)) == [last_replica.address]
        await net.check_gets()

        assert await net.repair() >= 1
        assert len(net.holders(name)) == K
        assert sorted(net.holders(name)) == sorted(net.expected_holders(name))
        await net.check_gets()


async def test_graceful_leave_hands_over_a_file_not_yet_replicated(root: Path) -> None:
    async with churn_net(root, 11) as net:
        for _ in range(5):
            await net.add()
        await net.converge()
        name = "fresh.txt"
        await net.put(name, random_bytes(net.rng, 2 * CHUNK, 4 * CHUNK))
        owner_address = net.expected_holders(name)[0]
        assert list(net.holders(name)) == [owner_address]  # nothing copied it yet

        await net.leave(net.live[owner_address])
        await net.converge()
        assert net.lost() == []
        await net.check_gets()
        await net.repair()
        assert sorted(net.holders(name)) == sorted(net.expected_holders(name))
        await net.check_gets()
