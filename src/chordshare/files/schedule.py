"""Which chunk of a download to ask of which holder, decided: plain values in, decisions out.

Like BitTorrent pulling pieces from a swarm. The runtime (`sharing/download.py`) asks
`next_batch` what to request of a holder, streams it, and reports what happened: a chunk
that arrived and passed its hash check (`landed`), an answer that ended (`ended`), one that
failed (`failed`). Time is a number the runtime passes in; nothing here reads a clock,
touches a file or the network, so the same calls give the same decisions.

- Batches: the chunks nobody has asked for yet, in order (chunks given back after a
  failure first), about `PIPELINE_SECONDS` of what that holder has delivered so far, so a
  holder behind a slow link never sits on chunks the others could fetch, and at most
  `max_inflight` out at one holder.
- A holder that lacks chunks (it answered a batch with none of them) is not asked for them
  again; nor is a holder for a chunk it sent wrong bytes for. A holder whose answers fail
  `max_failures` times (wrong bytes, broken streams, silence) is dropped.
- End game: once nothing is left to hand out, an idle holder also asks for chunks out at
  another holder for over `endgame_after` seconds, never more than `ENDGAME_COPIES`
  holders for one chunk at once; the first copy that lands wins.
- `stuck`: the chunks no holder still in the download may give.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice

FIRST_BATCH = 2  # chunks asked of a holder before its rate is known
PIPELINE_SECONDS = 0.05  # how much of a holder's time one batch should fill
ENDGAME_AFTER = 0.5  # seconds a chunk is out before an idle holder asks for it too
# More copies of a slow chunk would spend the holders' time on bytes thrown away.
ENDGAME_COPIES = 2  # holders asked for one chunk at once, at most
# One failed answer is forgiven (a chunk that rotted on the holder's disk, a connection
# reset): the holder still has the rest of the file to give.
MAX_FAILURES = 2  # failed answers that drop a holder


@dataclass(slots=True)
class _Holder:
    asked: set[int] = field(default_factory=set)  # out at this holder now
    shunned: set[int] = field(default_factory=set)  # lacks them, or sent wrong bytes
    failures: int = 0
    dropped: bool = False
    first_asked: float | None = None
    delivered: int = 0  # chunks it delivered, winning copies or not (its rate)
    served: int = 0  # bytes of its copies that won


class Schedule:
    """One download's decisions over `chunk_count` chunks, `have` already verified locally
    and `holders` to ask (repeats ignored).

    `max_batch` caps one request, `max_inflight` the chunks out at one holder at once.
    Only the runtime's reports move chunks between states: queued (nobody asked), out
    (asked of one or more holders), landed.
    """

    def __init__(
        self,
        chunk_count: int,
        have: Iterable[int],
        holders: Sequence[str],
        *,
        max_batch: int = 8,
        max_inflight: int = 16,
        endgame_after: float = ENDGAME_AFTER,
        max_failures: int = MAX_FAILURES,
    ) -> None:
        if max_batch < 1 or max_inflight < 1 or max_failures < 1:
            raise ValueError("max_batch, max_inflight and max_failures must be at least 1")
        self.chunk_count = chunk_count
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self.endgame_after = endgame_after
        self.max_failures = max_failures
        self.landed_chunks: set[int] = set(have)
        if any(not 0 <= i < chunk_count for i in self.landed_chunks):
            raise ValueError(f"chunks already had must be in 0..{chunk_count - 1}")
        self.resumed = len(self.landed_chunks)
        self.refetched = 0  # chunks that landed after a failed or end-game ask
        self.why: dict[str, str] = {}  # holder -> why it failed or stopped helping
        self._holders = {h: _Holder() for h in holders}
        # Given back after a failure, asked first; then the rest, in order. Dicts as
        # ordered sets: a holder's batch may skip chunks it must not be asked for.
        self._retry: dict[int, None] = {}
        self._queue = dict.fromkeys(i for i in range(chunk_count) if i not in self.landed_chunks)
        self._out: dict[int, set[str]] = {}  # not landed -> holders asked
        self._out_since: dict[int, float] = {}
        self._retried: set[int] = set()

    # Reading the state.

    @property
    def holders(self) -> list[str]:
        return list(self._holders)

    @property
    def done(self) -> bool:
        return len(self.landed_chunks) == self.chunk_count

    @property
    def missing(self) -> list[int]:
        return [i for i in range(self.chunk_count) if i not in self.landed_chunks]

    @property
    def stuck(self) -> list[int]:
        """The chunks not landed that no holder still in the download may be asked for."""
        able = [h for h in self._holders.values() if not h.dropped]
        return [i for i in self.missing if all(i in h.shunned for h in able)]

    def dropped(self, holder: str) -> bool:
        return self._holders[holder].dropped

    def out_at(self, holder: str) -> frozenset[int]:
        return frozenset(self._holders[holder].asked)

    def asked_of(self, index: int) -> frozenset[str]:
        """The holders a chunk not landed is out at now."""
        return frozenset(self._out.get(index, ()))

    def sources(self) -> dict[str, int]:
        """Holder -> bytes of the chunks it delivered that were kept."""
        return {address: h.served for address, h in self._holders.items()}

    def can_help(self, holder: str) -> bool:
        """Whether holder may yet be given a batch: it is still in the download and some
        chunk not landed may be asked of it (now, or once its end game starts)."""
        state = self._holders[holder]
        return not state.dropped and any(i not in state.shunned for i in self.missing)

    def batch_size(self, holder: str, now: float) -> int:
        """About PIPELINE_SECONDS of holder's delivery so far (FIRST_BATCH before it
        delivered anything), within 1..max_batch: pipelining as BitTorrent requests."""
        state = self._holders[holder]
        if not state.delivered or state.first_asked is None:
            return min(self.max_batch, FIRST_BATCH)
        per_second = state.delivered / max(now - state.first_asked, 1e-3)
        return max(1, min(self.max_batch, int(per_second * PIPELINE_SECONDS) + 1))

    # Decisions.

    def next_batch(self, holder: str, now: float) -> list[int]:
        """The chunks to ask holder for now (maybe none: see `can_help`)."""
        state = self._holders[holder]
        room = min(self.batch_size(holder, now), self.max_inflight - len(state.asked))
        if state.dropped or room <= 0:
            return []
        batch = list(islice(self._askable(state), room))
        for index in batch:
            if index in self._retry:
                del self._retry[index]
            else:
                del self._queue[index]
        if not batch:
            batch = self._endgame(holder, room, now)
        for index in batch:
            state.asked.add(index)
            self._out.setdefault(index, set()).add(holder)
            self._out_since.setdefault(index, now)
        if batch and state.first_asked is None:
            state.first_asked = now
        return batch

    def _askable(self, state: _Holder) -> Iterator[int]:
        return (i for i in chain(self._retry, self._queue) if i not in state.shunned)

    def _endgame(self, holder: str, room: int, now: float) -> list[int]:
        """Chunks out elsewhere for a while, least asked first, then longest out."""
        shunned = self._holders[holder].shunned
        spare = [
            i
            for i, at in self._out.items()
            if holder not in at
            and i not in shunned
            and len(at) < ENDGAME_COPIES
            and now - self._out_since[i] >= self.endgame_after
        ]
        spare.sort(key=lambda i: (len(self._out[i]), self._out_since[i], i))
        self._retried.update(spare[:room])
        return spare[:room]

    # What happened.

    def landed(self, holder: str, index: int, nbytes: int, now: float) -> bool:
        """holder delivered chunk index and it passed its hash check. True for the copy
        that counts; False for a later one (end game), which is credited to nobody."""
        state = self._holders[holder]
        if index not in state.asked:
            raise ValueError(f"{holder} delivered chunk {index}, which is not out at it")
        state.asked.discard(index)
        state.delivered += 1
        if index in self.landed_chunks:
            return False
        self.landed_chunks.add(index)
        self._out.pop(index, None)
        self._out_since.pop(index, None)
        state.served += nbytes
        self.refetched += index in self._retried
        return True

    def ended(self, holder: str, undelivered: Collection[int], *, delivered: int) -> None:
        """holder's answer ended without error, without `undelivered`. An answer with none
        of its chunks says the holder lacks them; one with some is taken as the holder
        limiting its answer, and the rest may be asked of it again."""
        if not delivered and undelivered:
            self.lacks(holder, undelivered)
        else:
            self._give_back(holder, undelivered, retry=False)

    def lacks(self, holder: str, indexes: Iterable[int]) -> None:
        """holder does not have these chunks: it is not asked for them again."""
        indexes = list(indexes)
        self._holders[holder].shunned.update(indexes)
        self.why.setdefault(holder, "did not have them")
        self._give_back(holder, indexes, retry=False)

    def failed(
        self, holder: str, indexes: Iterable[int], reason: str, *, corrupt: Iterable[int] = ()
    ) -> None:
        """holder's answer failed (`reason`, one line) without `indexes`; of those,
        `corrupt` came with bytes that failed their hash check, and are not asked of it
        again. After `max_failures` failures the holder is dropped."""
        state = self._holders[holder]
        state.failures += 1
        state.shunned.update(corrupt)
        if state.failures >= self.max_failures:
            state.dropped = True
            self.why[holder] = f"dropped: {reason}"
        else:
            self.why[holder] = reason
        self._give_back(holder, indexes, retry=True)

    def _give_back(self, holder: str, indexes: Iterable[int], *, retry: bool) -> None:
        """holder no longer has these out: queue the ones nobody else is fetching."""
        state = self._holders[holder]
        for index in indexes:
            if index not in state.asked:
                continue
            state.asked.discard(index)
            if index in self.landed_chunks:
                continue
            at = self._out[index]
            at.discard(holder)
            if retry:
                self._retried.add(index)
            if at:
                continue
            del self._out[index]
            del self._out_since[index]
            if retry:
                self._retry[index] = None
            else:
                self._queue[index] = None
