"""The multi-source chunk downloader, against fake peers serving an in-memory file."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import random
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from chordshare.files.manifest import Manifest
from chordshare.files.schedule import MAX_FAILURES, Schedule
from chordshare.sharing import download as download_module
from chordshare.sharing import part_file
from chordshare.sharing.chunking import build_manifest
from chordshare.sharing.download import DownloadError, InMemory, download
from chordshare.sharing.part_file import PartFile

CHUNK = 1024
# A holder is dropped at its MAX_FAILURES-th failed answer; its other lane may have asked
# once more before that.
ASKS_BEFORE_DROPPED = MAX_FAILURES + 1


def make_file(tmp_path: Path, size: int, seed: int = 1) -> tuple[bytes, Manifest]:
    blob = random.Random(seed).randbytes(size)
    source = tmp_path / "source.bin"
    source.write_bytes(blob)
    return blob, build_manifest(source, "song.flac", CHUNK)


class Peer:
    """An honest holder: serves every chunk asked for, after `delay` seconds each."""

    def __init__(self, blob: bytes, delay: float = 0.0) -> None:
        self.blob = blob
        self.delay = delay

    def chunk(self, index: int) -> bytes:
        return self.blob[index * CHUNK : (index + 1) * CHUNK]

    async def serve(self, indexes: Sequence[int]) -> AsyncIterator[tuple[int, bytes]]:
        for index in indexes:
            await asyncio.sleep(self.delay)
            yield index, self.chunk(index)


class Dying(Peer):
    """Serves `lives` chunks in all, then fails every call."""

    def __init__(self, blob: bytes, lives: int) -> None:
        super().__init__(blob)
        self.lives = lives

    async def serve(self, indexes: Sequence[int]) -> AsyncIterator[tuple[int, bytes]]:
        for index in indexes:
            await asyncio.sleep(0)
            if self.lives <= 0:
                raise ConnectionResetError("peer went away")
            self.lives -= 1
            yield index, self.chunk(index)


class Corrupt(Peer):
    def chunk(self, index: int) -> bytes:
        data = bytearray(super().chunk(index))
        data[len(data) // 2] ^= 0xFF
        return bytes(data)


class Hung(Peer):
    async def serve(self, indexes: Sequence[int]) -> AsyncIterator[tuple[int, bytes]]:
        await asyncio.Event().wait()  # never set: the peer stalls forever
        yield 0, b""


class Liar(Peer):
    """Answers with a genuine chunk, but one it was not asked for."""

    async def serve(self, indexes: Sequence[int]) -> AsyncIterator[tuple[int, bytes]]:
        total = -(-len(self.blob) // CHUNK)
        other = next(i for i in range(total) if i not in indexes)
        yield other, self.chunk(other)


class Swarm:
    """The fetcher: routes calls to fake peers, and records what was asked and how many
    chunks each holder had outstanding at once."""

    def __init__(self, peers: dict[str, Peer]) -> None:
        self.peers = peers
        self.calls: dict[str, int] = defaultdict(int)
        self.asked: dict[str, list[int]] = defaultdict(list)
        self.inflight: dict[str, int] = defaultdict(int)
        self.max_inflight: dict[str, int] = defaultdict(int)

    async def fetch(
        self, address: str, file_sha256: bytes, indexes: Sequence[int]
    ) -> AsyncIterator[tuple[int, bytes]]:
        self.calls[address] += 1
        self.asked[address].extend(indexes)
        self.inflight[address] += len(indexes)
        self.max_inflight[address] = max(self.max_inflight[address], self.inflight[address])
        left = len(indexes)
        try:
            async for item in self.peers[address].serve(indexes):
                left -= 1
                self.inflight[address] -= 1
                yield item
        finally:
            self.inflight[address] -= left


async def test_three_holders_share_the_work(tmp_path: Path) -> None:
    blob, manifest = make_file(tmp_path, 40 * CHUNK + 123)
    swarm = Swarm({a: Peer(blob, delay=0.001) for a in ("a:1", "b:1", "c:1")})
    landed: list[int] = []
    out = tmp_path / "got" / "song.flac"

    report = await download(
        manifest, list(swarm.peers), swarm.fetch, out, per_peer_inflight=2, progress=landed.append
    )

    assert out.read_bytes() == blob
    assert not out.with_name("song.flac.part").exists()
    assert report.path == out and report.size == len(blob) and report.sha256 == manifest.sha256
    assert sum(report.sources.values()) == len(blob) == sum(landed)
    assert sum(1 for n in report.sources.values() if n > 0) >= 2
    assert report.resumed_chunks == 0
    # Only endgame copies (fetched again at the tail, when the queue was dry) can count.
    assert report.refetched_chunks <= 3 * 2


async def test_a_holder_that_dies_mid_stream_is_replaced(tmp_path: Path) -> None:
    blob, manifest = make_file(tmp_path, 30 * CHUNK)
    swarm = Swarm({"dies:1": Dying(blob, lives=1), "good:1": Peer(blob, delay=0.001)})

    report = await download(manifest, ["dies:1", "good:1"], swarm.fetch, tmp_path / "out")

    assert (tmp_path / "out").read_bytes() == blob
    assert report.sources["dies:1"] == CHUNK  # its one chunk was good and kept
    assert report.refetched_chunks >= 1  # the rest of its batch went elsewhere
    assert swarm.calls["dies:1"] <= ASKS_BEFORE_DROPPED


async def test_a_corrupt_holder_is_dropped_and_not_credited(tmp_path: Path) -> None:
    blob, manifest = make_file(tmp_path, 20 * CHUNK + 7)
    swarm = Swarm({"bad:1": Corrupt(blob), "good:1": Peer(blob, delay=0.001)})

    report = await download(manifest, ["bad:1", "good:1"], swarm.fetch, tmp_path / "out")

    assert (tmp_path / "out").read_bytes() == blob
    assert report.sources["bad:1"] == 0
    assert report.sources["good:1"] == len(blob)
    assert report.refetched_chunks >= 1
    assert swarm.calls["bad:1"] <= ASKS_BEFORE_DROPPED


async def test_a_hung_holder_is_timed_out(tmp_path: Path) -> None:
    blob, manifest = make_file(tmp_path, 12 * CHUNK)
    swarm = Swarm({"hung:1": Hung(blob), "good:1": Peer(blob, delay=0.001)})

    started = time.monotonic()
    report = await download(
        manifest, ["hung:1", "good:1"], swarm.fetch, tmp_path / "out", chunk_timeout=0.2
    )

    assert time.monotonic() - started < 2
    assert (tmp_path / "out").read_bytes() == blob
    assert report.sources == {"hung:1": 0, "good:1": len(blob)}
    assert report.refetched_chunks >= 1  # the hung holder's batch, fetched again


async def test_a_lone_hung_holder_fails_after_the_timeout(tmp_path: Path) -> None:
    blob, manifest = make_file(tmp_path, 3 * CHUNK)
    swarm = Swarm({"hung:1": Hung(blob)})

    with pytest.raises(DownloadError, match=r"hung:1 dropped: sent nothing for 0\.2s"):
        await download(manifest, ["hung:1"], swarm.fetch, tmp_path / "out", chunk_timeout=0.2)
    assert swarm.inflight["hung:1"] == 0  # its fetch was cancelled


@pytest.mark.parametrize("limit", [1, 3])
async def test_in_flight_chunks_per_holder_are_bounded(tmp_path: Path, limit: int) -> None:
    blob, manifest = make_file(tmp_path, 25 * CHUNK)
    swarm = Swarm({a: Peer(blob, delay=0.001) for a in ("a:1", "b:1", "c:1")})

    await download(
        manifest, list(swarm.peers), swarm.fetch, tmp_path / "out", per_peer_inflight=limit
    )

    assert (tmp_path / "out").read_bytes() == blob
    assert all(1 <= n <= limit for n in swarm.max_inflight.values())
    assert max(swarm.max_inflight.values()) == limit


async def test_all_holders_dead_keeps_the_part_file_and_a_retry_resumes(tmp_path: Path) -> None:
    blob, manifest = make_file(tmp_path, 16 * CHUNK + 500)
    out = tmp_path / "out.bin"
    part = tmp_path / "out.bin.part"
    dead = Swarm({"x:1": Dying(blob, lives=3), "y:1": Dying(blob, lives=2)})

    with pytest.raises(DownloadError) as failed:
        await download(manifest, ["x:1", "y:1"], dead.fetch, out)

    message = str(failed.value)
    assert "\n" not in message
    assert "could not get 12 of 17 chunks" in message
    assert "x:1 dropped: ConnectionResetError: peer went away" in message
    assert part.exists() and not out.exists()
    saved = part.read_bytes()
    kept = {
        i
        for i in range(17)
        if hashlib.sha256(saved[i * CHUNK : (i + 1) * CHUNK]).digest() == manifest.chunks[i]
    }
    assert len(kept) == 5  # the chunks the two holders sent before they died

    good = Swarm({"z:1": Peer(blob)})
    landed: list[int] = []
    report = await download(manifest, ["z:1"], good.fetch, out, progress=landed.append)

    assert out.read_bytes() == blob and not part.exists()
    assert report.resumed_chunks == 5
    assert sorted(good.asked["z:1"]) == sorted(set(range(17)) - kept)
    fetched = len(blob) - sum(manifest.chunk_length(i) for i in kept)
    assert sum(landed) == report.sources["z:1"] == fetched


async def test_a_part_file_is_truncated_and_only_bad_chunks_are_fetched(tmp_path: Path) -> None:
    blob, manifest = make_file(tmp_path, 8 * CHUNK + 10)
    out = tmp_path / "out.bin"
    stale = bytearray(blob)
    stale[3 * CHUNK] ^= 1  # chunk 3 damaged
    out.with_name("out.bin.part").write_bytes(bytes(stale) + b"trailing junk")
    swarm = Swarm({"a:1": Peer(blob)})

    report = await download(manifest, ["a:1"], swarm.fetch, out)

    assert out.read_bytes() == blob
    assert report.resumed_chunks == 8
    assert swarm.asked["a:1"] == [3]


async def test_an_empty_file(tmp_path: Path) -> None:
    _, manifest = make_file(tmp_path, 0)
    swarm = Swarm({"a:1": Peer(b"")})

    report = await download(manifest, ["a:1"], swarm.fetch, tmp_path / "empty")

    assert (tmp_path / "empty").read_bytes() == b""
    assert report.size == 0 and report.sha256 == hashlib.sha256(b"").digest()
    assert swarm.calls == {}
    assert report.resumed_chunks == report.refetched_chunks == 0


async def test_a_holder_sending_a_chunk_not_asked_for_is_dropped(tmp_path: Path) -> None:
    blob, manifest = make_file(tmp_path, 10 * CHUNK)
    swarm = Swarm({"liar:1": Liar(blob), "good:1": Peer(blob, delay=0.001)})

    report = await download(manifest, ["liar:1", "good:1"], swarm.fetch, tmp_path / "out")

    assert (tmp_path / "out").read_bytes() == blob
    assert report.sources["liar:1"] == 0
    assert swarm.calls["liar:1"] <= ASKS_BEFORE_DROPPED


async def test_a_holder_without_the_chunks_is_not_an_error_when_another_has_them(
    tmp_path: Path,
) -> None:
    blob, manifest = make_file(tmp_path, 6 * CHUNK)

    class Empty(Peer):
        async def serve(self, indexes: Sequence[int]) -> AsyncIterator[tuple[int, bytes]]:
            await asyncio.sleep(0)
            return
            yield

    swarm = Swarm({"empty:1": Empty(blob), "good:1": Peer(blob, delay=0.001)})
    report = await download(manifest, ["empty:1", "good:1"], swarm.fetch, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == blob
    assert report.sources["good:1"] == len(blob)

    alone = Swarm({"empty:1": Empty(blob)})
    with pytest.raises(DownloadError, match="empty:1 did not have them"):
        await download(manifest, ["empty:1"], alone.fetch, tmp_path / "again")


class NeverEnds(Peer):
    """Sends every chunk asked for, then keeps the stream open without a word."""

    async def serve(self, indexes: Sequence[int]) -> AsyncIterator[tuple[int, bytes]]:
        async for item in super().serve(indexes):
            yield item
        await asyncio.Event().wait()


async def test_a_stream_that_never_ends_after_its_chunks_is_not_waited_on(
    tmp_path: Path,
) -> None:
    """The downloader reads each stream to its end (so no call is left half-read), but a
    holder that sent everything asked and then hangs is only waited on for a moment: it is
    not dropped, and the download does not take its chunk timeout."""
    blob, manifest = make_file(tmp_path, 6 * CHUNK)
    swarm = Swarm({"quiet:1": NeverEnds(blob)})
    started = time.monotonic()

    report = await download(
        manifest,
        ["quiet:1"],
        swarm.fetch,
        tmp_path / "out",
        per_peer_inflight=8,
        chunk_timeout=30.0,
    )

    assert (tmp_path / "out").read_bytes() == blob
    assert report.sources["quiet:1"] == len(blob) and report.refetched_chunks == 0
    assert time.monotonic() - started < 15.0  # a chunk timeout would be 30 s


async def test_a_chunk_sent_after_the_batch_is_complete_drops_the_holder(
    tmp_path: Path,
) -> None:
    """Reading on to the stream's end still checks what comes: a chunk nobody asked for
    after the last one asked drops the holder, and its chunks come from another."""

    class Chatty(Peer):
        async def serve(self, indexes: Sequence[int]) -> AsyncIterator[tuple[int, bytes]]:
            async for item in super().serve(indexes):
                yield item
            yield indexes[0], self.chunk(indexes[0])  # the same chunk again

    blob, manifest = make_file(tmp_path, 12 * CHUNK)
    swarm = Swarm({"chatty:1": Chatty(blob), "good:1": Peer(blob, delay=0.002)})

    report = await download(manifest, ["chatty:1", "good:1"], swarm.fetch, tmp_path / "out")

    assert (tmp_path / "out").read_bytes() == blob
    assert swarm.calls["chatty:1"] <= ASKS_BEFORE_DROPPED
    assert report.sources["good:1"] > 0


async def test_a_full_local_disk_names_the_file_and_a_retry_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob, manifest = make_file(tmp_path, 16 * CHUNK)
    out = tmp_path / "out.bin"
    real_write = PartFile.write
    room = [5]  # chunks the disk takes before it is full
    lock = threading.Lock()  # writes run in several threads

    def filling(self: PartFile, data: bytes, offset: int) -> None:
        with lock:
            if room[0] == 0:
                raise OSError(errno.ENOSPC, "No space left on device")  # names no file
            room[0] -= 1
        real_write(self, data, offset)

    monkeypatch.setattr(PartFile, "write", filling)
    swarm = Swarm({"x:1": Peer(blob)})
    with pytest.raises(OSError) as full:
        await download(manifest, ["x:1"], swarm.fetch, out)
    assert full.value.errno == errno.ENOSPC
    assert full.value.filename == str(tmp_path / "out.bin.part")
    assert "get again to resume" in str(full.value) and "\n" not in str(full.value)
    assert not out.exists()

    room[0] = 100  # room made
    report = await download(manifest, ["x:1"], Swarm({"x:1": Peer(blob)}).fetch, out)
    assert out.read_bytes() == blob
    assert report.resumed_chunks == 5


class Rotten(Peer):
    """Sends wrong bytes for the chunks in `rotten` (as a holder whose disk damaged them
    would), the right ones for every other."""

    def __init__(self, blob: bytes, rotten: set[int], delay: float = 0.0) -> None:
        super().__init__(blob, delay)
        self.rotten = rotten

    def chunk(self, index: int) -> bytes:
        data = super().chunk(index)
        return bytes(b ^ 0x5A for b in data) if index in self.rotten else data


async def test_a_chunk_with_wrong_bytes_is_asked_of_another_holder(tmp_path: Path) -> None:
    """One damaged chunk at a holder: that chunk comes from another holder, and the holder
    keeps serving the others (it is not dropped for one chunk)."""
    blob, manifest = make_file(tmp_path, 40 * CHUNK)
    swarm = Swarm({"rotten:1": Rotten(blob, {3}), "good:1": Peer(blob, delay=0.005)})
    out = tmp_path / "out"

    report = await download(manifest, list(swarm.peers), swarm.fetch, out, per_peer_inflight=4)

    assert out.read_bytes() == blob
    assert swarm.asked["rotten:1"].count(3) == 1
    assert 3 in swarm.asked["good:1"]
    assert report.sources["rotten:1"] > 10 * CHUNK  # it kept serving after the bad chunk
    assert sum(report.sources.values()) == len(blob)


async def test_a_chunk_every_holder_lies_about_fails_the_get_naming_it(tmp_path: Path) -> None:
    blob, manifest = make_file(tmp_path, 12 * CHUNK + 3)
    swarm = Swarm({a: Rotten(blob, {5}) for a in ("a:1", "b:1")})
    out = tmp_path / "out"

    with pytest.raises(DownloadError) as failed:
        await download(manifest, list(swarm.peers), swarm.fetch, out)

    message = str(failed.value)
    assert "could not get 1 of 13 chunks of 'song.flac' (chunks 5)" in message
    assert "a:1 sent chunk 5, which failed its SHA-256 check" in message
    assert "b:1 sent chunk 5, which failed its SHA-256 check" in message
    assert not out.exists()
    # Every other chunk is kept for the next get.
    report = await download(manifest, ["c:1"], Swarm({"c:1": Peer(blob)}).fetch, out)
    assert out.read_bytes() == blob
    assert report.resumed_chunks == 12 and report.sources["c:1"] == CHUNK


async def test_an_interrupted_get_resumes_where_it_stopped(tmp_path: Path) -> None:
    blob, manifest = make_file(tmp_path, 30 * CHUNK)
    out = tmp_path / "out"
    part = tmp_path / "out.part"
    landed: list[int] = []
    five = asyncio.Event()

    def progress(nbytes: int) -> None:
        landed.append(nbytes)
        if len(landed) == 5:
            five.set()

    slow = Swarm({"a:1": Peer(blob, delay=0.01)})
    get = asyncio.create_task(
        download(manifest, ["a:1"], slow.fetch, out, per_peer_inflight=2, progress=progress)
    )
    await five.wait()
    get.cancel()  # Ctrl-C
    with pytest.raises(asyncio.CancelledError):
        await get
    assert part.exists() and not out.exists()
    saved = part.read_bytes()
    kept = {
        i
        for i in range(30)
        if hashlib.sha256(saved[i * CHUNK : (i + 1) * CHUNK]).digest() == manifest.chunks[i]
    }
    assert len(kept) >= 5

    again = Swarm({"a:1": Peer(blob)})
    report = await download(manifest, ["a:1"], again.fetch, out)

    assert out.read_bytes() == blob and not part.exists()
    assert report.resumed_chunks == len(kept)
    assert sorted(again.asked["a:1"]) == sorted(set(range(30)) - kept)


async def test_a_get_hashes_each_received_byte_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each chunk is checked against the manifest as it arrives, and nothing more: the
    chunk hashes are the whole file's check."""
    blob, manifest = make_file(tmp_path, 40 * CHUNK + 7)
    swarm = Swarm({"a:1": Peer(blob)})
    hashed: list[int] = []
    real = hashlib.sha256

    class Counting:
        def __init__(self, data: bytes = b"") -> None:
            self._hash = real()
            self.update(data)

        def update(self, data: bytes) -> None:
            if len(data):
                hashed.append(len(data))
            self._hash.update(data)

        def digest(self) -> bytes:
            return self._hash.digest()

    monkeypatch.setattr(part_file.hashlib, "sha256", Counting)

    report = await download(manifest, ["a:1"], swarm.fetch, tmp_path / "out", per_peer_inflight=8)

    assert (tmp_path / "out").read_bytes() == blob
    assert report.sha256 == manifest.sha256
    assert sum(hashed) == len(blob) and len(hashed) == len(manifest.chunks)
    assert sorted(swarm.asked["a:1"]) == list(range(len(manifest.chunks)))


async def test_a_spare_copy_is_neither_written_nor_counted(tmp_path: Path) -> None:
    """End game: a copy of a chunk another holder's copy already won is read off the
    stream (so the call ends cleanly) but not hashed, written, counted or credited."""
    blob, manifest = make_file(tmp_path, 2 * CHUNK)
    schedule = Schedule(2, (), ["early:1", "late:1"], max_batch=2, endgame_after=0.0)
    assert schedule.next_batch("early:1", 0.0) == [0, 1]
    assert schedule.next_batch("late:1", 0.0) == [0, 1]
    part, _ = PartFile.open(tmp_path / "out.part", manifest)
    assert part.write_checked(0, blob[:CHUNK])
    assert schedule.landed("early:1", 0, CHUNK, 0.0)  # its copy of chunk 0 won
    written: list[int] = []
    write = part.write

    def counted(data: bytes | bytearray | memoryview, offset: int) -> None:
        written.append(offset)
        write(data, offset)

    part.write = counted  # type: ignore[method-assign]
    fetch = Swarm({"late:1": Peer(blob)}).fetch
    run = download_module._Run(manifest, schedule, part, fetch, 5.0, None)
    waiting = {0, 1}
    try:
        await run._pull("late:1", [0, 1], waiting)
    finally:
        await run.threads.drain()
        part.close()
    assert waiting == set() and schedule.done and written == [CHUNK]
    assert schedule.sources() == {"early:1": CHUNK, "late:1": CHUNK}
    assert (tmp_path / "out.part").read_bytes() == blob


async def test_the_file_is_on_disk_before_it_gets_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash right after the rename must not leave a named file whose bytes were never
    written back: the .part file is fsynced first, then renamed, then its directory."""
    blob, manifest = make_file(tmp_path, 5 * CHUNK)
    steps: list[str] = []
    fsync, replace = part_file.os.fsync, part_file.os.replace

    def fsynced(fd: int) -> None:
        steps.append("fsync")
        fsync(fd)

    def renamed(src: Path, dst: Path) -> None:
        steps.append("rename")
        replace(src, dst)

    monkeypatch.setattr(part_file.os, "fsync", fsynced)
    monkeypatch.setattr(part_file.os, "replace", renamed)
    monkeypatch.setattr(part_file, "fsync_directory", lambda _: steps.append("fsync dir"))

    await download(manifest, ["a:1"], Swarm({"a:1": Peer(blob)}).fetch, tmp_path / "out")

    assert (tmp_path / "out").read_bytes() == blob
    assert steps == ["fsync", "rename", "fsync dir"]


async def test_a_sink_takes_every_chunk_and_no_file_is_written(tmp_path: Path) -> None:
    blob, manifest = make_file(tmp_path, 20 * CHUNK + 7)
    swarm = Swarm({"bad:1": Corrupt(blob), "good:1": Peer(blob, delay=0.001)})
    whole = InMemory(manifest)

    report = await download(
        manifest, ["bad:1", "good:1"], swarm.fetch, tmp_path / "out", sink=whole
    )

    assert bytes(whole.data) == blob
    assert report.sources["good:1"] == len(blob)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.part").exists()
