"""Bytes that are not a valid request get INVALID_ARGUMENT saying so, for every call shape
(grpc.aio alone would answer UNKNOWN, which reads like a crash of the node)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from peernet import PeerNetwork

GARBAGE = b"\xff" * 11  # a varint longer than any


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[PeerNetwork]:
    network = PeerNetwork(tmp_path / "nodes")
    yield network
    await network.close()


async def test_garbage_requests_are_invalid_arguments(net: PeerNetwork) -> None:
    (peer,) = await net.ring(1)
    identity = {"request_serializer": None, "response_deserializer": None}
    async with grpc.aio.insecure_channel(peer.server.node.me.address) as channel:
        calls = {
            "unary": channel.unary_unary("/chordshare.v1.Chord/GetInfo", **identity)(
                GARBAGE, timeout=5
            ),
            "server streaming": channel.unary_stream(
                "/chordshare.v1.Files/FetchChunks", **identity
            )(GARBAGE, timeout=5),
            "client streaming": channel.stream_unary("/chordshare.v1.Files/PutFile", **identity)(
                iter([GARBAGE, b"", GARBAGE]), timeout=5
            ),
        }
        for shape, call in calls.items():
            assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT, shape
            assert "not a valid message" in (await call.details() or ""), shape
        # The node still answers well-formed calls.
        info = channel.unary_unary("/chordshare.v1.Chord/GetInfo", **identity)(b"", timeout=5)
        assert await info.code() == grpc.StatusCode.OK
