"""A name belongs to the key that first published it: other keys can neither replace nor
remove it, not through its owner and not by a member pushing a made-up version through
repair. Real peers on loopback gRPC."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.files.manifest import Manifest
from chordshare.files.messages import FileError, FileVersion, PutHeader, Refusal
from chordshare.files.publisher import Signer
from chordshare.sharing import chunking, putting
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers


@pytest.fixture
async def files() -> AsyncIterator[GrpcFilePeers]:
    peers = GrpcFilePeers(timeout=5.0)
    yield peers
    await peers.close()


def client(peer: SharingPeer, files: GrpcFilePeers, signer: Signer | None) -> FileClient:
    return FileClient(NodeRing(peer.server.node), files, signer=signer)


def holders(net: PeerNetwork, name: str) -> list[SharingPeer]:
    return [p for p in net.live() if p.store.manifest(name) is not None]


def a_file(tmp_path: Path, name: str, size: int) -> tuple[Path, bytes]:
    data = secrets.token_bytes(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


async def no_chunks() -> AsyncIterator[tuple[int, bytes]]:
    return
    yield  # an async generator that yields nothing


@pytest.mark.parametrize("size", [3_000, 300_000], ids=["small", "streamed"])
async def test_only_the_publishers_key_replaces_or_removes_a_file(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path, size: int
) -> None:
    peers = await net.ring(3)
    alice, bob = Signer.generate(), Signer.generate()
    path, data = a_file(tmp_path, "notes.bin", size)
    stored = (await client(peers[0], files, alice).put(path)).manifest
    assert stored.claim is not None and stored.claim.publisher == alice.publisher
    await wait_until(lambda: len(holders(net, "notes.bin")) == 3, 10, "3 copies")

    (tmp_path / "b").mkdir()
    other, _ = a_file(tmp_path / "b", "notes.bin", size)
    for signer in (bob, None):
        as_bob = client(peers[1], files, signer)
        with pytest.raises(FileError) as refused:
            await as_bob.put(other, replace=True)
        assert refused.value.refusal is Refusal.PERMISSION_DENIED
        assert "belongs to key" in refused.value.message
        with pytest.raises(FileError) as refused:
            await as_bob.remove("notes.bin")
        assert refused.value.refusal is Refusal.PERMISSION_DENIED

    out = tmp_path / "out.bin"
    await client(peers[2], files, None).get("notes.bin", out)
    assert out.read_bytes() == data
    assert all(p.store.manifest("notes.bin").sha256 == stored.sha256 for p in net.live())

    replaced = (await client(peers[1], files, alice).put(other, replace=True)).manifest
    assert replaced.sha256 != stored.sha256 and replaced.claim is not None
    await client(peers[2], files, alice).remove("notes.bin")
    await wait_until(lambda: not holders(net, "notes.bin"), 10, "the removal everywhere")


async def test_an_admin_key_may_remove_any_file(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path
) -> None:
    admin, alice = Signer.generate(), Signer.generate()
    first = await net.start(admin_keys=frozenset({admin.publisher}))
    for _ in range(2):
        await net.start(join=first.server.node.me.address, admin_keys=frozenset({admin.publisher}))
    await wait_until(net.converged, 20, "3 peers to converge")
    path, _ = a_file(tmp_path, "spam.txt", 100)
    await client(first, files, alice).put(path)
    await client(first, files, admin).remove("spam.txt")
    await wait_until(lambda: not holders(net, "spam.txt"), 10, "the removal everywhere")


async def test_a_client_whose_clock_is_behind_signs_again_above_the_version_held(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    peers = await net.ring(2)
    alice = Signer.generate()
    path, _ = a_file(tmp_path, "clock.txt", 100)
    first = (await client(peers[0], files, alice).put(path)).manifest
    # This machine's clock an hour behind the owner's: the version it signs is older than
    # the one held, the owner says which, and the client signs again above it.
    behind = SimpleNamespace(time=lambda: first.created - 3600.0, monotonic=time.monotonic)
    monkeypatch.setattr(putting, "time", behind)
    monkeypatch.setattr(chunking, "time", behind)
    path.write_bytes(b"newer bytes")
    second = (await client(peers[1], files, alice).put(path, replace=True)).manifest
    assert second.created > first.created
    await client(peers[1], files, alice).remove("clock.txt")


async def forged_push(
    files: GrpcFilePeers, address: str, manifest: Manifest, data: bytes
) -> FileError:
    async def chunks() -> AsyncIterator[tuple[int, bytes]]:
        size = manifest.chunk_size
        for index in range(len(manifest.chunks)):
            yield index, data[index * size : (index + 1) * size]

    header = PutHeader(manifest, replica=True)
    with pytest.raises(FileError) as refused:
        await files.at(address).put_file(header, chunks())
    return refused.value


async def test_a_member_cannot_push_a_forged_version_to_the_holders(
    net: PeerNetwork, files: GrpcFilePeers, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    peers = await net.ring(4)
    alice, mallory = Signer.generate(), Signer.generate()
    path, data = a_file(tmp_path, "deed.txt", 5_000)
    stored = (await client(peers[0], files, alice).put(path)).manifest
    await wait_until(lambda: len(holders(net, "deed.txt")) == 3, 10, "3 copies")
    honest = holders(net, "deed.txt")

    evil = b"this house now belongs to mallory"
    made_up = chunking.manifest_of(evil, "deed.txt", stored.chunk_size, stored.created + 60)
    by_mallory = replace(made_up, claim=mallory.sign("deed.txt", made_up.created, made_up.content))
    # Alice's signature, taken from her version, on other bytes; and her own old version
    # passed on again as a newer one.
    stolen = replace(made_up, claim=stored.claim)
    replayed = replace(stored, created=stored.created + 120)
    for peer in honest:
        address = peer.server.node.me.address
        for forged, body in ((by_mallory, evil), (stolen, evil), (replayed, data)):
            err = await forged_push(files, address, forged, body)
            assert err.refusal is Refusal.PERMISSION_DENIED, (address, err.message)
        removal = FileVersion(
            "deed.txt",
            stored.created + 60,
            b"",
            True,
            claim=mallory.sign("deed.txt", stored.created + 60, b"", deleted=True),
        )
        with pytest.raises(FileError) as refused:
            await files.at(address).delete("deed.txt", removal.version, True, removal.claim)
        assert refused.value.refusal is Refusal.PERMISSION_DENIED
        answer = await files.at(address).offer([removal])
        assert answer.wanted == () and [v.version for v in answer.newer] == [stored.created]

    # A member that holds a forged version and a forged removal offers them every repair
    # round: no honest holder takes either.
    member = next(p for p in net.live() if p not in honest)
    for index, digest in enumerate(by_mallory.chunks):
        member.store.put_chunk(evil[index * stored.chunk_size :][: stored.chunk_size], digest)
    member.store.commit(by_mallory)
    gone = "other.txt"
    other, _ = a_file(tmp_path, gone, 100)
    await client(peers[0], files, alice).put(other)
    await wait_until(lambda: len(holders(net, gone)) == 3, 10, "3 copies")
    keeping = [p for p in holders(net, gone) if p is not member]
    later = stored.created + 3600
    member.store.remove(gone, later, None, mallory.sign(gone, later, b"", deleted=True))
    rounds = member.replicator.full_rounds if member.replicator else 0
    await wait_until(
        lambda: member.replicator is not None and member.replicator.full_rounds >= rounds + 3,
        20,
        "three repair rounds of the member",
    )
    for peer in honest:
        assert peer.store.manifest("deed.txt") == stored
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("refused a version of 'deed.txt' a peer offered" in line for line in said)
    assert any(f"refused a version of {gone!r} a peer offered" in line for line in said)
    assert all(p.store.manifest(gone) is not None for p in keeping)
