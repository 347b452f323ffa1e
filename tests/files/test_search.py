"""Search by the beginnings of words and get by a short content hash: what a node publishes
for a file always answers what a person may type for it, whole-word matches come first,
and a short hash that fits several files lists them; then the same on real peers."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from peernet import PeerNetwork

from chordshare.files.manifest import Manifest
from chordshare.files.messages import FileError, IndexEntry, Refusal
from chordshare.files.names import MIN_PREFIX, keywords
from chordshare.files.search import (
    ambiguous,
    content_candidates,
    content_query_key,
    index_records,
    parse_content_address,
    ranked,
    word_query_keys,
)
from chordshare.sharing.client import FileClient
from chordshare.sharing.ring import NodeRing
from chordshare.transport.files_grpc import GrpcFilePeers

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=30)
NAME = st.lists(WORD, min_size=1, max_size=4).map("-".join).map(lambda n: n + ".bin")


def manifest_of(name: str, data: bytes = b"x") -> Manifest:
    digest = hashlib.sha256(data).digest()
    return Manifest(name, len(data), digest, 1024, (digest,), 1.0)


def entry(name: str, data: bytes = b"x") -> IndexEntry:
    return IndexEntry(name, len(data), hashlib.sha256(data).digest())


@given(NAME, st.data())
def test_what_a_file_publishes_answers_every_beginning_of_its_words(
    name: str, data: st.DataObject
) -> None:
    published = {record.key for record in index_records(manifest_of(name))}
    word = data.draw(st.sampled_from(keywords(name)))
    length = data.draw(st.integers(min_value=1, max_value=len(word)))
    typed = word[:length]
    findable = bool(published & set(word_query_keys(typed)))
    # A whole word always (the beginning may be another word of the name, as "b" of
    # "b.bin"); a beginning from MIN_PREFIX characters on.
    whole_word = typed in keywords(name)
    assert findable == (whole_word or length >= MIN_PREFIX)


def test_a_long_word_is_found_from_every_beginning_of_three_characters_on() -> None:
    word = "supercalifragilisticexpialidocious"
    published = {record.key for record in index_records(manifest_of(f"{word}.txt"))}
    for length in range(MIN_PREFIX, len(word) + 1):
        assert published & set(word_query_keys(word[:length])), length


@given(st.binary(max_size=64), st.integers(min_value=8, max_value=64))
def test_what_a_file_publishes_answers_every_long_enough_start_of_its_hash(
    data: bytes, digits: int
) -> None:
    manifest = manifest_of("f.bin", data)
    published = {record.key for record in index_records(manifest)}
    typed = manifest.sha256.hex()[:digits]
    assert parse_content_address("sha256:" + typed.upper()) == typed
    assert content_query_key(typed) in published


def test_content_addresses_are_8_to_64_hex_digits() -> None:
    assert parse_content_address("notes.txt") is None
    for bad in ("sha256:", "sha256:abc1234", "sha256:" + "a" * 65, "sha256:abcdefgz"):
        with pytest.raises(ValueError, match="8 to 64 hex digits"):
            parse_content_address(bad)


@given(st.lists(NAME, max_size=12, unique=True), st.lists(WORD, min_size=1, max_size=2))
def test_ranked_keeps_only_matches_and_puts_whole_words_first(
    names: list[str], words: list[str]
) -> None:
    words = keywords(" ".join(words))
    found = ranked([entry(n) for n in names], words)
    for hit in found:
        name_words = keywords(hit.name)
        for word in words:
            assert word in name_words or (
                len(word) >= MIN_PREFIX and any(w.startswith(word) for w in name_words)
            )
    whole = [sum(w in keywords(h.name) for w in words) for h in found]
    assert whole == sorted(whole, reverse=True)
    # Every name that has all the words themselves is found.
    assert {n for n in names if set(words) <= set(keywords(n))} <= {h.name for h in found}


def test_a_search_word_finds_the_words_it_begins_whole_words_first() -> None:
    entries = [entry(n) for n in ("big300.bin", "big.txt", "a-big-plan.txt", "bigger.md", "b.c")]
    assert [e.name for e in ranked(entries, ["big"])] == [
        "a-big-plan.txt",
        "big.txt",
        "big300.bin",
        "bigger.md",
    ]
    assert ranked(entries, ["bi"]) == []  # too short to stand for the words it begins


def test_a_short_hash_that_fits_several_files_lists_them() -> None:
    one, two = entry("a.txt", b"1"), entry("b.txt", b"2")
    forged = IndexEntry("c.txt", 1, one.sha256[:4] + two.sha256[4:])  # shares 8 digits
    digits = one.sha256.hex()[:8]
    candidates = content_candidates([one, two, forged], digits)
    assert set(candidates) == {one.sha256, forged.sha256}
    message = ambiguous(f"sha256:{digits}", candidates)
    assert "matches 2 files" in message and "a.txt" in message and "c.txt" in message
    assert content_candidates([one, two, forged], one.sha256.hex()) == {one.sha256: ["a.txt"]}


@pytest.fixture
async def peers(tmp_path: Path) -> AsyncIterator[tuple[PeerNetwork, GrpcFilePeers]]:
    network = PeerNetwork(tmp_path / "nodes")
    calls = GrpcFilePeers()
    yield network, calls
    await calls.close()
    await network.close()


async def test_search_by_beginnings_and_get_by_a_short_hash_on_real_peers(
    peers: tuple[PeerNetwork, GrpcFilePeers], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    network, calls = peers
    first, _, _ = await network.ring(3)
    client = FileClient(NodeRing(first.server.node), calls)
    contents = {}
    for name in ("big300.bin", "big.txt", "small.txt"):
        contents[name] = hashlib.shake_256(name.encode()).digest(5000)
        (tmp_path / name).write_bytes(contents[name])
        await client.put(tmp_path / name)

    give_up = time.monotonic() + 15  # the index records follow the puts
    while (found := [hit.name for hit in await client.search("BIG")]) != [
        "big.txt",
        "big300.bin",
    ]:
        assert time.monotonic() < give_up, f"search found {found}"
        await asyncio.sleep(0.1)
    assert await client.search("big3") == await client.search("big300")

    digits = hashlib.sha256(contents["big300.bin"]).hexdigest()[:16]  # as tables show it
    by_prefix = await client.find(f"sha256:{digits}")
    assert by_prefix.manifest.name == "big300.bin"
    with pytest.raises(FileError) as missing:
        await client.find("sha256:00000000")
    assert missing.value.refusal is Refusal.NOT_FOUND

    # Two contents whose hashes begin alike (forged: a real pair would take 2^32 tries).
    real = await client._query(content_query_key(digits))

    async def crowded(key: str) -> list[IndexEntry]:
        twin = IndexEntry("twin.bin", 1, bytes.fromhex(digits[:8]) + b"\x00" * 28)
        return [*real, twin]

    monkeypatch.setattr(client, "_query", crowded)
    with pytest.raises(FileError) as unclear:
        await client.find(f"sha256:{digits[:8]}")
    assert unclear.value.refusal is Refusal.FAILED_PRECONDITION
    assert "big300.bin" in unclear.value.message and "twin.bin" in unclear.value.message
