"""File calls fill a share of their own; the ring's calls are answered whatever it holds. And
a connection that never finishes its handshake is closed. A real peer on loopback gRPC, with
small shares, and chunk streams held open for as long as a test wants."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.node import server as node_server
from chordshare.sharing.service import FileService
from chordshare.transport import limits
from chordshare.transport.call_share import is_ring_call
from chordshare.transport.limits import (
    BUSY_RETRY_AFTER,
    HANDSHAKE_TIMEOUT_MS,
    SERVER_OPTIONS,
    retry_after_of,
)
from chordshare.v1 import admin_pb2, chord_pb2, chord_pb2_grpc
from chordshare.v1 import files_pb2 as pb
from chordshare.v1 import files_pb2_grpc as pb_grpc

SOON = 10.0
SHARE = 3
FETCH = pb.FetchRequest(sha256=bytes(32), indexes=[0])


class HeldFetches:
    """Chunk streams that wait until `release` is set (in place of every FileService's)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.streaming = 0

    async def fetch_chunks(
        self,
        sha256: bytes,
        indexes: Sequence[int],
        repair: bool = False,
        manifest_id: bytes = b"",
    ) -> AsyncIterator[tuple[int, bytes]]:
        self.streaming += 1
        try:
            await self.release.wait()
            yield 0, b"x"
        finally:
            self.streaming -= 1


@pytest.fixture
async def lone_peer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[HeldFetches, grpc.aio.Channel]]:
    monkeypatch.setattr(limits, "CALL_SHARE", SHARE)
    monkeypatch.setattr(limits, "WATCH_SHARE", 2)
    held = HeldFetches()
    monkeypatch.setattr(FileService, "fetch_chunks", held.fetch_chunks)
    net = PeerNetwork(tmp_path)
    peer = await net.start(repair_period=3600.0, republish=3600.0)
    channel = grpc.aio.insecure_channel(peer.server.node.me.address)
    yield held, channel
    held.release.set()
    await channel.close()
    await net.close()


async def busy(call: object) -> grpc.aio.AioRpcError:
    """The refusal a call ends with, which must be the busy UNAVAILABLE."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await asyncio.wait_for(call, SOON)  # type: ignore[arg-type]
    err = refused.value
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err
    assert retry_after_of(err.trailing_metadata()) == BUSY_RETRY_AFTER
    return err


async def test_the_ring_is_answered_while_file_calls_fill_their_share(lone_peer) -> None:
    held, channel = lone_peer
    files, chord = pb_grpc.FilesStub(channel), chord_pb2_grpc.ChordStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    streams = [files.FetchChunks(FETCH) for _ in range(SHARE)]
    await wait_until(lambda: held.streaming == SHARE, SOON, "the share to fill")

    # The ring's calls, and a probe's, are answered.
    assert (await chord.Ping(chord_pb2.PingRequest(), timeout=SOON)).joined
    neighbours = await chord.GetNeighbors(chord_pb2.GetNeighborsRequest(), timeout=SOON)
    assert neighbours.successors
    checked = await health.Check(health_pb2.HealthCheckRequest(), timeout=SOON)
    assert checked.status == health_pb2.HealthCheckResponse.SERVING

    # One more file call of any shape is refused as busy, with the wait, and is not taken
    # for a crash (a put's refusal waits for the rest of its stream: no INTERNAL).
    err = await busy(files.FetchChunks(FETCH).read())
    assert f"{SHARE} calls under way" in (err.details() or "")
    await busy(files.ListFiles(pb.ListFilesRequest()))
    put = files.PutFile(timeout=SOON)

    async def sent() -> None:  # 4 MiB: still sending when the answer is ready
        for index in range(64):
            await put.write(pb.PutRequest(chunk=pb.PutChunk(index=index, data=bytes(65536))))
        await put.done_writing()
        await put

    await busy(sent())
    # A lookup for a client walks the ring for seconds: it counts with the files' calls.
    await busy(chord.Lookup(chord_pb2.LookupRequest(key=b"\1")))

    # Once the streams end, their slots are given back.
    held.release.set()
    for stream in streams:
        assert (await asyncio.wait_for(stream.read(), SOON)).data == b"x"
        assert await asyncio.wait_for(stream.code(), SOON) == grpc.StatusCode.OK
    again = [files.ListFiles(pb.ListFilesRequest(), timeout=SOON) for _ in range(SHARE)]
    await asyncio.gather(*again)


async def test_health_watches_have_a_share_of_their_own(lone_peer) -> None:
    _, channel = lone_peer
    health = health_pb2_grpc.HealthStub(channel)
    watches = [health.Watch(health_pb2.HealthCheckRequest()) for _ in range(2)]
    for watch in watches:  # the first answer comes at once; the stream stays open
        await asyncio.wait_for(watch.read(), SOON)
    err = await busy(health.Watch(health_pb2.HealthCheckRequest()).read())
    assert "2 health watches under way" in (err.details() or "")
    # Neither a probe nor a file call waits for the watches.
    await health.Check(health_pb2.HealthCheckRequest(), timeout=SOON)
    await pb_grpc.FilesStub(channel).ListFiles(pb.ListFilesRequest(), timeout=SOON)
    for watch in watches:
        watch.cancel()


def test_which_calls_are_the_rings() -> None:
    def methods(module: object, service: str) -> set[str]:
        described = module.DESCRIPTOR.services_by_name[service]  # type: ignore[attr-defined]
        return {f"/{described.full_name}/{m.name}" for m in described.methods}

    chord = methods(chord_pb2, "Chord")
    ring = {
        m for m in chord | methods(admin_pb2, "Admin") | methods(pb, "Files") if is_ring_call(m)
    }
    assert ring == (chord - {"/chordshare.v1.Chord/Lookup"}) | methods(admin_pb2, "Admin")
    assert {"/chordshare.v1.Chord/Ping", "/chordshare.v1.Chord/Notify"} <= ring
    assert is_ring_call("/grpc.health.v1.Health/Check")
    assert is_ring_call("/grpc.health.v1.Health/List")
    assert not is_ring_call("/grpc.health.v1.Health/Watch")
    assert not is_ring_call("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    assert not is_ring_call("/chordshare.v1.Chord.Ping")  # not a method path at all


async def silent_for(address: str, send: bytes, wait: float) -> float | None:
    """Connect, send `send`, then nothing: how long until the node closed the connection
    (None if it was still open after `wait` seconds)."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(send)
    started = time.monotonic()
    try:
        async with asyncio.timeout(wait):
            while await reader.read(65536):  # the node's settings frame, if it got that far
                pass
    except TimeoutError:
        return None
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started


async def test_a_connection_that_never_finishes_its_handshake_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS) in SERVER_OPTIONS
    assert HANDSHAKE_TIMEOUT_MS <= 10_000
    # The node's options, with a handshake timeout short enough for a test.
    short = [
        (key, 500 if key == "grpc.server_handshake_timeout_ms" else value)
        for key, value in SERVER_OPTIONS
    ]
    monkeypatch.setattr(node_server, "SERVER_OPTIONS", short)
    net = PeerNetwork(tmp_path)
    try:
        peer = await net.start()
        address = peer.server.node.me.address
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # and never the settings that follow
        closed = await asyncio.gather(
            silent_for(address, b"", 5.0),
            silent_for(address, preface[:10], 5.0),
            silent_for(address, preface, 5.0),
        )
        assert all(after is not None and 0.3 < after < 3.0 for after in closed), closed
        # A client that finishes its handshake is served as before.
        async with grpc.aio.insecure_channel(address) as channel:
            ping = await chord_pb2_grpc.ChordStub(channel).Ping(
                chord_pb2.PingRequest(), timeout=SOON
            )
            assert ping.joined
    finally:
        await net.close()
