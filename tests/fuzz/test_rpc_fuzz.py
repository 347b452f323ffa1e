"""Every RPC of the Chord and Files services, fed what a broken or hostile peer might send:
random bytes as the serialized request, and well-formed messages with random field values
(ids of any length, huge and negative numbers, NaN, random text, repeated fields). A handler
that crashes answers UNKNOWN or INTERNAL; that never happens, the node keeps answering, and
the ring stays whole. Runs against a ring of two whole peers on loopback."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.v1 import chord_pb2, files_pb2

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVICES = [
    chord_pb2.DESCRIPTOR.services_by_name["Chord"],
    files_pb2.DESCRIPTOR.services_by_name["Files"],
]
METHODS = [m for service in SERVICES for m in service.methods]
CRASHED = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
CALL_TIMEOUT = 20.0
FUZZ = settings(
    # About 15 s in all on an idle machine; CHORDSHARE_FUZZ_EXAMPLES=500 for a longer hunt.
    max_examples=int(os.environ.get("CHORDSHARE_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def path_of(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


# A strategy for any message of a descriptor.

_INTS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}

# Bytes of the lengths the protocol means (ring ids of 20, SHA-256 of 32) besides any.
_BYTES = st.one_of(
    st.binary(max_size=48),
    st.binary(min_size=20, max_size=20),
    st.binary(min_size=32, max_size=32),
)
# Text that is sometimes an address, a file name or an index key, so calls get past the
# first checks.
_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["127.0.0.1:1", "[::1]:9", "localhost:65535", "a.txt", "word:a", ".."]),
)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in _INTS:
        low, high = _INTS[kind]
        return st.one_of(st.integers(low, high), st.sampled_from([low, high, 0, 1]))
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return st.floats()
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if kind == FieldDescriptor.TYPE_STRING:
        return _TEXT
    if kind == FieldDescriptor.TYPE_BYTES:
        return _BYTES
    if kind == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values])
    raise NotImplementedError(field.type)


def messages(descriptor: Descriptor, depth: int = 4) -> st.SearchStrategy[Any]:
    """Messages of `descriptor` with any subset of fields set to random values; repeated
    fields get a few elements, nested messages are built the same way (to `depth`)."""
    cls = message_factory.GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth == 0:
                continue
            value = messages(field.message_type, depth - 1)
        else:
            value = _scalar(field)
        if field.is_repeated:
            value = st.lists(value, max_size=4)
        fields[field.name] = value
    # Fields of a oneof set together: the last one set wins, as on the wire.
    return st.fixed_dictionaries({}, optional=fields).map(lambda kw: cls(**kw))


# Calling any method with raw bytes.


async def call_raw(channel: grpc.aio.Channel, method: MethodDescriptor, requests: list[bytes]):
    """Send requests (one unless the method streams them) and return the final status."""
    path = path_of(method)
    if method.client_streaming:
        call = channel.stream_unary(path)(iter(requests), timeout=CALL_TIMEOUT)
    elif method.server_streaming:
        call = channel.unary_stream(path)(requests[0], timeout=CALL_TIMEOUT)
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError:
            pass
    else:
        call = channel.unary_unary(path)(requests[0], timeout=CALL_TIMEOUT)
    try:
        await call
    except grpc.aio.AioRpcError:
        pass
    except TypeError:  # a stream call is not awaitable; its status is below
        pass
    return await call.code(), await call.details()


def crashed(code: grpc.StatusCode, details: str | None, streamed: bool) -> bool:
    """Whether the status says a handler crashed. Bytes that do not parse as the request are
    refused with INVALID_ARGUMENT (transport.malformed; grpc.aio alone answers UNKNOWN). A
    put answered while the client is still sending used to end INTERNAL "Internal error from
    Core" on the client's side (grpc/grpc#36066); the node now drains such streams before it
    answers, so that counts too. A crash also shows in the server's log (`ServerCrashes`)."""
    return code in CRASHED


class ServerCrashes(logging.Handler):
    """What gRPC logs when a servicer method raises: the sure sign of a handler crash."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.crashes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "raised by servicer method" in text:
            self.crashes.append(text)


# A ring of two whole peers, shared by every test of the module.


class Ring:
    def __init__(self, net: PeerNetwork) -> None:
        self.net = net
        self.target = net.peers[0]
        self.channel = grpc.aio.insecure_channel(self.target.server.node.me.address)
        self.crashes = ServerCrashes()
        logging.getLogger("grpc._cython.cygrpc").addHandler(self.crashes)

    async def check(self, method: MethodDescriptor, requests: list[bytes]) -> None:
        code, details = await call_raw(self.channel, method, requests)
        assert not crashed(code, details, method.client_streaming), (
            method.full_name,
            code,
            details,
        )
        assert not self.crashes.crashes, self.crashes.crashes
        # Still answering.
        ping = self.channel.unary_unary(
            path_of(chord_pb2.DESCRIPTOR.services_by_name["Chord"].methods_by_name["Ping"]),
            response_deserializer=chord_pb2.PingReply.FromString,
        )
        reply = await ping(b"", timeout=CALL_TIMEOUT)
        assert reply.joined

    async def intact(self) -> None:
        """Whatever the calls did to the ring's pointers, it heals into one ring again."""
        await wait_until(self.net.converged, 60, "the ring to be whole again")
        assert len(self.net.live()) == 2


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ring(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ring]:
    net = PeerNetwork(Path(tmp_path_factory.mktemp("fuzz")))
    await net.ring(2)
    ring = Ring(net)
    yield ring
    logging.getLogger("grpc._cython.cygrpc").removeHandler(ring.crashes)
    await ring.channel.close()
    await net.close()


def _ids(method: MethodDescriptor) -> str:
    return method.full_name


@pytest.mark.parametrize("method", METHODS, ids=_ids)
@FUZZ
@given(requests=st.lists(st.binary(max_size=200), min_size=1, max_size=4))
@example(requests=[b"\x0a\x01"])  # a length that runs past the end
@example(requests=[b"\xff" * 11])  # a varint longer than any
async def test_random_bytes(ring: Ring, method: MethodDescriptor, requests: list[bytes]) -> None:
    await ring.check(method, requests)


def _serialized(method: MethodDescriptor) -> st.SearchStrategy[list[bytes]]:
    one = messages(method.input_type).map(lambda m: m.SerializeToString())
    most = 4 if method.client_streaming else 1
    return st.lists(one, min_size=1, max_size=most)


@pytest.mark.parametrize("method", METHODS, ids=_ids)
@FUZZ
@given(data=st.data())
async def test_random_messages(ring: Ring, method: MethodDescriptor, data: st.DataObject) -> None:
    await ring.check(method, data.draw(_serialized(method)))


@st.composite
def plausible_puts(draw: st.DrawFn) -> list[bytes]:
    """A put whose header is consistent (so the service is reached) and whose chunks are
    right, wrong, repeated, out of range, short or missing, with any flags and version."""
    data = draw(st.binary(max_size=300))
    chunk_size = draw(st.integers(1, 64))
    pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    manifest = files_pb2.Manifest(
        name=draw(_TEXT),
        size=len(data),
        sha256=hashlib.sha256(data).digest(),
        chunk_size=chunk_size,
        chunks=[hashlib.sha256(p).digest() for p in pieces],
        created=draw(st.floats()),
    )
    header = files_pb2.PutHeader(
        manifest=manifest, replace=draw(st.booleans()), replica=draw(st.booleans())
    )
    parts = [files_pb2.PutRequest(header=header)]
    for _ in range(draw(st.integers(0, len(pieces) + 2))):
        index = draw(st.integers(0, len(pieces) + 1))
        good = pieces[index] if index < len(pieces) else b""
        payload = draw(st.one_of(st.just(good), _BYTES))
        parts.append(files_pb2.PutRequest(chunk=files_pb2.PutChunk(index=index, data=payload)))
    return [part.SerializeToString() for part in parts]


@FUZZ
@given(requests=plausible_puts())
async def test_plausible_puts(ring: Ring, requests: list[bytes]) -> None:
    put = next(m for m in METHODS if m.name == "PutFile")
    await ring.check(put, requests)


REGRESSIONS: list[tuple[str, list[Any]]] = [
    # A NaN version reached the catalog (NOT NULL constraint): UNKNOWN.
    ("Delete", [files_pb2.DeleteRequest(name="a", version=math.nan, replica=True)]),
    (
        "Offer",
        [
            files_pb2.OfferRequest(
                files=[files_pb2.FileVersion(name="a", version=math.nan, deleted=True)]
            )
        ],
    ),
]


@pytest.mark.parametrize(("name", "requests"), REGRESSIONS, ids=[r[0] for r in REGRESSIONS])
async def test_messages_that_crashed_a_handler(ring: Ring, name: str, requests: list[Any]) -> None:
    method = next(m for m in METHODS if m.name == name)
    await ring.check(method, [r.SerializeToString() for r in requests])


async def test_the_ring_survives_the_fuzzing(ring: Ring) -> None:
    await ring.intact()
