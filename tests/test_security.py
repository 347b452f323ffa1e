"""Peer authentication on real gRPC nodes: the cluster token and mutual TLS.

A caller without the network's token (or certificate) must learn nothing: every method of
every service answers UNAUTHENTICATED (or the TLS handshake fails) with no id in sight,
while grpc.health.v1 keeps answering for orchestrators.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.node.runtime import JoinError
from chordshare.sharing.client import FileClient
from chordshare.sharing.ring import NodeRing
from chordshare.transport.base import PeerError
from chordshare.transport.certs import make_certificates
from chordshare.transport.client import NodeClient
from chordshare.transport.files_grpc import GrpcFilePeers
from chordshare.transport.security import PeerSecurity, SecurityError
from chordshare.v1 import admin_pb2, chord_pb2, files_pb2

TOKEN = secrets.token_urlsafe(24)
SERVICES = [
    chord_pb2.DESCRIPTOR.services_by_name["Chord"],
    admin_pb2.DESCRIPTOR.services_by_name["Admin"],
    files_pb2.DESCRIPTOR.services_by_name["Files"],
]


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[PeerNetwork]:
    network = PeerNetwork(tmp_path / "nodes")
    yield network
    await network.close()


def every_method() -> list[tuple[str, bool, bool]]:
    return [
        (f"/{service.full_name}/{method.name}", method.client_streaming, method.server_streaming)
        for service in SERVICES
        for method in service.methods
    ]


async def call_raw(
    channel: grpc.aio.Channel, path: str, client_streaming: bool, server_streaming: bool
) -> grpc.aio.AioRpcError:
    """Call `path` with an empty request of the right shape; the error it ends with."""
    identity = {"request_serializer": None, "response_deserializer": None}
    try:
        if client_streaming and server_streaming:
            call = channel.stream_stream(path, **identity)(iter([b""]), timeout=5)
            async for _ in call:
                pass
        elif client_streaming:
            await channel.stream_unary(path, **identity)(iter([b""]), timeout=5)
        elif server_streaming:
            async for _ in channel.unary_stream(path, **identity)(b"", timeout=5):
                pass
        else:
            await channel.unary_unary(path, **identity)(b"", timeout=5)
    except grpc.aio.AioRpcError as err:
        return err
    raise AssertionError(f"{path} answered a caller without credentials")


async def test_without_the_token_every_method_is_refused_and_tells_nothing(
    net: PeerNetwork,
) -> None:
    peers = await net.ring(3, security=PeerSecurity(token=TOKEN))
    node = peers[0].server.node
    async with grpc.aio.insecure_channel(node.me.address) as channel:
        for path, client_streaming, server_streaming in every_method():
            err = await call_raw(channel, path, client_streaming, server_streaming)
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED, path
            said = f"{err.details()} {err.trailing_metadata()} {err.initial_metadata()}"
            for peer in peers:
                assert str(peer.server.node.me.id) not in said
        # Health stays open for orchestrators' probes.
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    # A wrong token is no better than none.
    wrong = PeerSecurity(token=TOKEN[::-1] + "x")
    async with wrong.channel(node.me.address, []) as channel:
        err = await call_raw(channel, "/chordshare.v1.Chord/GetInfo", False, False)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_with_the_token_the_ring_and_files_work(net: PeerNetwork, tmp_path: Path) -> None:
    security = PeerSecurity(token=TOKEN)
    peers = await net.ring(3, security=security)
    client = await NodeClient.connect(peers[2].server.node.me.address, security=security)
    try:
        assert len(await client.ring()) == 3
    finally:
        await client.close()
    source = tmp_path / "report.txt"
    source.write_bytes(secrets.token_bytes(300_000))
    files = GrpcFilePeers(security=security)
    try:
        await FileClient(NodeRing(peers[0].server.node), files).put(source)
        out = tmp_path / "back.txt"
        await FileClient(NodeRing(peers[1].server.node), files).get("report.txt", out)
        assert out.read_bytes() == source.read_bytes()
    finally:
        await files.close()


async def test_a_node_without_the_token_cannot_join_and_a_client_is_told_why(
    net: PeerNetwork,
) -> None:
    (first,) = await net.ring(1, security=PeerSecurity(token=TOKEN))
    address = first.server.node.me.address
    with pytest.raises(JoinError, match="cluster token"):
        await net.start(join=address)
    with pytest.raises(PeerError, match="cluster token"):
        await NodeClient.connect(address)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    make_certificates(directory, ["a", "b", "c", "client"], ["127.0.0.1"])
    make_certificates(directory / "stranger", ["rogue"], [])
    return directory


def tls(pki: Path, name: str, ca: Path | None = None, token: str | None = None) -> PeerSecurity:
    return PeerSecurity.load(
        token=token,
        tls_cert=pki / f"{name}.pem",
        tls_key=pki / f"{name}-key.pem",
        tls_ca=ca or pki / "ca.pem",
    )


async def test_mutual_tls_ring_serves_holders_of_the_ca_only(
    net: PeerNetwork, pki: Path, tmp_path: Path
) -> None:
    first = await net.start(security=tls(pki, "a", token=TOKEN))
    address = first.server.node.me.address
    for name in ("b", "c"):
        await net.start(join=address, security=tls(pki, name, token=TOKEN))
    await wait_until(net.converged, 20, "the TLS ring to converge")
    client = await NodeClient.connect(address, security=tls(pki, "client", token=TOKEN))
    try:
        assert len(await client.ring()) == 3
    finally:
        await client.close()
    # No certificate, a certificate from another CA, or plaintext: no answer at all.
    strangers = [
        PeerSecurity(token=TOKEN),
        tls(pki / "stranger", "rogue", ca=pki / "ca.pem", token=TOKEN),
    ]
    for security in strangers:
        with pytest.raises(PeerError):
            await NodeClient.connect(address, deadline=3, security=security)
    # A node with a good certificate but no token still gets UNAUTHENTICATED.
    with pytest.raises(PeerError, match="cluster token"):
        await NodeClient.connect(address, security=tls(pki, "client"))
    # Files too, a get's chunks read in threads (gRPC's blocking API) included.
    source = tmp_path / "secret.bin"
    source.write_bytes(secrets.token_bytes(300_000))
    files = GrpcFilePeers(security=tls(pki, "client", token=TOKEN))
    try:
        await FileClient(NodeRing(first.server.node), files).put(source)
        await FileClient(NodeRing(first.server.node), files).get("secret.bin", tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == source.read_bytes()
    finally:
        await files.close()


def test_settings_that_cannot_work_are_refused_with_a_reason(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert PeerSecurity.load(token_file=token_file).token == TOKEN
    with pytest.raises(SecurityError, match="not both"):
        PeerSecurity.load(token=TOKEN, token_file=token_file)
    with pytest.raises(SecurityError, match="at least 16"):
        PeerSecurity.load(token="short")
    with pytest.raises(SecurityError, match="missing --tls-key"):
        PeerSecurity.load(tls_cert=token_file, tls_ca=token_file)
    with pytest.raises(SecurityError, match="No such file"):
        PeerSecurity.load(token_file=tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SecurityError, match="at least 16"):
        PeerSecurity.load(token_file=empty)
    assert PeerSecurity().describe.startswith("open")


def test_certs_reuse_the_ca_and_refuse_bad_names(tmp_path: Path) -> None:
    first = make_certificates(tmp_path, ["n1"], [])
    ca = first.ca.read_bytes()
    second = make_certificates(tmp_path, ["n2"], ["10.0.0.7", "node2.example"])
    assert first.created_ca and not second.created_ca
    assert second.ca.read_bytes() == ca
    assert (tmp_path / "n2-key.pem").stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError, match="usable name"):
        make_certificates(tmp_path, ["../evil"], [])
