"""What any gRPC tool expects of a node, checked from outside with no chordshare code on the
client side: server reflection in v1 and v1alpha that describes every served service well
enough to call it, and grpc.health.v1 (Check and List) covering every served service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as alpha_pb2
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.sharing.peer import SharingPeer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
V1 = "grpc.reflection.v1.ServerReflection"
V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
SERVED = {
    "chordshare.v1.Chord",
    "chordshare.v1.Admin",
    "chordshare.v1.Files",
    "grpc.health.v1.Health",
    V1,
    V1ALPHA,
}


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[PeerNetwork]:
    network = PeerNetwork(tmp_path / "nodes")
    yield network
    await network.close()


class Reflection:
    """A reflection client for one version of the service, from its message classes."""

    def __init__(
        self, channel: grpc.aio.Channel, service: str, request: type[Message], reply: type[Message]
    ) -> None:
        self.request = request
        self.call = channel.stream_stream(
            f"/{service}/ServerReflectionInfo",
            request_serializer=request.SerializeToString,
            response_deserializer=reply.FromString,
        )

    async def ask(self, **question: Any) -> Any:
        replies = [reply async for reply in self.call(iter([self.request(**question)]), timeout=5)]
        assert len(replies) == 1
        assert not replies[0].HasField("error_response"), replies[0].error_response
        return replies[0]

    async def services(self) -> set[str]:
        reply = await self.ask(list_services="")
        return {service.name for service in reply.list_services_response.service}

    async def describe(self, symbol: str, pool: descriptor_pool.DescriptorPool) -> None:
        """Add the file defining `symbol`, and the files it needs, to `pool`."""
        reply = await self.ask(file_containing_symbol=symbol)
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in reply.file_descriptor_response.file_descriptor_proto
        ]
        pending = {f.name: f for f in files}
        for name in list(pending):
            try:
                pool.FindFileByName(name)
                del pending[name]
            except KeyError:
                pass
        while pending:  # dependencies first, as a pool requires
            ready = [f for f in pending.values() if not set(f.dependency) & set(pending)]
            assert ready, f"files that need each other: {sorted(pending)}"
            for f in ready:
                pool.Add(f)
                del pending[f.name]


def message_classes(pool: descriptor_pool.DescriptorPool, service: str, method: str) -> tuple:
    rpc = pool.FindServiceByName(service).methods_by_name[method]
    return (
        message_factory.GetMessageClass(rpc.input_type),
        message_factory.GetMessageClass(rpc.output_type),
    )


def fields_of(pool: descriptor_pool.DescriptorPool, file_name: str) -> set[tuple[str, str, int]]:
    described = pool.FindFileByName(file_name)
    return {
        (message.name, field.name, field.number)
        for message in described.message_types_by_name.values()
        for field in message.fields
    }


async def test_reflection_v1_describes_chord_for_a_client_without_stubs(
    net: PeerNetwork,
) -> None:
    _, peer = await net.ring(2)
    address = peer.server.node.me.address
    async with grpc.aio.insecure_channel(address) as channel:
        alpha = Reflection(
            channel, V1ALPHA, alpha_pb2.ServerReflectionRequest, alpha_pb2.ServerReflectionResponse
        )
        assert await alpha.services() == SERVED

        # v1's own messages, learnt from the node, are what the client speaks v1 with.
        pool = descriptor_pool.DescriptorPool()
        await alpha.describe(V1, pool)
        v1_file = pool.FindServiceByName(V1).file.name
        alpha_fields = fields_of(descriptor_pool.Default(), alpha_pb2.DESCRIPTOR.name)
        assert fields_of(pool, v1_file) == alpha_fields
        v1 = Reflection(channel, V1, *message_classes(pool, V1, "ServerReflectionInfo"))
        listed = await v1.services()
        assert listed == SERVED

        described = descriptor_pool.DescriptorPool()
        for service in sorted(listed):
            await v1.describe(service, described)
            assert described.FindServiceByName(service).methods

        request, reply_class = message_classes(described, "chordshare.v1.Chord", "Ping")
        ping = channel.unary_unary(
            "/chordshare.v1.Chord/Ping",
            request_serializer=request.SerializeToString,
            response_deserializer=reply_class.FromString,
        )
        reply = await ping(request(), timeout=5)
        assert reply.node.address == address
        assert int.from_bytes(reply.node.id, "big") == peer.server.node.me.id
        assert reply.joined

        request, reply_class = message_classes(described, "chordshare.v1.Chord", "GetInfo")
        info = channel.unary_unary(
            "/chordshare.v1.Chord/GetInfo",
            request_serializer=request.SerializeToString,
            response_deserializer=reply_class.FromString,
        )
        reply = await info(request(), timeout=5)
        assert reply.node.address == address
        assert reply.bits == peer.server.node.space.bits


async def statuses(channel: grpc.aio.Channel, names: set[str]) -> dict[str, int]:
    health = health_pb2_grpc.HealthStub(channel)
    answers = {}
    for name in sorted(names):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        answers[name] = answer.status
    return answers


async def listed_health(channel: grpc.aio.Channel) -> dict[str, int]:
    health = health_pb2_grpc.HealthStub(channel)
    answer = await health.List(health_pb2.HealthListRequest(), timeout=5)
    return {name: status.status for name, status in answer.statuses.items()}


async def test_health_covers_every_served_service_while_on_the_ring(
    net: PeerNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _, peer = await net.ring(2)
    every = {"", *SERVED}
    async with grpc.aio.insecure_channel(peer.server.node.me.address) as channel:
        assert await statuses(channel, every) == dict.fromkeys(every, SERVING)
        assert await listed_health(channel) == dict.fromkeys(every, SERVING)

        health = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

        await peer.server.node.leave()
        assert await statuses(channel, every) == dict.fromkeys(every, NOT_SERVING)
        assert await listed_health(channel) == dict.fromkeys(every, NOT_SERVING)

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def test_a_stopping_node_reports_not_serving(net: PeerNetwork) -> None:
    peer: SharingPeer = await net.start()
    await wait_until(lambda: peer.server.node.joined, 5, "the node to be on its ring")
    assert set(peer.server.health.statuses().values()) == {SERVING}
    await peer.stop(graceful=False)
    assert peer.server.health.statuses() == dict.fromkeys({"", *SERVED}, NOT_SERVING)
