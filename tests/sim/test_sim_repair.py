"""A ring that cannot heal is measured, not raised: repair runs a bounded number of rounds
and the result says whether the ring converged and how many problems were left, both in
`measure` and in `chordshare sim`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from chordshare.chord.invariants import convergence_problems, ring_problems
from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.faces.cli import app
from chordshare.sim.experiment import (
    MAX_ROUNDS,
    SUMMARY_KEYS,
    Repair,
    build,
    measure_on,
    repair,
    without_live_successor,
)
from chordshare.sim.simulator import Simulator


@pytest.mark.system  # a default ring of hundreds of nodes: seconds, not milliseconds
def test_half_of_a_default_ring_failing_is_reported_honestly() -> None:
    """r = 8 and half of 2,000 nodes gone at once: some survivors lose every successor, so
    stabilize alone may not heal the ring; the run still ends, and its report agrees with
    the invariant checker."""
    sim = Simulator(seed=0)
    assert sim.successors == DEFAULT_SUCCESSORS
    m = measure_on(sim, 2000, 1000, fail=0.5)
    assert m.killed == 1000
    assert m.no_live_successor > 0

    live = set(sim.network.live)
    left = convergence_problems(sim.network.states, live)
    assert m.problems_left == len(left)
    assert m.converged is (not left)
    assert m.rounds_to_reconverge < MAX_ROUNDS  # stopped as stalled, not by the cap

    assert m.failed_lookups > 0
    assert m.failed_lookups == m.lookups - len(m.hops)

    summary = m.summary()
    assert set(summary) == set(SUMMARY_KEYS)
    assert summary["converged"] is m.converged
    assert summary["problems_left"] == len(left)
    assert summary["failed_lookups"] == m.failed_lookups
    assert summary["repair_rounds"] == m.rounds_to_reconverge


def test_survivors_without_a_live_successor_are_counted() -> None:
    sim = Simulator(bits=16, successors=2, seed=3)
    build(sim, 40)
    assert repair(sim).problems == []
    order = sorted(sim.members, key=lambda a: sim.state(a).me.id)
    # Two neighbours in a row gone: the node before them has no live successor left.
    for address in (order[5], order[6], order[20]):
        sim.crash(address)
    stranded = [p for p in ring_problems(sim.network.states, sim.live) if "no live successor" in p]
    assert len(stranded) == 1 and stranded[0].startswith(f"{order[4]} ")
    assert without_live_successor(sim) == 1


def test_repair_stops_once_it_stops_gaining() -> None:
    """A ring split in pieces keeps changing but never gets nearer to one ring."""
    sim = Simulator(bits=32, successors=4, seed=0)
    build(sim, 300)
    repair(sim)
    for address in sim.rng.sample(sorted(sim.members), 150):
        sim.crash(address)
    result = repair(sim, max_rounds=MAX_ROUNDS, patience=5)
    assert sorted(result.problems) == sorted(convergence_problems(sim.network.states, sim.live))
    assert result.problems
    assert any("rings instead of one" in p for p in ring_problems(sim.network.states, sim.live))
    assert result.rounds < MAX_ROUNDS
    capped = repair(sim, max_rounds=3, patience=MAX_ROUNDS)
    assert capped.rounds == 3 and capped.problems


SPLIT = ["--nodes", "300", "--lookups", "500", "--successors", "4", "--fail", "0.5"]


def test_sim_prints_its_json_for_a_ring_that_does_not_heal() -> None:
    outcome = CliRunner().invoke(app, ["sim", *SPLIT, "--json"])
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.stdout)
    assert set(result) == set(SUMMARY_KEYS)
    assert result["converged"] is False
    assert result["problems_left"] > 0
    assert 0 < result["failed_lookups"] <= 500
    assert result["killed"] == 150
    assert 0 < result["repair_rounds"] < MAX_ROUNDS


def test_sim_prints_its_table_for_a_ring_that_does_not_heal() -> None:
    outcome = CliRunner().invoke(app, ["sim", *SPLIT])
    assert outcome.exit_code == 0, outcome.output
    rows = {}
    for line in outcome.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    assert rows["converged"] == "False"
    assert int(rows["problems_left"]) > 0
    assert int(rows["failed_lookups"]) > 0


class ScriptedRing:
    """A ring whose problem count after each round is given."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = counts
        self.rounds = 0

    def round(self) -> None:
        self.rounds += 1

    def convergence_problems(self) -> list[str]:
        count = self.counts[min(self.rounds, len(self.counts) - 1)]
        return [f"problem {i}" for i in range(count)]


def test_repair_counts_only_real_gains() -> None:
    # One problem fewer every other round, on 1,000: 1% takes 22 rounds, past the patience.
    trickle = ScriptedRing([1000 - i // 2 for i in range(200)])
    assert repair(trickle, patience=10).rounds == 10
    # 1% every five rounds is progress: repair goes on to its cap.
    steady = ScriptedRing([1000 - 2 * i for i in range(200)])
    assert repair(steady, max_rounds=50, patience=10).rounds == 50
    # Below 100 problems a single one fewer is a gain.
    slow = ScriptedRing([99 - i for i in range(100)])
    assert repair(slow, patience=3) == Repair(99, [])
    assert repair(ScriptedRing([50, 40, 40, 40, 0]), patience=3).problems == []
    assert len(repair(ScriptedRing([50, 40, 40, 40, 0]), patience=2).problems) == 40
