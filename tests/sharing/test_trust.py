"""Who is trusted for what: a putter and a peer pushing a copy are checked byte by byte, and
what a node lists and indexes is what it hashed itself. Real peers on loopback gRPC."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from peernet import PeerNetwork, store_directly
from waiting import wait_until

from chordshare.files.manifest import Manifest
from chordshare.files.messages import FileError, PutHeader, Refusal
from chordshare.files.placement import content_index_key
from chordshare.sharing.chunking import manifest_of
from chordshare.sharing.peer import SharingPeer
from chordshare.transport.files_grpc import GrpcFilePeers

CHUNK = 16 * 1024  # six chunks: over SMALL_PUT, so a put streams
DATA = hashlib.shake_256(b"trust").digest(5 * CHUNK + 100)


@pytest.fixture
async def peers() -> AsyncIterator[GrpcFilePeers]:
    grpc_peers = GrpcFilePeers(timeout=5.0)
    yield grpc_peers
    await grpc_peers.close()


async def chunks_of(data: bytes, chunk: int = CHUNK) -> AsyncIterator[tuple[int, bytes]]:
    for index, start in enumerate(range(0, len(data), chunk)):
        yield index, data[start : start + chunk]


def nothing_kept(peer: SharingPeer, name: str) -> None:
    assert peer.store.manifest(name) is None
    assert peer.store.used_bytes() == 0


@pytest.mark.parametrize(
    ("lie", "words"),
    [
        ("whole", "do not add up to its SHA-256"),
        ("chunk", "chunk 2"),
    ],
)
async def test_a_putter_whose_manifest_lies_is_refused_and_leaves_nothing(
    net: PeerNetwork, peers: GrpcFilePeers, lie: str, words: str
) -> None:
    [peer] = await net.ring(1)
    honest = manifest_of(DATA, "lies.bin", CHUNK)
    if lie == "whole":
        lying = replace(honest, sha256=hashlib.sha256(b"other bytes").digest())
    else:
        chunks = list(honest.chunks)
        chunks[2] = hashlib.sha256(b"not chunk 2").digest()
        lying = replace(honest, chunks=tuple(chunks))
    with pytest.raises(FileError) as refused:
        await peers.at(peer.server.node.me.address).put_file(PutHeader(lying), chunks_of(DATA))
    assert refused.value.refusal is Refusal.DATA_LOSS
    assert words in refused.value.message
    nothing_kept(peer, "lies.bin")
    assert not peer.service.soft.index.get(content_index_key(lying.sha256))


async def test_a_put_without_the_whole_file_hash_is_indexed_by_the_hash_of_its_bytes(
    net: PeerNetwork, peers: GrpcFilePeers
) -> None:
    """A client hashes each byte once and leaves the whole file's SHA-256 to the owner: the
    file is listed, and found by content, under the hash the owner computed."""
    [peer] = await net.ring(1)
    manifest = replace(manifest_of(DATA, "plain.bin", CHUNK), sha256=b"")
    outcome = await peers.at(peer.server.node.me.address).put_file(
        PutHeader(manifest), chunks_of(DATA)
    )
    whole = hashlib.sha256(DATA).digest()
    assert outcome.manifest.sha256 == whole
    stored = peer.store.manifest("plain.bin")
    assert stored is not None and stored.sha256 == whole and stored.chunks == manifest.chunks
    key = content_index_key(whole)
    await wait_until(lambda: bool(peer.service.soft.index.get(key)), 5.0, "the sha256 record")
    # Put again, still without the whole hash: the same bytes, found unchanged.
    again = await peers.at(peer.server.node.me.address).put_file(
        PutHeader(manifest), chunks_of(DATA)
    )
    assert again.unchanged and again.manifest.sha256 == whole


@pytest.mark.parametrize("forgery", ["bytes", "whole"])
async def test_a_forged_copy_pushed_in_repair_is_refused(
    net: PeerNetwork, peers: GrpcFilePeers, forgery: str
) -> None:
    """A peer pushes a newer version of a name whose bytes do not match what its manifest
    says: the holder keeps the version it has."""
    [peer] = await net.ring(1)
    kept = store_directly(peer, "held.bin", DATA, CHUNK)
    other = hashlib.shake_256(b"forged").digest(len(DATA))
    forged = replace(manifest_of(other, "held.bin", CHUNK), created=kept.created + 100)
    sent = DATA  # bytes that are not the forged manifest's
    if forgery == "whole":
        forged = replace(forged, sha256=kept.sha256)  # chunks of `other`, the hash of DATA
        sent = other
    with pytest.raises(FileError) as refused:
        await peers.at(peer.server.node.me.address).put_file(
            PutHeader(forged, replica=True), chunks_of(sent)
        )
    assert refused.value.refusal is Refusal.DATA_LOSS
    assert peer.store.manifest("held.bin") == kept


async def test_a_copy_pushed_in_repair_must_carry_the_whole_file_hash(
    net: PeerNetwork, peers: GrpcFilePeers
) -> None:
    [peer] = await net.ring(1)
    manifest = replace(manifest_of(DATA, "copy.bin", CHUNK), sha256=b"")
    with pytest.raises(FileError) as refused:
        await peers.at(peer.server.node.me.address).put_file(
            PutHeader(manifest, replica=True), chunks_of(DATA)
        )
    assert refused.value.refusal is Refusal.INVALID_ARGUMENT
    nothing_kept(peer, "copy.bin")


DIGESTS = st.binary(min_size=32, max_size=32)


@given(st.text(min_size=1), st.text(min_size=1), st.floats(0, 1e9), st.floats(0, 1e9))
def test_a_manifest_id_names_the_bytes_not_the_name_or_version(
    name: str, other_name: str, created: float, other_created: float
) -> None:
    first = Manifest(name, 10, bytes(32), 4, (bytes(32),) * 3, created)
    second = replace(first, name=other_name, created=other_created)
    assert first.id == second.id and len(first.id) == 32


@given(
    st.integers(0, 10**12),
    st.integers(1, 2**23),
    DIGESTS,
    st.lists(DIGESTS, max_size=4),
    st.sampled_from(["size", "chunk_size", "sha256", "chunks"]),
    DIGESTS,
)
def test_a_manifest_id_changes_with_anything_it_says_of_the_bytes(
    size: int, chunk_size: int, sha256: bytes, chunks: list[bytes], change: str, fresh: bytes
) -> None:
    manifest = Manifest("f", size, sha256, chunk_size, tuple(chunks), 0.0)
    if change == "size":
        other = replace(manifest, size=size + 1)
    elif change == "chunk_size":
        other = replace(manifest, chunk_size=chunk_size + 1)
    elif change == "sha256":
        other = replace(manifest, sha256=hashlib.sha256(sha256).digest())
    else:
        other = replace(manifest, chunks=(*chunks, fresh))
    assert other.id != manifest.id
