"""Running out of open files: a loop says so once when it begins and once when it ends, logs
no traceback, and goes on. The helper on its own, then the scrubber, the maintenance loops
and the sharing loop meeting EMFILE."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from memring import start_memory_node
from peernet import PeerNetwork
from waiting import wait_until

from chordshare.node.logctx import NODE_ID
from chordshare.node.shortage import Shortages, short_of
from chordshare.node.tasks import NodeTasks
from chordshare.sharing import scrub
from chordshare.sharing.chunking import manifest_of
from chordshare.sharing.scrub import Scrubber
from chordshare.storage.chunks import ChunkStore
from chordshare.storage.store import NodeStore
from chordshare.transport.memory import MemoryNetwork

SOON = 10.0


def emfile() -> OSError:
    return OSError(errno.EMFILE, "Too many open files")


class Lines(logging.Handler):
    """The helper's log lines, as (level, message)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))


@contextlib.contextmanager
def captured() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("chordshare.node.shortage")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def lines() -> Iterator[Lines]:
    with captured() as handler:
        yield handler


def test_what_counts_as_a_shortage() -> None:
    for code in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS):
        assert short_of(OSError(code, "short")) == code
    assert short_of(OSError(errno.ENOENT, "gone")) is None
    assert short_of(PermissionError(errno.EACCES, "no")) is None
    assert short_of(ValueError("bad")) is None
    # Raised from one: a wrapper that says what it was doing.
    try:
        try:
            raise emfile()
        except OSError as err:
            raise RuntimeError("listing the catalog") from err
    except RuntimeError as wrapped:
        assert short_of(wrapped) == errno.EMFILE
    # Merely raised while one was handled: a bug of its own, reported as one.
    try:
        try:
            raise emfile()
        except OSError:
            raise KeyError("oops")  # noqa: B904
    except KeyError as during:
        assert short_of(during) is None
    assert short_of(ExceptionGroup("all", [emfile(), OSError(errno.ENFILE, "")])) == errno.EMFILE
    assert short_of(ExceptionGroup("some", [emfile(), ValueError("bug")])) is None


EVENTS = st.lists(st.tuples(st.sampled_from("ab"), st.sampled_from(["short", "other", "ok"])))


@given(events=EVENTS)
def test_a_shortage_is_said_once_when_it_begins_and_once_when_it_ends(
    events: list[tuple[str, str]],
) -> None:
    """Two loops, each failing for want of files, failing otherwise or going through, in any
    order: one warning per wait that begins, one line when it ends, nothing between, and the
    loop's own errors are left to it."""
    with captured() as handler:
        now = [0.0]
        shortages = Shortages(clock=lambda: now[0])
        waiting: set[str] = set()
        expected: list[tuple[int, str]] = []
        for loop, event in events:
            now[0] += 1.0
            if event == "short":
                assert shortages.waits(emfile(), loop)
                if loop not in waiting:
                    expected.append((logging.WARNING, f"out of open files: {loop} waits"))
                waiting.add(loop)
            elif event == "other":  # says nothing of how long a wait lasts
                assert not shortages.waits(ValueError("a bug"), loop)
            else:
                shortages.goes_on(loop)
                if loop in waiting:
                    expected.append((logging.INFO, f"open files again: {loop} goes on"))
                waiting.discard(loop)
        # The cause and the length of the wait follow: not compared here.
        plain = [(lv, text.partition(" (")[0].partition(" after")[0]) for lv, text in handler.lines]
        assert plain == expected


def test_each_node_of_a_process_waits_on_its_own(lines: Lines) -> None:
    shortages = Shortages()

    def as_node(node: str, work: Callable[[], object]) -> None:
        context = contextvars.copy_context()
        context.run(NODE_ID.set, node)
        context.run(work)

    as_node("1", lambda: shortages.waits(emfile(), "stabilize"))
    as_node("2", lambda: shortages.waits(emfile(), "stabilize"))
    as_node("2", lambda: shortages.waits(emfile(), "stabilize"))
    as_node("1", lambda: shortages.goes_on("stabilize"))
    assert [level for level, _ in lines.lines] == [logging.WARNING] * 2 + [logging.INFO]
    assert lines.lines[0][1] == "out of open files: stabilize waits (Too many open files)"


async def test_a_round_is_skipped_on_a_shortage_and_raises_anything_else(lines: Lines) -> None:
    shortages = Shortages()

    async def failing(err: Exception) -> int:
        raise err

    async def answering() -> int:
        return 7

    assert await shortages.round("fix_fingers", failing(emfile())) is None
    with pytest.raises(ValueError, match="bug"):
        await shortages.round("fix_fingers", failing(ValueError("bug")))
    assert await shortages.round("fix_fingers", answering()) == 7
    assert [level for level, _ in lines.lines] == [logging.WARNING, logging.INFO]


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    loud = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not loud, [r.getMessage() for r in loud]


def said(caplog: pytest.LogCaptureFixture, level: int, text: str) -> int:
    return sum(1 for r in caplog.records if r.levelno == level and text in r.getMessage())


async def test_the_scrubber_waits_out_a_shortage_of_open_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chordshare")
    store = NodeStore(tmp_path / "node")
    data = bytes(range(256)) * 1024  # two chunk files: over what the catalog keeps
    manifest = manifest_of(data, "kept.bin", 128 * 1024)
    for index, digest in enumerate(manifest.chunks):
        store.put_chunk(data[index * 128 * 1024 : (index + 1) * 128 * 1024], digest)
    store.commit(manifest)

    real_get = ChunkStore.get
    short = [True]
    tries = [0]

    def get(self: ChunkStore, digest: bytes, verify: bool = True) -> bytes:
        if short[0]:
            tries[0] += 1
            raise emfile()
        return real_get(self, digest, verify)

    async def no_holders(_manifest: object) -> list[str]:
        return []

    monkeypatch.setattr(ChunkStore, "get", get)
    monkeypatch.setattr(scrub, "PASS_EVERY", 0.01)
    scrubber = Scrubber(
        store,
        no_holders,
        None,
        NodeTasks(),
        rate=1e12,
        first_pass_after=0,  # type: ignore[arg-type]
    )
    running = asyncio.create_task(scrubber.run())
    try:
        await wait_until(lambda: tries[0] >= 5, SOON, "five passes to meet EMFILE")
        assert said(caplog, logging.WARNING, "out of open files: scrub waits") == 1
        no_tracebacks(caplog)
        short[0] = False
        await wait_until(lambda: scrubber.counts.passes >= 2, SOON, "passes to go through")
        assert said(caplog, logging.INFO, "open files again: scrub goes on") == 1
        assert said(caplog, logging.WARNING, "out of open files") == 1
        assert scrubber.counts.bad == 0  # a chunk it could not open is not a damaged one
        assert store.has_chunk(manifest.chunks[0])
        no_tracebacks(caplog)
        assert not running.done()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        store.close()


async def test_a_maintenance_loop_waits_out_a_shortage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chordshare")
    node = await start_memory_node(MemoryNetwork(), "a:1")
    rounds = {"short": 4, "done": 0}

    async def stabilize_files() -> None:
        if rounds["short"]:
            rounds["short"] -= 1
            raise emfile()
        rounds["done"] += 1

    loop = asyncio.create_task(node._every(0.001, stabilize_files))
    try:
        await wait_until(lambda: rounds["done"] >= 2, SOON, "rounds to go through again")
        assert said(caplog, logging.WARNING, "out of open files: stabilize_files waits") == 1
        assert said(caplog, logging.INFO, "open files again: stabilize_files goes on") == 1
        no_tracebacks(caplog)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await node.stop_maintenance()
        await node.tasks.close()


async def test_the_sharing_loop_waits_out_a_shortage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chordshare")
    net = PeerNetwork(tmp_path)
    try:
        peer = await net.start(republish=0.05)
        assert peer.publisher is not None
        short = [True]
        tries = [0]
        real_publish = peer.publisher.publish

        async def publish(*args: object, **kwargs: object) -> object:
            if short[0]:
                tries[0] += 1
                raise emfile()
            return await real_publish(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(peer.publisher, "publish", publish)
        peer._wake.set()
        await wait_until(lambda: tries[0] >= 3, SOON, "three rounds to meet EMFILE")
        short[0] = False
        await wait_until(
            lambda: said(caplog, logging.INFO, "open files again: sharing goes on") == 1,
            SOON,
            "a round to go through",
        )
        assert said(caplog, logging.WARNING, "out of open files: sharing waits") == 1
        no_tracebacks(caplog)
    finally:
        await net.close()
