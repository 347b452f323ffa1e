"""`share_replicate`: a sharer puts its shared files into the ring like any put, puts a file
again when it changes (its new bytes replace the copies it put before), leaves alone a name
the network holds with bytes it did not put, and remembers what it put across a restart."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.shared_copies import RECORD


def held(net: PeerNetwork, name: str) -> set[int]:
    """The sizes of name's copies on the live peers."""
    return {m.size for p in net.live() if (m := p.store.manifest(name)) is not None}


def count(net: PeerNetwork, name: str) -> int:
    return sum(p.store.manifest(name) is not None for p in net.live())


async def test_a_shared_file_is_put_and_put_again_when_it_changes(
    net: PeerNetwork, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "shared"
    (folder / "docs").mkdir(parents=True)
    (folder / "docs" / "plan.txt").write_bytes(b"first plan" * 100)
    (folder / "taken.txt").write_bytes(b"the sharer's taken.txt")
    ring = await net.ring(3)
    other = tmp_path / "other"
    other.write_bytes(b"someone else's taken.txt, longer")
    await ring[0].files(ring[0].server.node).put(other, "taken.txt")
    join = ring[0].server.node.me.address
    with caplog.at_level(logging.WARNING, logger="chordshare.sharing.shared_copies"):
        sharer: SharingPeer = await net.start(
            join=join, share=folder, share_replicate=True, republish=0.2, name="sharer"
        )
        await wait_until(lambda: count(net, "docs/plan.txt") == 3, 10, "3 copies of the plan")
        await wait_until(lambda: bool(caplog.records), 10, "a warning about taken.txt")
    assert held(net, "taken.txt") == {len(b"someone else's taken.txt, longer")}
    assert "taken.txt" in caplog.records[0].getMessage()

    plan = folder / "docs" / "plan.txt"
    plan.write_bytes(b"second plan, longer" * 100)
    os.utime(plan, (1.0, 2_000_000_000.0))  # a new modification time, whatever the clock
    await wait_until(
        lambda: held(net, "docs/plan.txt") == {len(b"second plan, longer" * 100)},
        10,
        "the changed plan to replace its copies",
    )
    assert (sharer.settings.data_dir / RECORD).exists()

    # Changed while its sharer was away: replaced at the next start, since the record says
    # the copies held are the sharer's own.
    await sharer.stop(graceful=False)
    plan.write_bytes(b"third plan" * 50)
    os.utime(plan, (1.0, 2_000_000_100.0))
    await net.start(join=join, share=folder, share_replicate=True, republish=0.2, name="sharer")
    await wait_until(
        lambda: held(net, "docs/plan.txt") == {len(b"third plan" * 50)},
        10,
        "the plan changed meanwhile to replace its copies",
    )
