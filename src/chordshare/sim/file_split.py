"""A seeded split of the ring in two, with files written on both sides, and the heal.

Build a ring, put the files and let repair settle. Then the network splits: every node is
put on one of two sides, and calls across fail (`Network.split`). Each side's maintenance
runs until it is a ring of its own, and its file repair until its copies sit on its own
ideal holders. Clients on each side (a client reaches only the nodes of its side) then
write apart: the same names replaced on both sides, names replaced on one side and removed
on the other, new names put on both sides, and a few random edits.

The heal clears the partition and runs what the node runtime does: every node pings the
peers it suspects (`probe_suspects`) and probes one peer it lost at the split for a ring
merge (`probe_for_merge`, through `procedures.merge`), then a maintenance round, until the
ring converges. File repair then runs to the end, and the report says:
- `lost_versions`: acknowledged versions gone without a trace (must be none);
- `both_problems`: names written on both sides whose winner is not on the name's k ideal
  holders, or whose loser is not on its conflict name's k ideal holders;
- `replace_problems`: a replace on one side and a removal of its parent on the other where
  the replace did not stay;
- `conflict_problems`: conflict copies not on exactly their k ideal holders;
- `first_problems`: the convergence problems of `FileWorld.problems`.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from chordshare.chord import procedures
from chordshare.chord.merge import Verdict
from chordshare.chord.messages import Call, NodeRef, Ping, Reply
from chordshare.files.messages import FileVersion
from chordshare.files.names import conflict_name
from chordshare.files.placement import file_key
from chordshare.sim.address_set import AddressSet
from chordshare.sim.experiment import build, repair
from chordshare.sim.file_checks import lost_versions
from chordshare.sim.files import FileWorld
from chordshare.sim.simulator import PROCEDURE_ERRORS, Simulator

SETTLE_ROUNDS = 30  # full file repair rounds at most; a round that moves nothing ends it
HEAL_ROUNDS = 60  # merge probes and maintenance rounds after the heal at most
SIDE_TRIES = 200  # random side assignments tried before giving up


@dataclass(frozen=True, slots=True)
class SplitPlan:
    nodes: int = 40
    files: int = 60
    replicas: int = 3
    successors: int = 8  # the ring's successor lists
    seed: int = 0
    both: int = 12  # existing names replaced on both sides apart
    replace_remove: int = 6  # names replaced on one side and removed on the other
    new_both: int = 6  # new names put on both sides apart
    edits: int = 10  # further random puts, replaces and removals on each side


def run_split(plan: SplitPlan) -> dict[str, object]:
    """Run the plan and summarise it (every count, the problems found, the seconds)."""
    if plan.nodes < 2 * (plan.replicas + 1):
        raise ValueError("need at least replicas + 1 nodes on each side")
    started = time.monotonic()
    sim = Simulator(successors=max(plan.successors, plan.replicas), seed=plan.seed)
    build(sim, plan.nodes)
    repair(sim)
    world = FileWorld(sim, plan.replicas)
    run = _Split(sim, world, plan)
    for index in range(plan.files):
        run.put(None, f"file-{index:05d}", replace=False)
    _settle(world)
    run.split()
    run.write_apart()
    heal_rounds, merges = run.heal()
    ring = repair(sim)
    rounds = _settle(world)
    problems = world.problems()
    both, replaced = run.check_both(), run.check_replace_vs_removal()
    conflicts = _conflict_problems(world)
    lost = lost_versions(world)
    return {
        "nodes": plan.nodes,
        "files": plan.files,
        "replicas": plan.replicas,
        "seed": plan.seed,
        "sides": [len(m) for m in run.members],
        "side_rounds": run.side_rounds,
        "sides_converged": run.sides_converged,
        **run.counts,
        "written_on_both_sides": len(run.pairs),
        "replaced_and_removed": len(run.replace_vs_removal),
        "kept_as_conflicts": world.set_aside,
        "merge_probes": run.probes,
        "merges": merges,
        "heal_rounds": heal_rounds,
        "ring_converged": not ring.problems,
        "file_repair_rounds": rounds,
        "safety_violations": len(world.violations),
        "first_violations": world.violations[:5],
        "lost_versions": lost[:5],
        "both_problems": both[:5],
        "replace_problems": replaced[:5],
        "conflict_problems": conflicts[:5],
        "convergence_problems": len(problems),
        "first_problems": problems[:5],
        "seconds": round(time.monotonic() - started, 2),
    }


@contextmanager
def _on_side(sim: Simulator, members: list[str]) -> Iterator[None]:
    """Run as a client or a round of one side: only its nodes are members meanwhile, so
    clients pick their first node there, and rounds and checks cover that ring alone."""
    everyone = sim.members
    sim.members = AddressSet(members)
    try:
        yield
    finally:
        sim.members = everyone


def _settle(world: FileWorld) -> int:
    """Full repair rounds at every member until one moves nothing; how many ran."""
    for rounds in range(1, SETTLE_ROUNDS + 1):
        moved = [world.repair(a) for a in world.sim.member_list()]
        if not any(moved):
            return rounds
    return SETTLE_ROUNDS


def _hello(peer: NodeRef) -> Generator[Call, Reply, Reply]:
    # What the runtime's hello does to the caller's suspicion: an answer clears it.
    reply = yield Ping(peer)
    return reply


def _ideal_holders(world: FileWorld, name: str) -> set[str]:
    ideal = world.sim.ideal()
    owner = ideal.owner(file_key(world.sim.space, name))
    return {owner.address, *(n.address for n in ideal.successors(owner, world.k - 1))}


def _conflict_problems(world: FileWorld) -> list[str]:
    """Conflict copies (live names no client wrote) not on exactly their k ideal holders,
    or held in more than one version."""
    live = world.sim.live
    found = []
    for name in sorted(set(world.where) - set(world.acked)):
        holding = {a for a in world.where[name] if a in live}
        if not holding:
            continue
        expected = _ideal_holders(world, name)
        if holding != expected:
            found.append(
                f"{name!r} is held by {sorted(holding)}, its holders are {sorted(expected)}"
            )
        if len({world.books[a].held[name] for a in holding}) > 1:
            found.append(f"{name!r} is held in more than one version")
    return found


class _Split:
    def __init__(self, sim: Simulator, world: FileWorld, plan: SplitPlan) -> None:
        self.sim = sim
        self.world = world
        self.plan = plan
        self.rng: random.Random = sim.rng
        self.names: list[str] = []
        self.members: list[list[str]] = [[], []]
        self.lost: dict[str, list[NodeRef]] = {}  # peers each node lost at the split
        self.side_rounds: list[int] = []
        self.sides_converged = False
        self.probes = 0
        # The last version each side acknowledged of a name written on both sides apart.
        self.pairs: dict[str, tuple[FileVersion, FileVersion]] = {}
        self.replace_vs_removal: dict[str, FileVersion] = {}  # name -> the replace
        self.counts = dict.fromkeys(("puts", "replaces", "removals", "refused"), 0)

    def _content(self) -> bytes:
        return hashlib.sha256(self.rng.randbytes(8)).digest()

    def put(self, side: int | None, name: str, replace: bool) -> FileVersion | None:
        """A client's put on one side (None: before the split); the version acknowledged."""
        if name not in self.names:
            self.names.append(name)
        before = len(self.world.acknowledged)
        with _on_side(self.sim, self._side(side)):
            done = self.world.put(name, self._content(), replace=replace)
        self.counts[("replaces" if replace else "puts") if done else "refused"] += 1
        return (
            self.world.acknowledged[-1] if done and len(self.world.acknowledged) > before else None
        )

    def remove(self, side: int, name: str) -> bool:
        with _on_side(self.sim, self._side(side)):
            done = self.world.remove(name)
        self.counts["removals" if done else "refused"] += 1
        return done

    def _side(self, side: int | None) -> list[str]:
        return self.sim.member_list() if side is None else self.members[side]

    # The split.

    def split(self) -> None:
        """Put every node on a side (each keeps a node of its side in its successor list,
        so no node is left alone), cut the network, and let each side become a ring."""
        sim = self.sim
        everyone = sim.member_list()
        for _ in range(SIDE_TRIES):
            sides = {a: self.rng.randrange(2) for a in everyone}
            if self._viable(sides):
                break
        else:
            raise RuntimeError("no split leaves every node a successor on its side")
        self.members = [[a for a in everyone if sides[a] == s] for s in (0, 1)]
        for address in everyone:
            view = sim.state(address).known_peers()
            self.lost[address] = [n for n in view if sides.get(n.address) != sides[address]]
        sim.network.split(sides)
        converged = True
        for members in self.members:
            with _on_side(sim, members):
                outcome = repair(sim)
                self.side_rounds.append(outcome.rounds)
                converged = converged and not outcome.problems
                _settle(self.world)
        self.sides_converged = converged

    def _viable(self, sides: dict[str, int]) -> bool:
        if (
            min(sum(1 for s in sides.values() if s == side) for side in (0, 1))
            <= self.plan.replicas
        ):
            return False
        return all(
            any(
                sides[n.address] == sides[a] for n in self.sim.state(a).successors if n.address != a
            )
            for a in sides
        )

    def _held_on(self, side: int, name: str) -> bool:
        members = set(self.members[side])
        return any(
            a in members and not self.world.books[a].held[name].deleted
            for a in self.world.where[name]
        )

    def write_apart(self) -> None:
        """The writes of clients on both sides while the network is split."""
        plan = self.plan
        shared = [n for n in self.names if self._held_on(0, n) and self._held_on(1, n)]
        chosen = self.rng.sample(shared, min(len(shared), plan.both + plan.replace_remove))
        for name in chosen[: plan.both]:
            ours, theirs = self.put(0, name, replace=True), self.put(1, name, replace=True)
            if ours is not None and theirs is not None:
                self.pairs[name] = (ours, theirs)
        for name in chosen[plan.both :]:
            side = self.rng.randrange(2)
            replace = self.put(side, name, replace=True)
            if self.remove(1 - side, name) and replace is not None:
                self.replace_vs_removal[name] = replace
        for index in range(plan.new_both):
            name = f"apart-{index:03d}"
            ours, theirs = self.put(0, name, replace=False), self.put(1, name, replace=False)
            if ours is not None and theirs is not None:
                self.pairs[name] = (ours, theirs)
        for side in (0, 1):
            for _ in range(plan.edits):
                self._edit(side)
        for members in self.members:
            with _on_side(self.sim, members):
                _settle(self.world)

    def _edit(self, side: int) -> None:
        """A random edit that leaves the names tracked above alone."""
        kind = self.rng.random()
        free = [n for n in self.names if n not in self.pairs and n not in self.replace_vs_removal]
        if kind < 0.4 or not free:
            self.put(side, f"side{side}-{len(self.names):05d}", replace=False)
        elif kind < 0.7:
            self.put(side, self.rng.choice(free), replace=True)
        else:
            self.remove(side, self.rng.choice(free))

    # The heal.

    def heal(self) -> tuple[int, int]:
        """Clear the partition and run suspect probes, merge probes and maintenance rounds
        until the ring converges; the rounds it took and the successors adopted."""
        sim = self.sim
        sim.network.heal()
        merges = 0
        for rounds in range(1, HEAL_ROUNDS + 1):
            for address in sim.member_list():
                merges += self._probe(address)
            sim.round()
            if not sim.convergence_problems():
                return rounds, merges
        return HEAL_ROUNDS, merges

    def _probe(self, address: str) -> bool:
        """One node's probes of a round: its suspects, then one peer it lost at the split."""
        sim = self.sim
        state = sim.state(address)
        suspects = sim.network.suspects[address]
        for suspect in sorted(suspects):
            if suspect in sim.live:
                sim.run(address, _hello(sim.state(suspect).me))
        view = {n.address for n in state.known_peers()}
        lost = self.lost[address]
        lost[:] = [n for n in lost if n.address not in view]  # back in view: nothing to probe
        if not lost or state.alone:
            return False
        peer = lost[self.rng.randrange(len(lost))]
        self.probes += 1
        sim.run(address, _hello(peer))
        try:
            result = sim.run(address, procedures.merge(state, peer, suspects))
        except PROCEDURE_ERRORS:
            return False
        if result.verdict is Verdict.SAME_RING:
            lost.remove(peer)
        return bool(result.adopted)

    # The checks.

    def _held_as(self, name: str, version: FileVersion) -> str | None:
        world = self.world
        live = world.sim.live
        holding = {a for a in world.where[name] if a in live}
        expected = _ideal_holders(world, name)
        if holding != expected:
            return f"{name!r} is held by {sorted(holding)}, its holders are {sorted(expected)}"
        wrong = sorted(a for a in holding if world.books[a].held[name].sha256 != version.sha256)
        if wrong:
            return f"{name!r} is not version {version.version} at {', '.join(wrong)}"
        return None

    def check_both(self) -> list[str]:
        found = []
        for name, (ours, theirs) in sorted(self.pairs.items()):
            winner, loser = (
                (ours, theirs)
                if (ours.version, ours.sha256) > (theirs.version, theirs.sha256)
                else (theirs, ours)
            )
            for problem in (
                self._held_as(name, winner),
                self._held_as(conflict_name(name, loser.version, loser.sha256), loser),
            ):
                if problem is not None:
                    found.append(problem)
        return found

    def check_replace_vs_removal(self) -> list[str]:
        found = []
        for name, replace in sorted(self.replace_vs_removal.items()):
            problem = self._held_as(name, replace)
            if problem is not None:
                found.append(f"the replace did not stay: {problem}")
        return found
