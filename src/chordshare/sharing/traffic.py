"""The chunk bytes a node moves, counted for its metrics and for trimming its heap."""

from __future__ import annotations

from chordshare.allocator import HeapTrimmer


class Traffic:
    def __init__(self) -> None:
        self.served = 0  # chunk bytes sent to peers and clients that fetched them
        self.received = 0  # chunk bytes received by puts and replica pushes
        self.trimmer = HeapTrimmer()  # gives back the heap the chunks passed through

    def got(self, nbytes: int) -> None:
        self.received += nbytes
        self.trimmer.moved(nbytes)

    def sent(self, nbytes: int) -> None:
        self.served += nbytes
        self.trimmer.moved(nbytes)

    async def close(self) -> None:
        await self.trimmer.close()
