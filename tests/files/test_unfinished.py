"""What an owner keeps of a put cut off, for how long, and what a rerun of it sends
(`files.unfinished`), as properties of the plain decisions."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chordshare.files.manifest import Manifest
from chordshare.files.messages import FileError, PutCutOff, Refusal
from chordshare.files.unfinished import (
    SWEEP_AT_MOST_EVERY,
    UnfinishedPut,
    bytes_held,
    changed_since,
    decode_held,
    encode_held,
    expired,
    held_after,
    kept_after,
    resumable,
    sweep_every,
    to_send,
    to_sweep,
)


def digest(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(8, "big")).digest()


@st.composite
def files(draw: st.DrawFn) -> Manifest:
    """A file's manifest: its chunks named by small numbers, so that two files share some."""
    chunk_size = draw(st.integers(1, 64))
    size = draw(st.integers(1, 40 * chunk_size))
    count = -(-size // chunk_size)
    chunks = tuple(digest(draw(st.integers(0, 50))) for _ in range(count))
    return Manifest("f.bin", size, b"", chunk_size, chunks, 1.0)


@st.composite
def kept_of(draw: st.DrawFn, manifest: Manifest) -> UnfinishedPut:
    """What a put of `manifest` cut off kept: some of its chunks, by index."""
    indexes = draw(st.sets(st.integers(0, manifest.chunk_count - 1), min_size=1))
    held = tuple((i, manifest.chunks[i]) for i in sorted(indexes))
    return UnfinishedPut(manifest.name, manifest.size, manifest.chunk_size, held, 100.0)


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.binary(min_size=32, max_size=32))))
def test_chunks_kept_survive_the_catalog(entries: list[tuple[int, bytes]]) -> None:
    held = tuple(sorted(dict(entries).items()))
    assert decode_held(encode_held(held)) == held


def test_a_cut_record_is_refused() -> None:
    with pytest.raises(ValueError):
        decode_held(b"x" * 35)


@given(st.data(), files())
def test_a_rerun_of_the_same_file_sends_exactly_what_the_owner_lacks(
    data: st.DataObject, manifest: Manifest
) -> None:
    kept = data.draw(kept_of(manifest))
    assert resumable(kept, manifest.size, manifest.chunk_size)
    assert not changed_since(kept, manifest)
    # The owner names as missing every chunk it does not hold (by hash, as MissingChunks).
    on_node = {d for _, d in kept.held}
    missing = [i for i, d in enumerate(manifest.chunks) if d not in on_node]
    sending = to_send(manifest, missing, changed=False)
    assert sending == set(missing)
    assert not sending & {i for i, _ in kept.held}  # nothing kept is sent again
    assert bytes_held(manifest, sending) >= kept.held_bytes
    assert bytes_held(manifest, sending) + sum(manifest.chunk_length(i) for i in sending) == (
        manifest.size
    )


@given(st.data(), files())
def test_a_file_changed_in_a_chunk_kept_is_put_from_the_start(
    data: st.DataObject, manifest: Manifest
) -> None:
    kept = data.draw(kept_of(manifest))
    index, old = data.draw(st.sampled_from(kept.held))
    chunks = list(manifest.chunks)
    chunks[index] = hashlib.sha256(old).digest()  # other bytes at that index
    now = Manifest(manifest.name, manifest.size, b"", manifest.chunk_size, tuple(chunks), 2.0)
    assert changed_since(kept, now)
    sending = to_send(now, [], changed=True)
    assert sending == set(range(now.chunk_count))
    assert bytes_held(now, sending) == 0


@given(st.data(), files(), st.integers(1, 10))
def test_a_file_of_another_size_or_cut_is_not_resumed(
    data: st.DataObject, manifest: Manifest, more: int
) -> None:
    kept = data.draw(kept_of(manifest))
    assert not resumable(kept, manifest.size + more, manifest.chunk_size)
    assert not resumable(kept, manifest.size, manifest.chunk_size + more)
    assert not resumable(None, manifest.size, manifest.chunk_size)
    empty = UnfinishedPut(kept.name, kept.size, kept.chunk_size, (), kept.ended)
    assert not resumable(empty, manifest.size, manifest.chunk_size)


ENDINGS = [
    asyncio.CancelledError(),  # the client went away, or the node is stopping
    TimeoutError(),  # the client stopped sending
    *(FileError(r, "refused") for r in Refusal),
    *(
        PutCutOff(r, "its stream ended early")
        for r in (Refusal.INVALID_ARGUMENT, Refusal.FAILED_PRECONDITION)
    ),
]


@given(st.sampled_from(ENDINGS), st.booleans(), st.sampled_from([0.0, 1.0, 3600.0]))
def test_only_a_clients_put_cut_off_or_turned_away_for_now_is_kept(
    error: BaseException, replica: bool, ttl: float
) -> None:
    kept = kept_after(error, replica, ttl)
    refused = isinstance(error, FileError) and not isinstance(error, PutCutOff)
    for_now = refused and error.refusal in (Refusal.UNAVAILABLE, Refusal.ABORTED)
    assert kept == ((not refused or for_now) and not replica and ttl > 0)


@given(st.data(), files())
def test_a_put_keeps_what_is_on_disk_and_nothing_if_it_stored_nothing(
    data: st.DataObject, manifest: Manifest
) -> None:
    count = manifest.chunk_count
    stored = {i: manifest.chunks[i] for i in data.draw(st.sets(st.integers(0, count - 1)))}
    on_disk = set(data.draw(st.sets(st.sampled_from(manifest.chunks))))
    for promise in (None, manifest):  # its manifest last, or first
        held = dict(held_after(stored, promise, on_disk.__contains__))
        assert all(d in on_disk for d in held.values())
        assert all(manifest.chunks[i] == d for i, d in held.items())
        if not any(d in on_disk for d in stored.values()):
            assert held == {}
        elif promise is None:
            assert held == {i: d for i, d in stored.items() if d in on_disk}
        else:
            assert held == {i: d for i, d in enumerate(manifest.chunks) if d in on_disk}


@given(st.integers(0, 10**6), st.integers(-(10**4), 10**4), st.integers(1, 10**4), st.booleans())
def test_an_unfinished_put_is_dropped_once_its_time_is_up(
    ended: int, later: int, ttl: int, busy: bool
) -> None:
    record = UnfinishedPut("a", 10, 4, ((0, digest(0)),), ended)
    now = ended + later
    gone = to_sweep([record], now, ttl, {"a"} if busy else set())
    if busy:
        assert gone == []  # a rerun under way may be sending what is missing
    elif 0 <= later < ttl:
        assert gone == []
    elif later >= ttl or -later > ttl:
        assert gone == ["a"]
    assert expired(record, now, ttl) == (later >= ttl or -later > ttl)


@given(st.floats(0.0, 1e6))
def test_sweeps_come_often_enough_and_not_too_often(ttl: float) -> None:
    every = sweep_every(ttl)
    assert 0 < every <= SWEEP_AT_MOST_EVERY
    assert every <= max(ttl / 4, 0.05)
