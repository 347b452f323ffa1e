"""Churn soak: files put and got while nodes join, leave and crash, for minutes on end.

Starts N `chordshare node` processes on loopback (default 64; each its own data directory,
`--api off`, `--replicas 3`; maintenance timings are the defaults, since the node command
has no flags for them), waits until the ring is ideal, then for `--minutes` makes one
membership change every `--change-every` seconds: a node joins (through a random live
node), leaves gracefully (SIGTERM: it hands its files to its successor) or crashes
(kill -9). The live count stays within two of N.

The crash rule, so the soak is fair to k = 3 replicas: a crash happens only if fewer than
k - 1 = 2 crashes happened in the last repair period (`SharingSettings.repair_period`,
10 s, the longest a node waits before repairing even when its neighbours seem unchanged);
otherwise that change becomes a graceful leave. So no three crashes ever fall within one
repair period, anywhere on the ring (stricter than "no three consecutive holders").

Meanwhile `--workers` client loops in this process, with FileClient/NodeClient from the
package each time through a random live node:
- put a new file of 4-64 KiB of random bytes (a put that raised is not acknowledged; one
  that returned is, and must never be lost);
- get an acknowledged file (half the time one of the 50 newest) and compare its SHA-256
  with what was put (a mismatch is "corrupt"); a failed get is tried once more through
  another node, to tell passing failures from lasting ones (it still counts as failed);
- look a random key up through the `Lookup` RPC. A lookup that raises is "failed". Its
  owner is judged against the sorted live ids only when a poll of every live node's
  successor list and predecessor found the ring ideal since the last change, and no change
  happened while the lookup ran; a wrong answer then is "wrong_owner".

When churn stops: the seconds until every live node's successor list and predecessor are
the ideal ones, then `--settle` seconds (two repair periods and a bit) for repair, then
every acknowledged file is got (up to 3 tries through different nodes) and its copies at
its k ideal holders counted. A file none of the tries returns is lost; for lost files and
failed gets the report says where copies were and what the node logs say of the name.

Names are one word each (`c000123ab12cd34`), so that the index has no hot word key.

Prints one JSON document on stdout; progress goes to stderr. Every process started here
dies with this one (PR_SET_PDEATHSIG) and is killed at the end, also on errors and Ctrl-C.

    .venv/bin/python bench/churn_soak.py [--nodes 64] [--minutes 10] [--change-every 3]
        [--workers 3] [--seed 1] [--settle 25] [--workdir DIR (kept, with node logs)]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# Nodes join while this process's gRPC threads are busy; node_procs starts them with fork()
# (for PR_SET_PDEATHSIG), and gRPC's fork handlers then crashed the child now and then
# (SIGSEGV, "Check failed: next_worker->state == KICKED") before it could exec. The child
# execs at once and needs none of them. Must be set before grpc is imported.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

import node_procs  # bench/ is the script's directory, so on sys.path)

from chordshare.chord.invariants import IdealRouting
from chordshare.chord.messages import GetNeighbors, Neighbors, NodeRef
from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.files.placement import file_key
from chordshare.ids import IdSpace
from chordshare.node.runtime import Timing
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingSettings
from chordshare.sharing.ring import RemoteRing
from chordshare.transport.client import NodeClient
from chordshare.transport.files_grpc import GrpcFilePeers
from chordshare.transport.grpc import GrpcTransport

REPLICAS = 3
REPAIR_PERIOD = SharingSettings(data_dir=Path()).repair_period
START_DEADLINE = 120.0
JOIN_DEADLINE = 60.0
LEAVE_DEADLINE = 60.0  # a leaving node still running then is killed (counted)
CONVERGE_DEADLINE = 300.0
OP_DEADLINE = 30.0  # a put, get or lookup not done by then fails
CLIENT_DEADLINE = 5.0  # NodeClient's per-call deadline (Lookup gets twice that)
MIN_SIZE, MAX_SIZE = 4 * 1024, 64 * 1024
FINAL_TRIES = 3
SAMPLES_KEPT = 20
LOST_DETAILED = 5
STORED = re.compile(r"^(\S+ \S+) INFO .*: stored (\S+) \(")
PAPER = {
    "source": "Chord (Stoica et al.), lookups during stabilization",
    "failed_lookups_per_10000": 15,
    "membership_changes_per_repair_period": 12,
}


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def short_error(err: BaseException) -> str:
    text = str(err).split("\n")[0]
    return f"{type(err).__name__}: {text[:160]}"


@dataclass
class Node:
    index: int
    popen: subprocess.Popen[bytes]
    log_path: Path
    ref: NodeRef | None = None
    state: str = "starting"  # live, leaving, left, crashed, failed
    ended_at: float | None = None  # wall-clock time of its SIGTERM or kill -9

    def signal(self, sig: signal.Signals) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)


@dataclass
class Acked:
    name: str
    sha256: str
    size: int
    at: float  # seconds since churn began
    via: str  # the node the client asked
    ideal_owner: str  # the owner by the benchmark's live set when the put returned


@dataclass
class Stats:
    changes: Counter[str] = field(default_factory=Counter)
    crashes_turned_into_leaves: int = 0
    join_failures: int = 0
    leave_seconds: list[float] = field(default_factory=list)
    leave_timeouts: int = 0
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (t, kind, address)
    lookups: Counter[str] = field(default_factory=Counter)
    lookup_errors: Counter[str] = field(default_factory=Counter)
    wrong_owner_samples: list[dict[str, Any]] = field(default_factory=list)
    puts: Counter[str] = field(default_factory=Counter)
    put_errors: Counter[str] = field(default_factory=Counter)
    gets: Counter[str] = field(default_factory=Counter)
    get_errors: Counter[str] = field(default_factory=Counter)
    get_failure_samples: list[dict[str, Any]] = field(default_factory=list)
    converge_after_change: list[float] = field(default_factory=list)


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.rng = random.Random(args.seed)
        self.space = IdSpace()
        self.nodes: list[Node] = []
        self.stats = Stats()
        self.acked: dict[str, Acked] = {}
        self.newest: deque[str] = deque(maxlen=50)
        self.crash_times: deque[float] = deque()
        self.epoch = 0  # bumped at every change of the live set
        self.epoch_changed_at = time.monotonic()
        self.converged_epoch = -1  # the last epoch a poll found the ring ideal in
        self.began = time.monotonic()
        self.transport = GrpcTransport(self.space)  # lookups and ring walks
        self.monitor_transport = GrpcTransport(self.space)
        self.peers = GrpcFilePeers()
        self.clients: dict[str, NodeClient] = {}
        self.background: set[asyncio.Task[None]] = set()
        self.membership: set[asyncio.Task[None]] = set()  # joins and leaves under way
        self.last_change_at = time.monotonic()
        self.counter = 0

    # Processes.

    def spawn(self, join: str | None) -> Node:
        index = len(self.nodes)
        args = ["--bind", "127.0.0.1:0", "--api", "off", "--replicas", str(REPLICAS)]
        args += ["--log-level", self.args.node_log_level]
        args += ["--data-dir", str(self.workdir / f"data-{index}")]
        if join:
            args += ["--join", join]
        log_path = self.workdir / f"node-{index}.log"
        node = Node(index, node_procs.spawn(log_path, args), log_path)
        self.nodes.append(node)
        return node

    async def wait_ready(self, node: Node, deadline: float) -> bool:
        give_up = time.monotonic() + deadline
        while True:
            try:
                found = node_procs.ready(node.popen, node.log_path)
            except RuntimeError as err:
                log(
                    f"node {node.index} did not start (exit {node.popen.returncode}): "
                    f"{str(err)[-300:]}"
                )
                node.state = "failed"
                return False
            if found is not None:
                node.ref = found
                node.state = "live"
                self.bump()
                return True
            if time.monotonic() > give_up:
                log(f"node {node.index} not ready after {deadline:.0f} s: killed")
                node.signal(signal.SIGKILL)
                node.state = "failed"
                return False
            await asyncio.sleep(0.05)

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.state == "live"]

    def live_refs(self) -> list[NodeRef]:
        return [n.ref for n in self.live() if n.ref is not None]

    def joining(self) -> bool:
        return any(n.state == "starting" for n in self.nodes)

    def state_of(self, address: str) -> str:
        for node in reversed(self.nodes):
            if node.ref is not None and node.ref.address == address:
                return node.state
        return "unknown"

    def bump(self) -> None:
        self.epoch += 1
        self.epoch_changed_at = time.monotonic()

    def client(self, address: str) -> NodeClient:
        found = self.clients.get(address)
        if found is None:
            found = self.clients[address] = NodeClient(address, self.transport, CLIENT_DEADLINE)
        return found

    def now(self) -> float:
        return round(time.monotonic() - self.began, 3)

    async def close(self) -> None:
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        for node in self.nodes:
            node.signal(signal.SIGKILL)
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.popen.wait(10)
        await self.transport.close()
        await self.monitor_transport.close()
        await self.peers.close()

    # The ring.

    async def converged(self) -> bool:
        """Every live node's successor list and predecessor are the ideal ones."""
        refs = self.live_refs()
        if not refs:
            return False
        ideal = IdealRouting.of(refs, self.space)
        replies = await asyncio.gather(
            *(self.monitor_transport.call(GetNeighbors(ref)) for ref in refs),
            return_exceptions=True,
        )
        for ref, reply in zip(refs, replies, strict=True):
            if not isinstance(reply, Neighbors):
                return False
            if list(reply.successors) != ideal.successors(ref, DEFAULT_SUCCESSORS):
                return False
            if reply.predecessor != ideal.predecessor(ref):
                return False
        return True

    async def converge(self, deadline: float) -> float | None:
        started = time.monotonic()
        while time.monotonic() - started < deadline:
            if await self.converged():
                return time.monotonic() - started
            await asyncio.sleep(0.25)
        return None

    async def monitor(self) -> None:
        """Polls the ring after every change until it is ideal, so that lookups made while
        it is can be judged, and times how long each change took to heal."""
        while True:
            epoch = self.epoch
            if self.converged_epoch != epoch:
                ok = await self.converged()
                if ok and self.epoch == epoch:
                    self.converged_epoch = epoch
                    self.stats.converge_after_change.append(
                        time.monotonic() - self.epoch_changed_at
                    )
            await asyncio.sleep(0.25)

    # Churn.

    def crash_allowed(self) -> bool:
        now = time.monotonic()
        while self.crash_times and now - self.crash_times[0] > REPAIR_PERIOD:
            self.crash_times.popleft()
        return len(self.crash_times) < REPLICAS - 1

    def keep(self, coro: Any, membership: bool = False) -> None:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        if membership:
            self.membership.add(task)
            task.add_done_callback(self.membership.discard)

    async def change(self) -> None:
        self.last_change_at = time.monotonic()
        live = self.live()
        starting = sum(1 for n in self.nodes if n.state == "starting")
        count = len(live) + starting
        target = self.args.nodes
        if count <= target - 2 or len(live) < 4:
            kind = "join"
        elif count >= target + 2:
            kind = "depart"
        else:
            kind = self.rng.choice(["join", "depart"])
        if kind == "join":
            via = self.rng.choice(live)
            assert via.ref is not None
            node = self.spawn(via.ref.address)
            self.bump()  # it may be linked in before it says it is serving
            self.stats.changes["joins"] += 1
            self.stats.events.append((self.now(), "join", f"node-{node.index}"))
            self.keep(self._joined(node), membership=True)
            return
        victim = self.rng.choice(live)
        assert victim.ref is not None
        crash = self.rng.random() < self.args.crash_share
        if crash and not self.crash_allowed():
            crash = False
            self.stats.crashes_turned_into_leaves += 1
        if crash:
            victim.signal(signal.SIGKILL)
            victim.state = "crashed"
            victim.ended_at = time.time()
            self.crash_times.append(time.monotonic())
            self.stats.changes["crashes"] += 1
            self.stats.events.append((self.now(), "crash", victim.ref.address))
        else:
            victim.signal(signal.SIGTERM)
            victim.state = "leaving"
            victim.ended_at = time.time()
            self.stats.changes["leaves"] += 1
            self.stats.events.append((self.now(), "leave", victim.ref.address))
            self.keep(self._left(victim), membership=True)
        self.bump()

    async def _joined(self, node: Node) -> None:
        if not await self.wait_ready(node, JOIN_DEADLINE):
            self.stats.join_failures += 1
        elif node.ref is not None:
            self.stats.events.append((self.now(), "joined", node.ref.address))

    async def _left(self, node: Node) -> None:
        started = time.monotonic()
        while node.popen.poll() is None:
            if time.monotonic() - started > LEAVE_DEADLINE:
                log(f"node {node.index} still leaving after {LEAVE_DEADLINE:.0f} s: killed")
                node.signal(signal.SIGKILL)
                self.stats.leave_timeouts += 1
                break
            await asyncio.sleep(0.1)
        self.stats.leave_seconds.append(time.monotonic() - started)
        node.state = "left"

    async def churn(self, until: float) -> None:
        next_at = time.monotonic() + self.args.change_every
        while next_at < until:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await self.change()
            next_at += self.args.change_every

    # The client.

    def pick(self, avoid: str | None = None) -> str:
        live = [n for n in self.live() if n.ref is not None and n.ref.address != avoid]
        node = self.rng.choice(live or self.live())
        assert node.ref is not None
        return node.ref.address

    def files(self, address: str) -> FileClient:
        return FileClient(RemoteRing(self.client(address)), self.peers, REPLICAS)

    async def put_one(self, scratch: Path) -> None:
        self.counter += 1
        name = f"c{self.counter:06d}{self.rng.getrandbits(32):08x}"
        data = self.rng.randbytes(self.rng.randint(MIN_SIZE, MAX_SIZE))
        path = scratch / name
        await asyncio.to_thread(path.write_bytes, data)
        address = self.pick()
        self.stats.puts["done"] += 1
        try:
            async with asyncio.timeout(OP_DEADLINE):
                await self.files(address).put(path, name)
        except Exception as err:
            self.stats.puts["failed"] += 1
            self.stats.put_errors[short_error(err)] += 1
            return
        finally:
            path.unlink(missing_ok=True)
        refs = self.live_refs()
        owner = IdealRouting.of(refs, self.space).owner(file_key(self.space, name))
        self.acked[name] = Acked(
            name, hashlib.sha256(data).hexdigest(), len(data), self.now(), address, owner.address
        )
        self.newest.append(name)

    async def fetch(self, name: str, address: str, scratch: Path) -> str | None:
        """The SHA-256 of the file as got through the node at address; raises if it fails."""
        out = scratch / f"get-{name}-{self.rng.getrandbits(32):08x}"
        try:
            async with asyncio.timeout(OP_DEADLINE):
                await self.files(address).get(name, out)
            data = await asyncio.to_thread(out.read_bytes)
            return hashlib.sha256(data).hexdigest()
        finally:
            out.unlink(missing_ok=True)
            out.with_name(out.name + ".part").unlink(missing_ok=True)

    async def get_one(self, scratch: Path) -> None:
        if self.newest and self.rng.random() < 0.5:
            name = self.rng.choice(list(self.newest))
        else:
            name = self.rng.choice(list(self.acked))
        record = self.acked[name]
        address = self.pick()
        self.stats.gets["done"] += 1
        try:
            digest = await self.fetch(name, address, scratch)
        except Exception as err:
            self.stats.gets["failed"] += 1
            self.stats.get_errors[short_error(err)] += 1
            sample: dict[str, Any] = {
                "at_s": self.now(),
                "name": name,
                "put_at_s": record.at,
                "via": address,
                "error": short_error(err),
            }
            await asyncio.sleep(1.0)
            try:
                retry = await self.fetch(name, self.pick(avoid=address), scratch)
                sample["retry_1s_later"] = "ok" if retry == record.sha256 else "corrupt"
                if retry == record.sha256:
                    self.stats.gets["failed_recovered_on_retry"] += 1
            except Exception as again:
                sample["retry_1s_later"] = short_error(again)
            if len(self.stats.get_failure_samples) < SAMPLES_KEPT:
                self.stats.get_failure_samples.append(sample)
            return
        if digest != record.sha256:
            self.stats.gets["corrupt"] += 1

    async def lookup_one(self) -> None:
        key = self.rng.randrange(self.space.size)
        address = self.pick()
        epoch = self.epoch
        judged = self.converged_epoch == epoch and not self.joining()
        self.stats.lookups["done"] += 1
        try:
            async with asyncio.timeout(OP_DEADLINE):
                answer = await self.client(address).lookup(key)
        except Exception as err:
            self.stats.lookups["failed"] += 1
            self.stats.lookup_errors[short_error(err)] += 1
            return
        true_owner = IdealRouting.of(self.live_refs(), self.space).owner(key)
        if not (judged and self.epoch == epoch and not self.joining()):
            self.stats.lookups["not_judged"] += 1
            if answer.owner != true_owner:
                self.stats.lookups["differs_while_not_converged"] += 1
            return
        self.stats.lookups["judged"] += 1
        if answer.owner != true_owner:
            self.stats.lookups["wrong_owner"] += 1
            if len(self.stats.wrong_owner_samples) < SAMPLES_KEPT:
                self.stats.wrong_owner_samples.append(
                    {
                        "at_s": self.now(),
                        "key": key,
                        "via": address,
                        "answered": answer.owner.address,
                        "answered_state": self.state_of(answer.owner.address),
                        "true_owner": true_owner.address,
                    }
                )

    async def worker(self, until: float, scratch: Path) -> None:
        while time.monotonic() < until:
            roll = self.rng.random()
            if not self.acked or roll < self.args.put_share:
                await self.put_one(scratch)
            elif roll < self.args.put_share + self.args.get_share:
                await self.get_one(scratch)
            else:
                await self.lookup_one()

    # The end.

    async def final_check(self, scratch: Path) -> dict[str, Any]:
        """Every acknowledged file, got through random live nodes (up to FINAL_TRIES), and
        its copies at its k ideal holders counted."""
        started = time.monotonic()
        refs = self.live_refs()
        ideal = IdealRouting.of(refs, self.space)
        gate = asyncio.Semaphore(8)
        lost: list[str] = []
        corrupt: list[str] = []
        copies: Counter[int] = Counter()
        errors: dict[str, list[str]] = {}
        tries_needed: Counter[int] = Counter()

        async def check(record: Acked) -> None:
            async with gate:
                owner = ideal.owner(file_key(self.space, record.name))
                holders = [owner, *ideal.successors(owner, REPLICAS - 1)]
                found = await asyncio.gather(
                    *(self.peers.at(h.address).find_file(record.name) for h in holders),
                    return_exceptions=True,
                )
                copies[
                    sum(
                        1
                        for f in found
                        if not isinstance(f, BaseException)
                        and f is not None
                        and f.manifest.sha256.hex() == record.sha256
                    )
                ] += 1
                avoid = None
                for attempt in range(1, FINAL_TRIES + 1):
                    address = self.pick(avoid=avoid)
                    avoid = address
                    try:
                        digest = await self.fetch(record.name, address, scratch)
                    except Exception as err:
                        errors.setdefault(record.name, []).append(short_error(err))
                        continue
                    if digest != record.sha256:
                        corrupt.append(record.name)
                    tries_needed[attempt] += 1
                    return
                lost.append(record.name)

        await asyncio.gather(*(check(r) for r in list(self.acked.values())))
        return {
            "acknowledged_files": len(self.acked),
            "retrieved": sum(tries_needed.values()),
            "retrieved_at_try": {str(k): v for k, v in sorted(tries_needed.items())},
            "lost": len(lost),
            "corrupt": len(corrupt),
            "copies_at_ideal_holders": {str(k): v for k, v in sorted(copies.items())},
            "seconds": round(time.monotonic() - started, 2),
            "_lost": lost,
            "_errors": errors,
        }

    def stores(self, names: set[str]) -> dict[str, list[tuple[Node, float]]]:
        """For each name, the nodes whose log says they stored it, and when (wall clock)."""
        found: dict[str, list[tuple[Node, float]]] = {n: [] for n in names}
        for node in self.nodes:
            with contextlib.suppress(OSError):
                for line in node.log_path.read_text(errors="replace").splitlines():
                    match = STORED.match(line)
                    if match and match[2] in found:
                        at = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                        found[match[2]].append((node, at))
        return found

    def causes(self, names: list[str]) -> dict[str, Any]:
        """Why each lost file was lost, as far as the node logs tell: every node that ever
        stored it (owner or replica) is gone, and how each went."""
        counts: Counter[str] = Counter()
        examples: dict[str, list[str]] = {}
        for name, stored in self.stores(set(names)).items():
            if not stored:
                cause = "no node logged storing it"
            elif any(node.state == "live" for node, _ in stored):
                cause = "a live node stored it (dropped or not found later)"
            elif len({node.index for node, _ in stored}) > 1:
                fates = Counter(
                    "crashed" if node.state == "crashed" else "left" for node, _ in stored
                )
                ends = [node.ended_at for node, _ in stored if node.ended_at is not None]
                span = max(ends) - min(ends) if ends else 0.0
                cause = (
                    f"{len(stored)} copies stored, every holder gone since "
                    f"({fates['left']} left, {fates['crashed']} crashed"
                    + (", within one repair period)" if span <= REPAIR_PERIOD else ")")
                )
            else:
                node, at = stored[0]
                ended = node.ended_at
                if ended is None:
                    cause = f"one copy, on a node that is {node.state}"
                elif node.state in ("leaving", "left") and at >= ended:
                    cause = (
                        "one copy, stored by a node after its SIGTERM (while leaving: after "
                        "its handoff had listed its files), never copied on"
                    )
                elif node.state in ("leaving", "left"):
                    cause = "one copy, on a node that left later (not handed off)"
                elif ended - at < 2.0:
                    cause = (
                        "one copy, on a node killed within 2 s after storing it (the put "
                        "was acknowledged before any replica existed)"
                    )
                else:
                    cause = (
                        "one copy, on a node killed more than 2 s after storing it (no "
                        "replica made meanwhile)"
                    )
            counts[cause] += 1
            examples.setdefault(cause, [])
            if len(examples[cause]) < 5:
                examples[cause].append(name)
        return {"counts": dict(counts.most_common()), "examples": examples}

    async def explain(self, name: str, errors: list[str]) -> dict[str, Any]:
        """Where copies of a lost file are, and what the node logs say of it."""
        record = self.acked[name]
        refs = self.live_refs()
        ideal = IdealRouting.of(refs, self.space)
        key = file_key(self.space, name)
        owner = ideal.owner(key)
        found = await asyncio.gather(
            *(self.peers.at(r.address).find_file(name) for r in refs), return_exceptions=True
        )
        holding = [
            r.address
            for r, f in zip(refs, found, strict=True)
            if not isinstance(f, BaseException) and f is not None
        ]
        mentions: list[str] = []
        for node in self.nodes:
            with contextlib.suppress(OSError):
                for line in node.log_path.read_text(errors="replace").splitlines():
                    if name in line:
                        address = node.ref.address if node.ref else "?"
                        mentions.append(f"node-{node.index} {address} ({node.state}): {line}")
        window = [e for e in self.stats.events if abs(e[0] - record.at) < 10]
        return {
            "name": name,
            "key": key,
            "put_at_s": record.at,
            "put_via": record.via,
            "ideal_owner_at_put": record.ideal_owner,
            "ideal_owner_now": owner.address,
            "ideal_holders_now": [owner.address]
            + [n.address for n in ideal.successors(owner, REPLICAS - 1)],
            "live_nodes_holding_it": holding,
            "final_errors": errors,
            "log_lines": mentions[:40],
            "membership_changes_within_10s_of_put": window,
        }


def code_version() -> dict[str, Any]:
    """The commit the nodes ran, and the files under src/ changed in the working tree
    (other work in progress runs too)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    return {
        "head": git("rev-parse", "--short", "HEAD"),
        "src_changed_in_working_tree": git("status", "--porcelain", "--", "src").splitlines(),
    }


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    # Ctrl-C and SIGTERM cancel this task, so that the finally block below kills the nodes
    # (the event loop's own SIGINT handling did not reach it while gRPC calls ran).
    me = asyncio.current_task()
    assert me is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, me.cancel)
    soak = Soak(args, workdir)
    scratch = workdir / "scratch"
    scratch.mkdir()
    timing = Timing()
    report: dict[str, Any] = {
        "benchmark": "churn_soak",
        "nodes": args.nodes,
        "minutes": args.minutes,
        "change_every_s": args.change_every,
        "replicas": REPLICAS,
        "successors": DEFAULT_SUCCESSORS,
        "workers": args.workers,
        "seed": args.seed,
        "cpus": os.cpu_count(),
        "code": code_version(),
        "timing_s": {
            "stabilize": timing.stabilize,
            "check_predecessor": timing.check_predecessor,
            "fix_fingers": timing.fix_fingers,
            "repair_period": REPAIR_PERIOD,
            "note": "defaults: `chordshare node` has no flags for maintenance timings",
        },
        "crash_rule": (
            f"a crash only if fewer than k-1 = {REPLICAS - 1} crashes happened in the last "
            f"repair period ({REPAIR_PERIOD:g} s); otherwise a graceful leave instead"
        ),
    }
    try:
        log(f"starting {args.nodes} nodes in {workdir}")
        started = time.monotonic()
        first = soak.spawn(None)
        if not await soak.wait_ready(first, START_DEADLINE):
            raise RuntimeError("the first node did not start")
        assert first.ref is not None
        rest = [soak.spawn(first.ref.address) for _ in range(args.nodes - 1)]
        ok = await asyncio.gather(*(soak.wait_ready(n, START_DEADLINE) for n in rest))
        if not all(ok):
            raise RuntimeError(f"{ok.count(False)} nodes did not start")
        up = time.monotonic() - started
        converged = await soak.converge(CONVERGE_DEADLINE)
        log(f"up in {up:.1f} s, ring ideal after {converged}")
        if converged is None:
            raise RuntimeError("the ring did not converge after start")
        report["startup"] = {
            "processes_up_s": round(up, 2),
            "converged_after_s": round(converged, 2),
        }

        soak.began = time.monotonic()
        until = soak.began + args.minutes * 60
        soak.keep(soak.monitor())
        progress_task = asyncio.create_task(progress(soak, until))
        churn = asyncio.create_task(soak.churn(until))
        workers = [asyncio.create_task(soak.worker(until, scratch)) for _ in range(args.workers)]
        await asyncio.gather(churn, *workers)
        progress_task.cancel()
        churn_seconds = time.monotonic() - soak.began
        # Joins and leaves under way end first: the ring's final membership is then known.
        await asyncio.gather(*list(soak.membership), return_exceptions=True)
        log(f"churn stopped; {len(soak.live())} live; waiting for the ring to converge")
        # Timed from the last change (a join's from when its node was started).
        converged = await soak.converge(CONVERGE_DEADLINE)
        if converged is not None:
            converged = time.monotonic() - soak.last_change_at
        log(f"ring ideal after {converged}; letting repair run for {args.settle} s")
        await asyncio.sleep(args.settle)
        log(f"checking all {len(soak.acked)} acknowledged files")
        final = await soak.final_check(scratch)
        lost_names = final.pop("_lost")
        errors = final.pop("_errors")
        details = [await soak.explain(n, errors.get(n, [])) for n in lost_names[:LOST_DETAILED]]
        final["lost_causes"] = soak.causes(lost_names)
        (workdir / "events.json").write_text(json.dumps(soak.stats.events))
        s = soak.stats
        changes = s.changes["joins"] + s.changes["leaves"] + s.changes["crashes"]
        per_second = changes / churn_seconds if churn_seconds else 0.0
        gets_done = s.gets["done"]
        gets_ok = gets_done - s.gets["failed"] - s.gets["corrupt"]
        success = gets_ok / gets_done if gets_done else None
        lookups = s.lookups["done"]
        report.update(
            {
                "churn_seconds": round(churn_seconds, 1),
                "membership_changes": {
                    "total": changes,
                    "joins": s.changes["joins"],
                    "leaves": s.changes["leaves"],
                    "crashes": s.changes["crashes"],
                    "crashes_turned_into_leaves_by_the_rule": s.crashes_turned_into_leaves,
                    "join_failures": s.join_failures,
                    "leave_seconds_p50": pct(s.leave_seconds, 0.5),
                    "leave_seconds_max": round(max(s.leave_seconds, default=0.0), 2),
                    "leaves_killed_after_deadline": s.leave_timeouts,
                    "live_at_end": len(soak.live()),
                },
                "membership_changes_per_second": round(per_second, 3),
                "membership_changes_per_stabilize_period": round(per_second * timing.stabilize, 3),
                "membership_changes_per_repair_period": round(per_second * REPAIR_PERIOD, 3),
                "paper_anchor": PAPER,
                "ring_ideal_after_change_s": {
                    "changes_healed_before_the_next": len(s.converge_after_change),
                    "p50": pct(s.converge_after_change, 0.5),
                    "p99": pct(s.converge_after_change, 0.99),
                    "max": round(max(s.converge_after_change, default=0.0), 2),
                },
                "lookups": {
                    "done": lookups,
                    "failed": s.lookups["failed"],
                    "failed_per_10000": round(s.lookups["failed"] / lookups * 10_000, 2)
                    if lookups
                    else None,
                    "judged": s.lookups["judged"],
                    "wrong_owner": s.lookups["wrong_owner"],
                    "not_judged": s.lookups["not_judged"],
                    "differs_while_not_converged": s.lookups["differs_while_not_converged"],
                    "errors": dict(s.lookup_errors.most_common(10)),
                    "wrong_owner_samples": s.wrong_owner_samples,
                },
                "puts": {
                    "done": s.puts["done"],
                    "failed": s.puts["failed"],
                    "acknowledged": len(soak.acked),
                    "errors": dict(s.put_errors.most_common(10)),
                },
                "gets": {
                    "done": gets_done,
                    "failed": s.gets["failed"],
                    "corrupt": s.gets["corrupt"],
                    "failed_recovered_on_retry": s.gets["failed_recovered_on_retry"],
                    "success_rate": None if success is None else round(success, 5),
                    "errors": dict(s.get_errors.most_common(10)),
                    "failure_samples": s.get_failure_samples,
                },
                "ring_converged_after_churn_s": None if converged is None else round(converged, 2),
                "settle_s": args.settle,
                "final_check": final,
                "files_lost": final["lost"],
                "lost_details": details,
                "get_success_rate": None if success is None else round(success, 5),
            }
        )
        report["targets"] = {
            "no_file_lost": final["lost"] == 0 and final["corrupt"] == 0,
            "gets_at_least_99_9_percent": success is not None and success >= 0.999,
        }
        report["target_met"] = all(report["targets"].values())
    finally:
        await soak.close()
    return report


async def progress(soak: Soak, until: float) -> None:
    while True:
        await asyncio.sleep(30)
        s = soak.stats
        left = max(0.0, until - time.monotonic())
        log(
            f"{len(soak.live())} live, changes {dict(s.changes)}, puts {dict(s.puts)}, "
            f"gets {dict(s.gets)}, lookups {dict(s.lookups)}; {left:.0f} s of churn left"
        )


def run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--change-every", type=float, default=3.0, help="seconds between membership changes"
    )
    parser.add_argument("--crash-share", type=float, default=0.5, help="departures that crash")
    parser.add_argument("--workers", type=int, default=3, help="client loops at once")
    parser.add_argument("--put-share", type=float, default=0.3)
    parser.add_argument("--get-share", type=float, default=0.4, help="the rest are lookups")
    parser.add_argument("--settle", type=float, default=2 * REPAIR_PERIOD + 5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--node-log-level", default="info")
    parser.add_argument("--workdir", type=Path, help="keep data and node logs here")
    args = parser.parse_args()
    if args.nodes < 8:
        parser.error("--nodes must be at least 8")
    # Ctrl-C and SIGTERM cancel the run and its finally blocks kill the nodes;
    # PR_SET_PDEATHSIG covers SIGKILL of this process.
    try:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=False)
            report = run(bench(args, args.workdir.resolve()))
        else:
            with tempfile.TemporaryDirectory(prefix="chordshare-soak-") as tmp:
                report = run(bench(args, Path(tmp)))
    except (asyncio.CancelledError, KeyboardInterrupt):
        log("interrupted: every node was killed")
        raise SystemExit(130) from None
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
