"""A ring split in two, writing on both sides, then whole again: nothing acknowledged is
lost without a trace. Two first puts of one name, or two replaces of one version, made
apart are both kept (the order's winner under the name, the other under its conflict
name, with a warning naming both); a replace that descends from what it replaced wins
with no conflict; a removal on one side removes only the version it named, so a replace
made on the other side stays. The real file-sharing code on Chord runtimes over the
in-memory network, partitioned and healed, driven by hand as in the churn test."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
from pathlib import Path

import pytest
from test_sharing_churn import ChurnNet, Peer, churn_net, root  # noqa: F401  (root: fixture)

from chordshare.chord.invariants import convergence_problems
from chordshare.files.names import conflict_name, conflict_of
from chordshare.transport.base import PeerError

NODES = 8
ROUNDS = 30


async def converge_apart(net: ChurnNet, sides: list[list[Peer]]) -> None:
    """Maintenance rounds until each side is a ring of its own."""

    def problems() -> list[str]:
        found = []
        for side in sides:
            states = {p.address: p.node.state for p in side}
            found += convergence_problems(states, set(states))
        return found

    for _ in range(ROUNDS):
        if not problems():
            return
        for side in sides:
            for peer in side:
                await peer.node.stabilize()
                await peer.node.check_predecessor()
                await peer.node.fix_fingers()
    assert not problems(), problems()[:5]


async def repair_all(net: ChurnNet, rounds: int = 4) -> None:
    for _ in range(rounds):
        for peer in list(net.live.values()):
            await peer.replicator.repair()


async def merge(net: ChurnNet) -> None:
    """Heal the network: the nodes probe the peers they dropped while cut off and merge
    the two rings into one (`ChordNode.probe_for_merge`), then repair runs."""
    net.network.heal()
    for _ in range(ROUNDS):
        if not net.ring_problems():
            break
        for peer in list(net.live.values()):
            transport = peer.node.transport
            for address in transport.health.suspected():  # what probe_suspects does
                with contextlib.suppress(PeerError):
                    await transport.hello(address, 1.0)
            await peer.node.probe_for_merge()
            await peer.node.stabilize()
            await peer.node.check_predecessor()
            await peer.node.fix_fingers()
    await net.converge()
    await repair_all(net)


def held_everywhere(net: ChurnNet, name: str) -> dict[str, bytes]:
    """The live versions of name (its SHA-256s), by holder."""
    return {a: m.sha256 for a, p in net.live.items() if (m := p.store.manifest(name)) is not None}


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@pytest.mark.parametrize("seed", [1])
async def test_writes_made_apart_are_all_kept_after_the_ring_heals(
    root: Path,  # noqa: F811
    seed: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with churn_net(root, seed) as net:
        for _ in range(NODES):
            await net.add()
        await net.converge()
        base = b"the version both sides start from\n"
        await net.put("shared.txt", base)
        await net.put("doomed.txt", b"removed on one side, replaced on the other\n")
        await net.put("kept.txt", b"replaced twice on one side only\n")
        await repair_all(net)

        peers = sorted(net.live.values(), key=lambda p: p.address)
        random.Random(seed).shuffle(peers)
        sides = [peers[: NODES // 2], peers[NODES // 2 :]]
        net.network.partition([p.address for p in sides[0]], [p.address for p in sides[1]])
        await converge_apart(net, sides)

        left, right = sides
        writes = {
            "left": b"written on the left\n",
            "right": b"written on the right, apart\n",
        }
        # The same new name created on both sides, and one version replaced on both.
        await put_on(net, left[0], "conflict.bin", writes["left"])
        await put_on(net, right[0], "conflict.bin", writes["right"])
        await put_on(net, left[1], "shared.txt", writes["left"], replace=True)
        await put_on(net, right[1], "shared.txt", writes["right"], replace=True)
        # A removal on one side, a replace of the same version on the other.
        await net.client(left[0]).remove("doomed.txt")
        await put_on(net, right[0], "doomed.txt", b"replaced while removed\n", replace=True)
        # A line of replaces on the side of the name's owner (which holds the version they
        # replace): each descends from the one before, so no conflict. (On the other
        # side, which may hold nothing of the name, a replace could not know what it
        # replaced: it would be written apart, and both kept.)
        owner = net.expected_holders("kept.txt")[0]
        home = next(side for side in sides if owner in {p.address for p in side})
        await put_on(net, home[0], "kept.txt", b"one\n", replace=True)
        await put_on(net, home[1], "kept.txt", b"two\n", replace=True)
        await repair_all(net)

        with caplog.at_level(logging.WARNING):
            await merge(net)

        for name in ("conflict.bin", "shared.txt"):
            held = set(held_everywhere(net, name).values())
            assert len(held) == 1, f"{name} converged on one version: {held}"
            (winner,) = held
            loser = ({sha(w) for w in writes.values()} - {winner}).pop()
            copies = [
                (n, p.store.manifest(n))
                for p in net.live.values()
                for n in [m.name for m in p.store.manifests()]
                if conflict_of(n) == name
            ]
            assert copies, f"the version of {name} that lost is kept under a conflict name"
            assert {m.sha256 for _, m in copies if m is not None} == {loser}
            kept_as = {n for n, _ in copies}
            assert len(kept_as) == 1
            (aside,) = kept_as
            warned = [r for r in caplog.records if aside in r.getMessage()]
            assert warned and name in warned[0].getMessage()
            assert warned[0].levelno == logging.WARNING
            # Every copy of it is one file, on its k holders, fetchable.
            assert sorted(a for a, _ in held_everywhere(net, aside).items()) == sorted(
                net.expected_holders(aside)
            )
            got = await net.client().get(aside, root / f"got-{seed}-{name}")
            assert got.sha256 == loser

        # The replace made apart from the removal stays; the removal removed its version.
        assert set(held_everywhere(net, "doomed.txt").values()) == {
            sha(b"replaced while removed\n")
        }
        # A replace that descends from what it replaced: no conflict, the newest wins.
        assert set(held_everywhere(net, "kept.txt").values()) == {sha(b"two\n")}
        names = {m.name for p in net.live.values() for m in p.store.manifests()}
        assert not [n for n in names if conflict_of(n) in ("kept.txt", "doomed.txt")], names
        assert conflict_name("x.bin", 0.0, bytes(32)) not in names


async def put_on(net: ChurnNet, via: Peer, name: str, data: bytes, replace: bool = False) -> None:
    """A client's put through a node on one side (its lookups stay on that side)."""
    source = net.root / "sources" / f"{via.address}-{name}"
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(data)
    outcome = await net.client(via).put(source, name, replace=replace)
    assert not outcome.unchanged and outcome.manifest.sha256 == sha(data)
