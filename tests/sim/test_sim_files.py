"""Files on the simulated ring: the sharing core's decisions under churn, with the safety
invariants checked at every step and the convergence ones once repair has settled."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from chordshare.faces.cli import app
from chordshare.files.placement import file_key
from chordshare.sim.experiment import build, repair
from chordshare.sim.file_run import FilePlan, _Run, run_files
from chordshare.sim.files import FileWorld
from chordshare.sim.simulator import Simulator

SEEDS = range(16)


def content(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@pytest.mark.parametrize("seed", SEEDS)
def test_files_keep_their_copies_through_joins_leaves_crashes_and_returns(seed: int) -> None:
    report = run_files(FilePlan(nodes=40, files=120, changes=60, seed=seed))
    assert report["first_violations"] == []
    assert report["first_problems"] == []
    # While disks were full, every file had k copies: the next nodes with room stood in.
    assert report["first_short"] == []
    assert report["ring_converged"] is True
    # The schedule did what it is for: every kind of change and edit happened.
    for kind in ("joins", "returns", "leaves", "crashes", "replaces", "removals"):
        assert report[kind] > 0, kind  # type: ignore[operator]


def test_some_runs_end_with_full_disks_to_stand_in_for() -> None:
    ended_full = [
        run_files(FilePlan(nodes=40, files=120, changes=60, seed=seed))["full_disks_at_the_end"]
        for seed in (1, 2, 5)
    ]
    assert all(ended_full), ended_full  # so the check of copies while full is not empty


def ring(nodes: int = 12, seed: int = 0) -> tuple[Simulator, FileWorld]:
    sim = Simulator(successors=4, seed=seed)
    build(sim, nodes)
    assert not repair(sim).problems
    return sim, FileWorld(sim, replicas=3)


def settle(sim: Simulator, world: FileWorld) -> None:
    assert not repair(sim).problems
    run = _Run(sim, world, FilePlan())
    run.settle()
    run.final_rounds()


def test_a_copy_is_kept_while_its_new_owner_cannot_take_it() -> None:
    """k nodes join in front of a name's key, so none of its holders is among its new k;
    the new owner's disk is full. The old holders must keep their copies until the owner
    confirms one, or the name is gone."""
    sim, world = ring()
    assert world.put("report.pdf", content("v1"))
    key = file_key(sim.space, "report.pdf")
    old = set(world.where["report.pdf"])
    newcomers = [sim.join(ident=(key + i) % sim.space.size).address for i in range(3)]
    world.full.add(newcomers[0])
    settle(sim, world)
    assert world.violations == []
    assert world.where["report.pdf"] & old, "the old holders dropped the only copies"
    world.full.clear()
    settle(sim, world)
    assert world.where["report.pdf"] == set(newcomers)
    assert world.problems() == []


def test_a_node_that_comes_back_with_a_removed_name_does_not_revive_it() -> None:
    sim, world = ring(seed=1)
    assert world.put("draft.txt", content("v1"))
    holder = sorted(world.where["draft.txt"])[0]
    sim.crash(holder)
    book = world.crashed(holder)
    settle(sim, world)
    assert world.remove("draft.txt")
    settle(sim, world)
    comeback = sim.join()
    world.came_back(comeback.address, book)
    settle(sim, world)
    assert world.violations == []
    assert world.problems() == []
    assert all(world.books[a].held["draft.txt"].deleted for a in world.where["draft.txt"])


def test_a_node_that_comes_back_with_a_replaced_version_does_not_bring_it_back() -> None:
    sim, world = ring(seed=2)
    assert world.put("song.ogg", content("v1"))
    holder = sorted(world.where["song.ogg"])[0]
    sim.crash(holder)
    book = world.crashed(holder)
    settle(sim, world)
    assert world.put("song.ogg", content("v2"), replace=True)
    comeback = sim.join()
    world.came_back(comeback.address, book)
    settle(sim, world)
    assert world.violations == []
    assert world.problems() == []
    held = {world.books[a].held["song.ogg"].sha256 for a in world.where["song.ogg"]}
    assert held == {content("v2")}


def test_a_holder_that_died_is_no_longer_named_once_repair_ran() -> None:
    sim, world = ring(seed=3)
    assert world.put("notes.md", content("v1"))
    owner = next(a for a in world.where["notes.md"] if world.books[a].confirmed.get("notes.md"))
    victim = sorted(world.books[owner].confirmed["notes.md"] - {owner})[0]
    sim.crash(victim)
    world.crashed(victim)
    settle(sim, world)
    assert world.problems() == []
    for address in world.where["notes.md"]:
        assert victim not in world.books[address].confirmed.get("notes.md", set())


def test_a_run_is_the_same_for_the_same_seed() -> None:
    plan = FilePlan(nodes=20, files=40, changes=15, seed=7)
    first, second = run_files(plan), run_files(plan)
    first.pop("seconds")
    second.pop("seconds")
    assert first == second


def test_the_command_reports_a_file_run_in_json() -> None:
    result = CliRunner().invoke(
        app, ["sim", "--nodes", "20", "--files", "30", "--changes", "5", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["files"] == 30 and report["acknowledged"] >= 30
    assert report["safety_violations"] == 0 and report["convergence_problems"] == 0


def test_the_command_refuses_fewer_nodes_than_copies() -> None:
    result = CliRunner().invoke(app, ["sim", "--nodes", "3", "--files", "5", "--replicas", "3"])
    assert result.exit_code != 0
    assert "more nodes than replicas" in result.output
