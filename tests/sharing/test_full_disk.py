"""A holder with no room: repair does not keep sending it the same bytes, the copy it
cannot take goes to the next node with room, and comes back once it has room. Real peers
on loopback gRPC, repairing every 0.5 s; the decisions are `files.room` and
`files.repair.stand_ins`, tested here from plain values too."""

from __future__ import annotations

import bisect
import logging
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.files.placement import file_key
from chordshare.files.repair import KeyHolders, RepairPlan, drops, stand_ins
from chordshare.files.room import FIRST_WAIT, MAX_WAIT, RoomTable
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers

FILE = 200_000
FILES = 4
TINY = 64 * 1024  # the full node's quota: none of the files fits

# The decisions.


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_a_peer_that_said_its_room_is_sent_only_what_fits(room: int, size: int) -> None:
    rooms = RoomTable()
    rooms.reported("a:1", room)
    assert rooms.may_push("a:1", size, 0.0) == (size <= room)
    rooms.took("a:1", min(size, room))
    assert rooms.may_push("a:1", room - min(size, room) + 1, 0.0) is False
    assert rooms.may_push("b:1", size, 0.0)  # nothing known of b: pushed


def test_a_refusal_stops_pushes_until_the_peer_reports_room() -> None:
    rooms = RoomTable()
    rooms.reported("a:1", 10**6)
    rooms.refused("a:1", now=0.0)
    assert not rooms.may_push("a:1", 1, now=10**6)  # however long: it said no room
    rooms.reported("a:1", 5)
    assert rooms.may_push("a:1", 5, now=0.0)


def test_a_peer_that_never_says_its_room_is_let_be_longer_after_each_refusal() -> None:
    rooms = RoomTable()
    now = 0.0
    expected = [FIRST_WAIT * 2**i for i in range(5)] + [MAX_WAIT] * 3
    assert expected[4] < MAX_WAIT < 2 * expected[4]
    for wait in expected:
        rooms.refused("old:1", now)
        assert not rooms.may_push("old:1", 1, now + wait - 0.001)
        assert rooms.may_push("old:1", 1, now + wait)
        now += wait


@given(
    st.lists(st.sampled_from("abcdefgh"), min_size=3, max_size=3, unique=True),
    st.lists(st.sampled_from("abcdefghij"), unique=True),
    st.sets(st.sampled_from("abcdefghij")),
    st.sets(st.sampled_from("abcdefghij")),
)
def test_a_stand_in_is_the_next_node_with_room_for_each_holder_without(
    holders: list[str], successors: list[str], full: set[str], no_room: set[str]
) -> None:
    where = KeyHolders(holders[0], tuple(holders))
    chosen = stand_ins(where, successors, full, lambda a: a not in no_room)
    wanted = len(full & set(holders))
    eligible = [a for a in successors if a not in holders and a not in no_room]
    assert chosen == eligible[:wanted]


def test_a_copy_the_owner_offered_lately_is_kept() -> None:
    plan = RepairPlan(awaiting_owner={"x": "o:1", "y": "o:1"})
    confirmed = {("o:1", "x"), ("o:1", "y")}
    assert drops(plan, confirmed) == ["x", "y"]
    assert drops(plan, confirmed, kept={"x"}) == ["y"]


# Real peers.


def holders_of(ring: list[SharingPeer], name: str) -> list[str]:
    """The key's owner and its two successors, by id."""
    nodes = sorted(ring, key=lambda p: p.server.node.me.id)
    ids = [p.server.node.me.id for p in nodes]
    first = bisect.bisect_left(ids, file_key(nodes[0].server.node.space, name)) % len(nodes)
    return [nodes[(first + i) % len(nodes)].server.node.me.address for i in range(3)]


def holding(ring: list[SharingPeer], name: str) -> set[str]:
    return {p.server.node.me.address for p in ring if p.store.manifest(name) is not None}


async def test_a_full_holder_is_stood_in_for_and_takes_its_copies_back(
    net: PeerNetwork, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ring = await net.ring(3)
    tiny = await net.start(join=ring[0].server.node.me.address, max_store=TINY)
    ring.append(tiny)
    await wait_until(net.converged, 20, "4 peers to converge")
    at = tiny.server.node.me.address
    # Names the full node should hold a copy of, none of which it owns.
    names = []
    for i in range(200):
        name = f"big-{i}.bin"
        holders = holders_of(ring, name)
        if at in holders[1:]:
            names.append(name)
        if len(names) == FILES:
            break
    client = FileClient(NodeRing(ring[0].server.node), GrpcFilePeers(timeout=5.0))
    try:
        with caplog.at_level(logging.WARNING):
            for name in names:
                source = tmp_path / name
                source.write_bytes(os.urandom(FILE))
                await client.put(source, name)

            def stood_in() -> bool:
                return all(len(holding(ring, n)) == 3 and at not in holding(ring, n) for n in names)

            await wait_until(stood_in, 20, "a third copy of each on the node with room")

            def sent() -> dict[str, int]:
                """File bytes sent to each node by the others' repair so far."""
                total: dict[str, int] = {}
                for peer in ring:
                    if peer.peers is not None:
                        for address, count in peer.peers.bytes.sent.items():
                            total[address] = total.get(address, 0) + count
                return total

            sent_before = sent()
            # Four more full repair rounds on every node: the full one is offered its names
            # each round, and sent none of their bytes again.
            done = {id(p): p.replicator.full_rounds for p in ring if p.replicator is not None}

            def four_more_rounds() -> bool:
                return all(
                    p.replicator.full_rounds >= done[id(p)] + 4
                    for p in ring
                    if p.replicator is not None
                )

            await wait_until(four_more_rounds, 20, "four more repair rounds everywhere")
            # Not to the full node, which has no room, nor to the one standing in for it,
            # which keeps its copies while the owner offers it them.
            assert sent() == sent_before, f"sent {sent()}, before {sent_before}; full: {at}"
            assert not [r for r in caplog.records if r.exc_info], "no traceback"

        # Room again: the full node takes its copies back, and the stand-in lets go.
        tiny.store.max_bytes = None

        def back_in_place() -> bool:
            return all(holding(ring, n) == set(holders_of(ring, n)) for n in names)

        await wait_until(back_in_place, 30, "every copy back on its own holders")
    finally:
        await client.peers.close()
