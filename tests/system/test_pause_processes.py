"""Node processes paused with kill -STOP and resumed with SIGCONT: every lookup answer is
checked. Right after the pause a lookup may still name the node that stopped (it spoke a
moment ago: slow or lossy, as far as anyone can tell); then its successor answers for its
keys, and from a moment after the resume on, every answer names the resumed node again."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import Processes, eventually, ideal_owner, lookup_owners

from chordshare.transport.base import PeerError
from chordshare.transport.client import NodeClient, NodeInfo

pytestmark = [pytest.mark.system, pytest.mark.processes, pytest.mark.timeout(120)]

NODES = 12
PAUSED = 3
# Lookups that start this soon after a signal are not judged: the signal, and the answers
# already on their way, need a moment to land.
ONSET = 0.2
# A node that stopped is taken for alive while it spoke a moment ago (three stabilize
# periods); on a machine this busy, its last words may be read a second late.
STOPPED_ONSET = 3.0
PAUSE_SECONDS = 6.0
AFTER_SECONDS = 3.0
ASKERS = 2


@dataclass(frozen=True)
class Answer:
    started: float
    key: int
    owner: int | None  # None: the lookup failed


async def ask(addresses: list[str], keys: list[int], seconds: float) -> list[Answer]:
    """Look keys up round-robin through several nodes at once, for `seconds`."""
    clients = [await NodeClient.connect(a, 5.0) for a in addresses]
    answers: list[Answer] = []
    end = time.monotonic() + seconds

    async def one_asker(client: NodeClient, offset: int) -> None:
        i = offset
        while time.monotonic() < end:
            key = keys[i % len(keys)]
            i += ASKERS
            started = time.monotonic()
            try:
                owner: int | None = (await client.lookup(key)).owner.id
            except PeerError:
                owner = None
            answers.append(Answer(started, key, owner))

    try:
        await asyncio.gather(*(one_asker(c, i) for i, c in enumerate(clients)))
    finally:
        for client in clients:
            await client.close()
    return answers


async def infos(addresses: list[str]) -> list[NodeInfo]:
    client = await NodeClient.connect(addresses[0], 5.0)
    try:
        return [await client.info(a) for a in addresses]
    finally:
        await client.close()


def judged(answers: list[Answer], since: float, ids: list[int]) -> tuple[list[str], int]:
    """Wrong answers among lookups started after `since`, and how many failed."""
    late = [a for a in answers if a.started > since]
    wrong = [
        f"key {a.key} at +{a.started - since:.3f} s: {a.owner}, not {ideal_owner(ids, a.key)}"
        for a in late
        if a.owner is not None and a.owner != ideal_owner(ids, a.key)
    ]
    return wrong, sum(1 for a in late if a.owner is None)


def test_paused_nodes_never_leave_a_wrong_owner_behind(tmp_path: Path) -> None:
    procs = Processes(tmp_path)
    try:
        first = procs.start()
        procs.start_many(NODES - 1, join=first.address)
        by_id = {n.id: n for n in procs.nodes}
        ids = sorted(by_id)
        probe_keys = [(i + 1) % 2**160 for i in ids] + ids

        def converged() -> None:
            for ident in ids[:: NODES // 4]:
                owners = lookup_owners(by_id[ident].address, probe_keys)
                assert owners == [ideal_owner(ids, k) for k in probe_keys]
            # Every node's own range too: a node that never asks for a key may still
            # answer for it.
            for i, info in enumerate(asyncio.run(infos([by_id[n].address for n in ids]))):
                assert info.predecessor is not None, f"{ids[i]} has no predecessor"
                assert info.predecessor.id == ids[i - 1], f"{ids[i]}: {info.predecessor.id}"
                assert info.successors[0].id == ids[(i + 1) % NODES], f"{ids[i]} successor"

        eventually(converged, 30.0, interval=0.5)
        paused = [ids[i] for i in range(1, NODES, NODES // PAUSED)][:PAUSED]
        running = [i for i in ids if i not in paused]
        # Keys of the paused nodes, and of the nodes just after them, most of all.
        keys = []
        for ident in paused:
            before = ids[ids.index(ident) - 1]
            keys += [(before + 1) % 2**160, (before + ident) // 2 if before < ident else ident]
            keys += [ident, (ident + 1) % 2**160]
        keys += ids
        askers = [by_id[i].address for i in running[:ASKERS]]

        for ident in paused:
            by_id[ident].freeze()
        frozen_at = time.monotonic()
        during = asyncio.run(ask(askers, keys, PAUSE_SECONDS))
        for ident in paused:
            by_id[ident].thaw()
        thawed_at = time.monotonic()
        after = asyncio.run(ask(askers, keys, AFTER_SECONDS))

        wrong, failed = judged(during, frozen_at + STOPPED_ONSET, running)
        print(f"paused: {len(during)} lookups, {len(wrong)} wrong, {failed} failed")
        assert not wrong, wrong[:10]
        wrong, failed_after = judged(after, thawed_at + ONSET, ids)
        print(f"resumed: {len(after)} lookups, {len(wrong)} wrong, {failed_after} failed")
        assert not wrong, wrong[:10]
        assert failed + failed_after <= (len(during) + len(after)) // 100
    finally:
        procs.cleanup()
