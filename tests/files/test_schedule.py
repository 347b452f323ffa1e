"""The download scheduler, driven by a simulated swarm: holders that lack chunks, send
wrong bytes, fail, limit their answers or answer slowly, in random orders."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from chordshare.files.schedule import (
    ENDGAME_COPIES,
    FIRST_BATCH,
    MAX_FAILURES,
    Schedule,
)


@dataclass
class FakeHolder:
    has: set[int]
    corrupt: set[int] = field(default_factory=set)  # sends wrong bytes for these
    flaky: float = 0.0  # chance that an answer breaks at each step
    slow: bool = False  # answers move at a fifth of the others' pace

    @property
    def honest(self) -> bool:
        return not self.corrupt and not self.flaky


@dataclass
class World:
    chunk_count: int
    have: set[int]
    holders: dict[str, FakeHolder]
    max_batch: int
    max_inflight: int


@st.composite
def worlds(draw: st.DrawFn, *, served: bool) -> World:
    """A download's chunks and holders. With `served`, every chunk not had is held by at
    least one honest holder (it has it, never lies, never fails)."""
    count = draw(st.integers(0, 24))
    chunks = st.sets(st.integers(0, max(0, count - 1)), max_size=count) if count else st.just(set())
    have = draw(chunks)
    names = [f"h{n}:1" for n in range(draw(st.integers(1 if served else 0, 4)))]
    holders = {}
    for name in names:
        slow = draw(st.booleans())
        if draw(st.booleans()):
            holders[name] = FakeHolder(draw(chunks), slow=slow)
        else:
            flaky = draw(st.sampled_from([0.0, 0.05, 0.3]))
            holders[name] = FakeHolder(draw(chunks), draw(chunks), flaky, slow)
    if served:
        honest = [n for n, h in holders.items() if h.honest]
        if not honest:
            honest = [names[0]]
            holders[names[0]] = FakeHolder(holders[names[0]].has, slow=holders[names[0]].slow)
        for index in set(range(count)) - have:
            holders[draw(st.sampled_from(honest))].has.add(index)
    return World(count, have, holders, draw(st.integers(1, 8)), draw(st.integers(1, 16)))


@dataclass
class Request:
    holder: str
    asked: list[int]
    next: int = 0  # the position in `asked` the holder answers next
    got: set[int] = field(default_factory=set)

    @property
    def undelivered(self) -> list[int]:
        return [i for i in self.asked if i not in self.got]


class Swarm:
    """Runs a Schedule against a World the way the runtime does, in an order a seeded
    random picks, checking the schedule's promises after every step."""

    def __init__(self, world: World, rnd: random.Random) -> None:
        self.world = world
        self.rnd = rnd
        self.schedule = Schedule(
            world.chunk_count,
            world.have,
            list(world.holders),
            max_batch=world.max_batch,
            max_inflight=world.max_inflight,
        )
        self.now = 0.0
        self.open: list[Request] = []
        self.kept: Counter[int] = Counter()  # chunk -> copies that counted
        self.lacking: dict[str, set[int]] = {h: set() for h in world.holders}
        self.lied: dict[str, set[int]] = {h: set() for h in world.holders}
        self.failures: Counter[str] = Counter()

    # The runtime's side.

    def ask(self, holder: str) -> bool:
        batch = self.schedule.next_batch(holder, self.now)
        if not batch:
            return False
        assert 1 <= len(batch) <= self.world.max_batch
        assert len(set(batch)) == len(batch)
        assert len(self.schedule.out_at(holder)) <= self.world.max_inflight
        assert not set(batch) & self.lacking[holder], "asked a holder for chunks it lacks"
        assert not set(batch) & self.lied[holder], "asked a holder again after wrong bytes"
        assert self.failures[holder] < MAX_FAILURES, "asked a dropped holder"
        assert not set(batch) & self.schedule.landed_chunks
        if any(len(self.schedule.asked_of(i)) > 1 for i in batch):
            event("end game")
        self.open.append(Request(holder, batch))
        return True

    def step(self, request: Request) -> None:
        """The holder's next move on this answer: a chunk, a failure, or the end."""
        fake = self.world.holders[request.holder]
        while request.next < len(request.asked) and request.asked[request.next] not in fake.has:
            request.next += 1  # what it lacks, it skips
        if self.rnd.random() < fake.flaky:
            self.fail(request, "ConnectionResetError", corrupt=())
        elif request.next == len(request.asked) or (request.got and self.rnd.random() < 0.1):
            self.open.remove(request)
            undelivered = request.undelivered
            self.schedule.ended(request.holder, undelivered, delivered=len(request.got))
            if not request.got:
                self.lacking[request.holder].update(undelivered)
        else:
            index = request.asked[request.next]
            request.next += 1
            if index in fake.corrupt:
                self.fail(request, f"sent chunk {index}, which failed", corrupt=(index,))
                return
            request.got.add(index)
            if self.schedule.landed(request.holder, index, 1, self.now):
                self.kept[index] += 1
            else:
                event("a spare copy")

    def fail(self, request: Request, reason: str, corrupt: tuple[int, ...]) -> None:
        self.open.remove(request)
        self.schedule.failed(request.holder, request.undelivered, reason, corrupt=corrupt)
        self.failures[request.holder] += 1
        self.lied[request.holder].update(corrupt)
        event("wrong bytes" if corrupt else "a broken answer")
        if self.failures[request.holder] == MAX_FAILURES:
            event("a holder dropped")

    # The checks that hold at every step.

    def check(self) -> None:
        out_at: Counter[int] = Counter()
        for holder in self.world.holders:
            out_at.update(self.schedule.out_at(holder) - self.schedule.landed_chunks)
        assert all(n <= ENDGAME_COPIES for n in out_at.values()), "too many copies asked"
        assert all(n == 1 for n in self.kept.values()), "a chunk landed twice"
        able = [h for h in self.world.holders if self.failures[h] < MAX_FAILURES]
        expected = [
            i
            for i in range(self.world.chunk_count)
            if i not in self.schedule.landed_chunks
            and all(i in self.lacking[h] | self.lied[h] for h in able)
        ]
        assert self.schedule.stuck == expected

    def run(self, steps: int = 20_000) -> None:
        holders = list(self.world.holders)
        for _ in range(steps):
            self.check()
            roll = self.rnd.random()
            if self.open and roll < 0.6:
                request = self.rnd.choice(self.open)
                if not self.world.holders[request.holder].slow or self.rnd.random() < 0.2:
                    self.step(request)
            elif holders and roll < 0.8:
                self.ask(self.rnd.choice(holders))
            elif self.open:
                self.now += self.rnd.choice([0.01, 0.1, 0.6])
            elif not any([self.ask(h) for h in holders]):
                assert not any(self.schedule.can_help(h) for h in holders)
                event(f"ended with {'some' if self.schedule.stuck else 'no'} chunks stuck")
                return  # nothing out and nobody can be asked for anything: it ended
        raise AssertionError("the download never ended")


@settings(max_examples=300, deadline=None)
@given(world=worlds(served=True), seed=st.integers(0, 2**32 - 1))
def test_every_chunk_served_by_someone_lands_exactly_once(world: World, seed: int) -> None:
    swarm = Swarm(world, random.Random(seed))
    swarm.run()
    assert swarm.schedule.done and swarm.schedule.stuck == []
    fetched = set(range(world.chunk_count)) - world.have
    assert swarm.kept == Counter(dict.fromkeys(fetched, 1))
    assert sum(swarm.schedule.sources().values()) == len(fetched)  # 1 byte per chunk here


@settings(max_examples=300, deadline=None)
@given(world=worlds(served=False), seed=st.integers(0, 2**32 - 1))
def test_a_download_ends_with_exactly_the_chunks_nobody_gave_stuck(world: World, seed: int) -> None:
    swarm = Swarm(world, random.Random(seed))
    swarm.run()
    assert swarm.schedule.stuck == swarm.schedule.missing
    # A chunk an honest holder has is never stuck.
    for index in swarm.schedule.missing:
        assert not any(h.honest and index in h.has for h in world.holders.values())


@settings(max_examples=200, deadline=None)
@given(
    max_batch=st.integers(1, 16),
    delivered=st.integers(0, 500),
    elapsed=st.floats(0, 100, allow_nan=False),
)
def test_batch_sizes_stay_within_bounds(max_batch: int, delivered: int, elapsed: float) -> None:
    schedule = Schedule(1000, (), ["a:1"], max_batch=max_batch, max_inflight=1000)
    batch = schedule.next_batch("a:1", 0.0)
    assert len(batch) == min(max_batch, FIRST_BATCH)
    for n, index in enumerate(batch[:delivered]):
        schedule.landed("a:1", index, 1, elapsed * (n + 1) / len(batch))
    size = schedule.batch_size("a:1", elapsed)
    assert 1 <= size <= max_batch
    assert len(schedule.next_batch("a:1", elapsed)) == size


def test_a_fast_holder_gets_larger_batches_than_a_slow_one() -> None:
    def batch_after(per_chunk: float) -> int:
        schedule = Schedule(1000, (), ["a:1"], max_batch=8, max_inflight=16)
        now = 0.0
        for _ in range(30):  # asked again as soon as an answer ends, as the runtime does
            for index in schedule.next_batch("a:1", now):
                now += per_chunk
                schedule.landed("a:1", index, 1, now)
            schedule.ended("a:1", [], delivered=1)
        return schedule.batch_size("a:1", now)

    assert batch_after(0.001) == 8  # 1,000 chunks a second: 50 in 50 ms, capped
    assert batch_after(0.008) == 7  # 125 a second: 6.25 in 50 ms, and one more
    assert batch_after(0.1) == 1


def test_the_end_game_asks_a_second_holder_for_a_slow_chunk_and_counts_one_copy() -> None:
    schedule = Schedule(3, (), ["slow:1", "fast:1", "idle:1"], max_batch=4, max_inflight=4)
    assert schedule.next_batch("slow:1", 0.0) == [0, 1]
    assert schedule.next_batch("fast:1", 0.0) == [2]
    assert schedule.landed("fast:1", 2, 10, 0.01)
    assert schedule.next_batch("fast:1", 0.1) == []  # not out long enough yet
    assert schedule.can_help("fast:1")
    assert schedule.next_batch("fast:1", 0.6) == [0]  # its rate: one chunk a batch
    assert schedule.next_batch("idle:1", 0.6) == [1]
    assert schedule.next_batch("idle:1", 0.6) == []  # two holders have each out already
    assert schedule.asked_of(0) == {"slow:1", "fast:1"}
    assert schedule.landed("fast:1", 0, 10, 0.61)
    assert not schedule.landed("slow:1", 0, 10, 0.7)  # a spare copy: credited to nobody
    assert schedule.landed("slow:1", 1, 10, 0.7)
    assert not schedule.landed("idle:1", 1, 10, 0.7)
    assert schedule.done
    assert schedule.sources() == {"slow:1": 10, "fast:1": 20, "idle:1": 0}
    assert schedule.refetched == 2


def test_a_chunk_with_wrong_bytes_goes_to_another_holder_and_a_liar_is_dropped() -> None:
    schedule = Schedule(4, (), ["liar:1", "good:1"], max_batch=2, max_inflight=2)
    assert schedule.next_batch("liar:1", 0.0) == [0, 1]
    schedule.failed("liar:1", [0, 1], "sent chunk 0, which failed", corrupt=[0])
    assert not schedule.dropped("liar:1")
    assert schedule.next_batch("liar:1", 0.0) == [1, 2]  # given back first, not chunk 0
    schedule.failed("liar:1", [1, 2], "sent chunk 1, which failed", corrupt=[1])
    assert schedule.dropped("liar:1") and schedule.next_batch("liar:1", 1.0) == []
    assert schedule.why["liar:1"] == "dropped: sent chunk 1, which failed"
    assert schedule.next_batch("good:1", 0.0) == [0, 1]
    assert schedule.refetched == 0
    for index in (0, 1):
        assert schedule.landed("good:1", index, 1, 0.1)
    assert schedule.refetched == 2


def test_chunks_every_holder_lies_about_are_stuck_and_named() -> None:
    schedule = Schedule(3, [0], ["a:1", "b:1"], max_batch=2, max_inflight=2, max_failures=3)
    assert schedule.next_batch("a:1", 0.0) == [1, 2]
    schedule.failed("a:1", [2], "sent chunk 2, which failed", corrupt=[2])
    assert schedule.landed("a:1", 1, 1, 0.0)
    assert schedule.stuck == []
    assert schedule.next_batch("b:1", 0.0) == [2]
    schedule.failed("b:1", [2], "sent chunk 2, which failed", corrupt=[2])
    assert schedule.stuck == [2] == schedule.missing
    assert not schedule.can_help("a:1") and not schedule.can_help("b:1")
    assert schedule.resumed == 1


def test_an_empty_answer_means_the_holder_lacks_the_chunks() -> None:
    schedule = Schedule(4, (), ["empty:1", "full:1"], max_batch=2, max_inflight=2)
    assert schedule.next_batch("empty:1", 0.0) == [0, 1]
    schedule.ended("empty:1", [0, 1], delivered=0)
    assert schedule.why["empty:1"] == "did not have them"
    assert schedule.next_batch("empty:1", 0.0) == [2, 3]
    # An answer with some of its chunks: the rest may be asked of it again.
    assert schedule.landed("empty:1", 2, 1, 0.0)
    schedule.ended("empty:1", [3], delivered=1)
    assert schedule.next_batch("empty:1", 0.0) == [3]
    assert schedule.next_batch("full:1", 0.0) == [0, 1]


def test_nothing_to_do_without_holders_or_chunks() -> None:
    assert Schedule(0, (), []).done
    lonely = Schedule(2, [1], [])
    assert lonely.stuck == [0] == lonely.missing and not lonely.done
    with pytest.raises(ValueError):
        Schedule(2, [2], ["a:1"])
    with pytest.raises(ValueError):
        Schedule(2, (), ["a:1"], max_batch=0)
    ready = Schedule(2, (), ["a:1"])
    with pytest.raises(ValueError):
        ready.landed("a:1", 0, 1, 0.0)  # not asked for
