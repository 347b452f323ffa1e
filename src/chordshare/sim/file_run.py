"""A seeded run of files on a churning ring: what `chordshare sim --files N` reports.

Build a ring, put the files, then change the membership `changes` times: bursts of joins,
graceful leaves and crashes (at most k-1 crashes between two repairs, and only crashes the
ring's fault model allows), each followed by the repair the node runtime would run (nodes
whose neighbours changed, and nodes whose store changed, until nothing moves), with puts,
replaces and removals in between. Safety is checked at every step (`FileWorld`); at the end
the ring converges, repair settles, and the convergence invariants are checked.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from chordshare.chord import procedures
from chordshare.chord.messages import NodeRef
from chordshare.sim import file_checks
from chordshare.sim.experiment import build, repair
from chordshare.sim.faults import safe_to_remove
from chordshare.sim.files import FileBook, FileWorld
from chordshare.sim.simulator import PROCEDURE_ERRORS, Simulator

QUIET_PASSES = 20  # repair passes after a change at most; a pass that moves nothing ends it
FINAL_ROUNDS = 20  # full repair rounds at the end at most


@dataclass(frozen=True, slots=True)
class FilePlan:
    nodes: int = 100
    files: int = 1000
    changes: int = 50
    replicas: int = 3
    seed: int = 0
    successors: int = 8  # the ring's successor lists
    edits: int = 4  # puts, replaces and removals between two membership changes
    full_rate: float = 0.2  # the chance, at each change, that a node's disk fills for a while
    join_weight: float = 0.4
    leave_weight: float = 0.3
    crash_weight: float = 0.3


def run_files(plan: FilePlan) -> dict[str, object]:
    """Run the plan and summarise it (every count, the problems found, the seconds)."""
    if plan.nodes < plan.replicas + 1 or plan.files < 0 or plan.changes < 0:
        raise ValueError("need more nodes than replicas, and no negative counts")
    started = time.monotonic()
    sim = Simulator(successors=max(plan.successors, plan.replicas), seed=plan.seed)
    build(sim, plan.nodes)
    repair(sim)
    world = FileWorld(sim, plan.replicas)
    run = _Run(sim, world, plan)
    for index in range(plan.files):
        run.put_new(index)
    run.settle()
    for _ in range(plan.changes):
        run.change()
        run.settle()
        for _ in range(plan.edits):
            run.edit()
    ring = repair(sim)
    # Full rounds while the full disks are still full: every file keeps k copies, on the
    # next nodes with room in place of holders without; then room again, and every copy
    # goes back to its own holders.
    full_disks = len(world.full)
    run.final_rounds()
    short = file_checks.short_of_copies(world)
    world.full.clear()
    rounds = run.final_rounds()
    problems = world.problems()
    return {
        "nodes": plan.nodes,
        "files": plan.files,
        "replicas": plan.replicas,
        "seed": plan.seed,
        "members": len(sim.members),
        **run.counts,
        "acknowledged": len(world.acked),
        "ring_converged": not ring.problems,
        "file_repair_rounds": rounds,
        "full_disks_at_the_end": full_disks,
        "short_of_copies_while_full": len(short),
        "first_short": short[:5],
        "stale_copies": world.stale_stores,
        "kept_as_conflicts": world.set_aside,
        "safety_violations": len(world.violations),
        "first_violations": world.violations[:5],
        "convergence_problems": len(problems),
        "first_problems": problems[:5],
        "seconds": round(time.monotonic() - started, 1),
    }


class _Run:
    def __init__(self, sim: Simulator, world: FileWorld, plan: FilePlan) -> None:
        self.sim = sim
        self.world = world
        self.plan = plan
        self.rng = sim.rng
        self.names: list[str] = []
        self.away: list[FileBook] = []  # the stores of crashed nodes that may come back
        self.views: dict[str, object] = {}
        self.counts = dict.fromkeys(
            ("joins", "returns", "leaves", "crashes", "puts", "replaces", "removals", "refused"), 0
        )

    def _content(self) -> bytes:
        return hashlib.sha256(self.rng.randbytes(8)).digest()

    def put_new(self, index: int) -> None:
        name = f"file-{index:05d}"
        self.names.append(name)
        self._count("puts", self.world.put(name, self._content()))

    def _count(self, kind: str, done: bool) -> None:
        self.counts[kind if done else "refused"] += 1

    def edit(self) -> None:
        kind = self.rng.random()
        if kind < 0.4 or not self.names:
            self.put_new(len(self.names))
        else:
            name = self.names[self.rng.randrange(len(self.names))]
            if kind < 0.7:
                self._count("replaces", self.world.put(name, self._content(), replace=True))
            else:
                self._count("removals", self.world.remove(name))

    # Membership.

    def change(self) -> None:
        """A burst of one to k-1 membership changes, with no repair between them; a disk
        may fill up, and a full one may free up again."""
        if self.world.full and self.rng.random() < 0.5:
            self.world.full.discard(min(self.world.full))
        if self.rng.random() < self.plan.full_rate:
            self.world.full.add(self.sim.members.choice(self.rng))
        for _ in range(self.rng.randint(1, max(1, self.plan.replicas - 1))):
            plan = self.plan
            total = plan.join_weight + plan.leave_weight + plan.crash_weight
            kind = self.rng.random() * total
            if kind < plan.join_weight:
                self._join()
            else:
                self._remove(crash=kind >= plan.join_weight + plan.leave_weight)

    def _join(self) -> None:
        if not self.sim.ids_left():
            return
        try:
            me = self.sim.join()
        except PROCEDURE_ERRORS:
            return
        self.counts["joins"] += 1
        if self.away and self.rng.random() < 0.5:
            # A node that crashed comes back with its data (at another place on the ring:
            # what matters to the files is the old copies it brings).
            book = self.away.pop(self.rng.randrange(len(self.away)))
            self.world.came_back(me.address, book)
            self.counts["returns"] += 1
        self._mend(me)

    def _remove(self, crash: bool) -> None:
        sim = self.sim
        if len(sim.members) <= self.plan.replicas + 2:
            return
        candidates = sim.member_list()
        self.rng.shuffle(candidates)
        for address in candidates[:20]:
            if safe_to_remove(sim, address, leaving=not crash):
                me = sim.state(address).me
                if crash:
                    sim.crash(address)
                    self.away.append(self.world.crashed(address))
                    self.counts["crashes"] += 1
                else:
                    self.world.handoff(address)
                    sim.leave(address)
                    self.world.crashed(address)
                    self.counts["leaves"] += 1
                self._mend(me)
                return

    def _mend(self, around: NodeRef) -> None:
        """The maintenance near a change that the nodes' own loops would run first: the
        nodes before it stabilize, the nodes after it check their predecessor."""
        sim = self.sim
        ideal = sim.ideal()
        at = ideal.owner(around.id)  # the node itself, or the one after it when it is gone
        nearby = [at.address, *(n.address for n in ideal.successors(at, sim.successors))]
        node = ideal.predecessor(at)
        for _ in range(sim.successors):
            if node is None:
                break
            nearby.append(node.address)
            node = ideal.predecessor(node)
        for address in dict.fromkeys(nearby):
            if address in sim.members:
                state = sim.state(address)
                avoid = sim.network.suspects[address]
                try:
                    sim.run(address, procedures.check_predecessor(state))
                    sim.run(address, procedures.stabilize(state, avoid))
                except PROCEDURE_ERRORS:
                    continue

    # Repair.

    def _view(self, address: str) -> object:
        state = self.sim.state(address)
        return (state.predecessor, tuple(state.successors[: self.plan.replicas]))

    def settle(self) -> None:
        """Repair where the runtime would: at nodes whose neighbours changed and at nodes
        whose store changed, until a pass moves nothing."""
        for _ in range(QUIET_PASSES):
            due = [a for a in self.sim.member_list() if self.views.get(a) != self._view(a)]
            due += sorted(self.world.touched - set(due))
            self.world.touched.clear()
            if not due:
                return
            for address in due:
                if address in self.sim.members:
                    self.views[address] = self._view(address)
                    self.world.repair(address)

    def final_rounds(self) -> int:
        """Full rounds at every member until three in a row move nothing (a copy held in
        place of a full holder is kept for two rounds after its owner last offered it);
        how many ran."""
        quiet = 0
        for rounds in range(1, FINAL_ROUNDS + 1):
            moved = [self.world.repair(a) for a in self.sim.member_list()]
            quiet = 0 if any(moved) else quiet + 1
            if quiet == 3:
                return rounds
        return FINAL_ROUNDS
