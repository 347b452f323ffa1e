"""A put of bytes that arrive as a stream (an upload's body), sent on to the name's owner as
they arrive: nothing of it is staged on this node's disk, and memory holds a few chunks.

The size is known up front, so the put goes with its manifest last, as `Putter` sends a
file new to the owner: a promise of the name, size and chunk size, every chunk in order,
each hashed once as it passes (in a thread, while the next one arrives), then the manifest.
A body of SMALL_PUT bytes or less is read whole and put as bytes in memory.

A name the owner holds is answered as a put with its manifest first would be:
- without `replace`, the body is hashed against the owner's manifest and not sent: the same
  bytes go as that manifest alone (the owner finds them unchanged); other bytes are refused
  (ALREADY_EXISTS) at the first chunk that differs, or before a byte is read if the size
  differs;
- with `replace`, the body streams; if every chunk turns out to be the owner's, the closing
  manifest carries the owner's whole-file hash, and the owner finds it unchanged.

A body can be read once. The owner may be looked up again, or waited for while it is busy,
only while no byte of the body has been asked for; a failure after that is UNAVAILABLE, for
the uploader to put it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import replace as with_changes

from chordshare.chord.messages import NodeRef
from chordshare.files.manifest import Manifest
from chordshare.files.messages import SMALL_PUT, FileError, PutHeader, PutOutcome, Refusal
from chordshare.files.names import check_new_name
from chordshare.files.placement import file_key
from chordshare.sharing.chunking import ManifestHasher, chunk_size_for
from chordshare.sharing.putting import PUT_RETRY_WAITS, Putter, when_free
from chordshare.transport.base import PeerError
from chordshare.transport.files import FileAnswerer

HASH_INLINE = 64 * 1024  # a chunk this small is hashed in the event loop: a thread costs more

Chunks = AsyncIterator[tuple[int, bytes]]


class BodyLengthError(ValueError):
    """The body ended before the size it promised, or went on past it."""


class Body:
    """The bytes of one upload, read once, in order, and cut into chunks."""

    def __init__(self, data: AsyncIterable[bytes], size: int, name: str) -> None:
        if size < 0:
            raise ValueError(f"a body has no negative size ({size})")
        self._pieces = aiter(data)
        self.size = size
        self.name = name
        self.started = False  # a byte was asked for: the body cannot be read again
        self.received = 0

    async def _next(self) -> bytes | None:
        self.started = True
        try:
            piece = await anext(self._pieces)
        except StopAsyncIteration:
            return None
        self.received += len(piece)
        if self.received > self.size:
            raise BodyLengthError(f"the body of {self.name!r} is longer than {self.size} bytes")
        return piece

    async def _end(self) -> None:
        """Read on to the end of the body, which must hold nothing more."""
        while await self._next() is not None:
            pass

    async def whole(self) -> bytes:
        """The body in one piece (a small one)."""
        buffer = bytearray()
        while (piece := await self._next()) is not None:
            buffer += piece
        if self.received != self.size:
            raise self._short()
        return bytes(buffer)

    async def chunks(self, chunk_size: int) -> Chunks:
        """The body's chunks in order, the last one only once the body has ended where its
        size says (BodyLengthError otherwise)."""
        count = -(-self.size // chunk_size)
        buffer = bytearray()
        for index in range(count):
            length = min(chunk_size, self.size - index * chunk_size)
            while len(buffer) < length:
                piece = await self._next()
                if piece is None:
                    raise self._short()
                buffer += piece
            chunk = _take(buffer, length)
            if index == count - 1:
                await self._end()
            yield index, chunk
        if count == 0:
            await self._end()

    def _short(self) -> BodyLengthError:
        return BodyLengthError(
            f"the body of {self.name!r} ended after {self.received} of {self.size} bytes"
        )


def _take(buffer: bytearray, length: int) -> bytes:
    """The first `length` bytes of buffer, removed from it (one copy)."""
    if len(buffer) == length:
        chunk = bytes(buffer)
        buffer.clear()
        return chunk
    with memoryview(buffer) as view:
        chunk = bytes(view[:length])
    del buffer[:length]  # cheap: a bytearray drops its head without moving the rest
    return chunk


async def _digest(data: bytes) -> bytes:
    if len(data) <= HASH_INLINE:
        return hashlib.sha256(data).digest()
    return await asyncio.to_thread(lambda: hashlib.sha256(data).digest())


async def hashed(chunks: Chunks) -> AsyncGenerator[tuple[int, bytes, bytes]]:
    """Each chunk with its SHA-256, hashed in a thread while the next chunk arrives (two
    chunks in memory, besides the one its consumer holds)."""
    pending: tuple[int, bytes, asyncio.Future[bytes]] | None = None
    try:
        async for index, data in chunks:
            hashing = asyncio.ensure_future(_digest(data))
            if pending is not None:
                yield pending[0], pending[1], await pending[2]
            pending = (index, data, hashing)
        if pending is not None:
            last, pending = pending, None
            yield last[0], last[1], await last[2]
    finally:
        if pending is not None:  # a hash under way in a thread cannot be stopped
            await asyncio.gather(pending[2], return_exceptions=True)


def taken(held: Manifest) -> FileError:
    """The refusal of other bytes under a held name, as the owner words it."""
    return FileError(
        Refusal.ALREADY_EXISTS,
        f"{held.name!r} already exists ({held.size} bytes, sha256 "
        f"{held.sha256.hex()[:16]}…); put it with --replace to overwrite it",
    )


class StreamPutter:
    """Puts streamed bodies through a `Putter`'s peers, routes and lookup; `find` gives the
    network's manifest of a name (its owner's, else its successors')."""

    def __init__(self, putter: Putter, find: Callable[[str], Awaitable[Manifest | None]]) -> None:
        self.putter = putter
        self.find = find

    async def put(
        self,
        name: str,
        size: int,
        data: AsyncIterable[bytes],
        replace: bool = False,
        chunk_size: int | None = None,
    ) -> PutOutcome:
        name = check_new_name(name)
        body = Body(data, size, name)
        if size <= SMALL_PUT:
            return await self.putter.put_bytes(name, await body.whole(), replace, chunk_size)
        key = file_key(self.putter.space, name)
        routes = self.putter.routes
        guess = routes.guess(key)
        if guess is not None:
            try:
                return await self._put_when_free(guess, body, replace, chunk_size, guessed=True)
            except FileError as err:
                if err.refusal not in (Refusal.OUT_OF_RANGE, Refusal.UNAVAILABLE):
                    raise
                if body.started:
                    raise _put_again(name, err) from err
            except PeerError as err:
                routes.forget(guess)
                if body.started:
                    raise _put_again(name, err) from err
        last_error: Exception | None = None
        for wait in PUT_RETRY_WAITS:
            await asyncio.sleep(wait)
            owner = await self.putter.lookup(key)
            try:
                return await self._put_when_free(owner, body, replace, chunk_size)
            except (PeerError, FileError) as err:
                # Not now (leaving, or no copy confirmed yet), or no answer: the owner may
                # have changed; it is looked up again if the body is still unread.
                if isinstance(err, FileError) and err.refusal is not Refusal.UNAVAILABLE:
                    raise
                if body.started:
                    raise _put_again(name, err) from err
                last_error = err
                routes.forget(owner)
        assert last_error is not None
        raise last_error

    async def _put_when_free(
        self,
        owner: NodeRef,
        body: Body,
        replace: bool,
        chunk_size: int | None,
        guessed: bool = False,
    ) -> PutOutcome:
        """Put to `owner`, waiting as it asks while it refuses for load and the body is
        unread."""
        return await when_free(
            lambda: self._put_to(owner, body, replace, chunk_size, guessed),
            may_retry=lambda: not body.started,
        )

    async def _put_to(
        self, owner: NodeRef, body: Body, replace: bool, chunk_size: int | None, guessed: bool
    ) -> PutOutcome:
        answerer = self.putter.peers.at(owner.address)
        found = await answerer.find_file(body.name, owner_only=guessed)
        # Only a copy the owner stores is judged against (one shared in place is not).
        held = found.manifest if found is not None and owner.address in found.holders else None
        if held is not None and not replace:
            return await self._same_or_refused(answerer, body, held, guessed)
        try:
            return await self._stream(answerer, body, held, replace, chunk_size, guessed)
        except FileError as err:
            if err.refusal is not Refusal.ALREADY_EXISTS or replace or body.started:
                raise
            # The owner is new to the key and another holder has the name: judged against
            # that holder's copy instead.
            held = await self.find(body.name)
            if held is None:
                raise
        return await self._same_or_refused(answerer, body, held, guessed)

    async def _same_or_refused(
        self, answerer: FileAnswerer, body: Body, held: Manifest, guessed: bool
    ) -> PutOutcome:
        """A held name, without replace: the same bytes are put as the held manifest alone
        (nothing to send), other bytes refused as soon as they differ."""
        if held.size != body.size:
            raise taken(held)
        async with contextlib.aclosing(hashed(body.chunks(held.chunk_size))) as chunks:
            async for index, _, digest in chunks:
                if digest != held.chunks[index]:
                    raise taken(held)
        same = Manifest(
            held.name, held.size, held.sha256, held.chunk_size, held.chunks, time.time()
        )
        header = PutHeader(self.putter.signed(same), owner_only=guessed)
        return await answerer.put_file(header, _no_chunks())

    async def _stream(
        self,
        answerer: FileAnswerer,
        body: Body,
        held: Manifest | None,
        replace: bool,
        chunk_size: int | None,
        guessed: bool,
    ) -> PutOutcome:
        """Every chunk in order, hashed as it passes, then the manifest (manifest_last)."""
        # Over a held file of the same size, its chunk size: the same bytes hash the same.
        alike = held is not None and held.size == body.size
        size = held.chunk_size if held is not None and alike else chunk_size
        promise = Manifest(
            body.name, body.size, b"", size or chunk_size_for(body.size), (), time.time()
        )
        hasher = ManifestHasher(promise)
        failed: list[Exception] = []  # the body's own failure: a wrong length, a bad form

        async def chunks() -> Chunks:
            try:
                async with contextlib.aclosing(hashed(body.chunks(promise.chunk_size))) as passing:
                    async for index, data, digest in passing:
                        hasher.add(index, digest)
                        yield index, data
            except Exception as err:
                # Not a put cut off on its way, whose chunks the owner would keep for a
                # rerun (a body cannot be sent again from here anyway): the put ends here,
                # and its closing manifest (fewer chunks than promised) has the owner
                # refuse it and keep nothing.
                failed.append(err)

        def closing() -> Manifest:
            if failed:
                return hasher.so_far()
            manifest = hasher.manifest()
            if held is not None and alike and manifest.chunks == held.chunks:
                # The held bytes again: with their hash, the owner finds them unchanged.
                manifest = with_changes(manifest, sha256=held.sha256)
            return self.putter.signed(manifest)

        header = PutHeader(promise, replace=replace, owner_only=guessed, manifest_last=True)
        try:
            return await answerer.put_file(header, chunks(), closing)
        except FileError:
            if failed:
                raise failed[0] from None
            raise


async def _no_chunks() -> Chunks:
    return
    yield  # an async generator that yields nothing


def _put_again(name: str, err: Exception) -> FileError:
    """A failure after the body began to leave: it cannot be sent again from here."""
    why = err.message if isinstance(err, FileError) else str(err)
    return FileError(
        Refusal.UNAVAILABLE,
        f"the put of {name!r} failed once its body had begun to leave ({why}); put it again",
        err.retry_after if isinstance(err, FileError) else None,
    )
