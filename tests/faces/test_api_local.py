"""A file uploaded through the REST API of the node that owns its name is stored there
in-process, not sent by the node to itself over loopback gRPC; a get of a file it holds reads
it the same way. Copies still go to the successors."""

from __future__ import annotations

import hashlib

from apinet import ApiNetwork
from waiting import wait_until

from chordshare.files.placement import file_key
from chordshare.sharing.peer import SharingPeer


def a_name_owned_by(peer: SharingPeer) -> str:
    state = peer.server.node.state
    return next(
        name
        for name in (f"report-{i}.bin" for i in range(10_000))
        if state.owns(file_key(state.space, name))
    )


async def test_an_upload_on_the_owner_is_stored_without_a_call_to_itself(
    net: ApiNetwork,
) -> None:
    owner, *_ = await net.ring(3)
    assert owner.peers is not None
    me = owner.server.node.me.address
    name = a_name_owned_by(owner)
    data = hashlib.shake_256(b"local").digest(300 * 1024)
    async with await net.api(owner) as http:
        created = await http.post("/api/v1/files", files={"file": (name, data)})
        assert created.status_code == 201, created.text
        assert owner.store.manifest(name) is not None
        assert owner.peers.bytes.sent.get(me, 0) == 0  # nothing went out to itself
        # the successors got their copies, from the owner
        assert sum(owner.peers.bytes.sent.values()) >= len(data)
        await wait_until(
            lambda: sum(p.store.manifest(name) is not None for p in net.live()) == 3,
            10,
            "three copies",
        )
        got = await http.get(f"/api/v1/files/{name}")
        assert got.status_code == 200 and got.content == data
        assert owner.peers.bytes.received.get(me, 0) == 0
