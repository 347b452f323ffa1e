"""A put the owner refuses while the client is still sending reaches the client with the
owner's own status, never as gRPC's INTERNAL "Internal error from Core".

grpc/grpc#36066: a grpc.aio client whose write fails because the server already ended the
call reports INTERNAL instead of the status the server sent. The node reads and drops what a
refused put still sends (up to a bound) before it answers. Without that, a few puts in a
hundred lost their status here; the test makes hundreds, concurrently, to see it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest
from peernet import PeerNetwork

from chordshare.transport.files_grpc import FILE_CHANNEL_OPTIONS
from chordshare.v1 import files_pb2 as pb
from chordshare.v1 import files_pb2_grpc as pb_grpc

ROUNDS = 50
AT_ONCE = 8
CHUNKS = 64


def taken_name_header(data: bytes) -> pb.PutRequest:
    """A well-formed header for a name the node already holds with other bytes."""
    return pb.PutRequest(
        header=pb.PutHeader(
            manifest=pb.Manifest(
                name="taken.bin",
                size=len(data),
                sha256=hashlib.sha256(data).digest(),
                chunk_size=len(data),
                chunks=[hashlib.sha256(data).digest()],
            )
        )
    )


async def test_refused_puts_report_the_refusal_not_internal(net: PeerNetwork) -> None:
    (peer,) = await net.ring(1)
    async with grpc.aio.insecure_channel(
        peer.server.node.me.address, options=FILE_CHANNEL_OPTIONS
    ) as channel:
        stub = pb_grpc.FilesStub(channel)
        held = b"the first bytes"
        await stub.PutFile(iter([taken_name_header(held), _chunk(0, held)]), timeout=10)
        other = b"other bytes, same name"
        headers = {
            grpc.StatusCode.INVALID_ARGUMENT: pb.PutRequest(header=pb.PutHeader()),
            grpc.StatusCode.ALREADY_EXISTS: taken_name_header(other),
        }
        seen: Counter[tuple[grpc.StatusCode, grpc.StatusCode]] = Counter()

        async def refused_put(expected: grpc.StatusCode) -> None:
            async def requests() -> AsyncIterator[pb.PutRequest]:
                yield headers[expected]
                for index in range(CHUNKS):  # still sending when the refusal comes
                    yield _chunk(index, b"x" * 1024)

            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.PutFile(requests(), timeout=10)
            seen[(expected, err.value.code())] += 1

        for round_ in range(ROUNDS):
            kinds = list(headers)
            await asyncio.gather(*(refused_put(kinds[(round_ + i) % 2]) for i in range(AT_ONCE)))
    wrong = {pair: n for pair, n in seen.items() if pair[0] != pair[1]}
    assert not wrong, f"refusals reported as another status: {wrong}"


def _chunk(index: int, data: bytes) -> pb.PutRequest:
    return pb.PutRequest(chunk=pb.PutChunk(index=index, data=data))
