"""Writing and reading a large file around the page cache (O_DIRECT), where that works.

A download writes every byte once and reads it back once (the whole-file hash). Through the
page cache each write copies the bytes into pages the kernel must first find: on a virtual
machine whose host hands out memory lazily (and takes freed memory back), fresh pages cost
a host fault each, and a 256 MiB download spent 2 ms of system time per MB on them, more
than the rest of the download together. With O_DIRECT the disk reads and writes our own
buffers: one page-aligned buffer per thread, reused, so no fresh memory and no page cache.

Only aligned pieces go direct (offset and length multiples of ALIGN, which every chunk but a
file's last one is); the rest, and everything on a file system that refuses O_DIRECT
(tmpfs, some network file systems), goes through the page cache as before. The kernel keeps
the two views of a file coherent (a direct read first writes back cached pages of its
range). Blocking calls: run them in threads.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
from typing import Any

ALIGN = 4096  # a multiple of every disk's logical block size, and mmap's page size
O_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux only


class _Buffers(threading.local):
    """One page-aligned buffer per thread, grown to the largest piece that thread moved."""

    buffer: mmap.mmap | None = None

    def get(self, size: int) -> mmap.mmap:
        if self.buffer is None or len(self.buffer) < size:
            if self.buffer is not None:
                self.buffer.close()
            self.buffer = mmap.mmap(-1, -(-size // ALIGN) * ALIGN)
        return self.buffer


_buffers = _Buffers()


def aligned(length: int, offset: int) -> bool:
    return length > 0 and length % ALIGN == 0 and offset % ALIGN == 0


class DirectFile:
    """A file opened (created if need be) twice: through the page cache (`fd`, for fsync,
    truncation and unaligned pieces) and, when the file system allows, around it. `close`
    closes both."""

    def __init__(self, path: str | os.PathLike[str], mode: int = 0o644) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
        self.direct_fd: int | None = None
        if O_DIRECT:
            try:
                self.direct_fd = os.open(path, os.O_RDWR | O_DIRECT)
            except OSError as err:
                if err.errno != errno.EINVAL:
                    os.close(self.fd)
                    raise

    @property
    def direct(self) -> bool:
        return self.direct_fd is not None

    def _give_up_direct(self) -> None:
        """The file system took the open but not the I/O: use the page cache from now on."""
        if self.direct_fd is not None:
            os.close(self.direct_fd)
            self.direct_fd = None

    def write(self, data: bytes | memoryview, offset: int) -> None:
        """Write data at offset, all of it."""
        view = memoryview(data)
        if self.direct_fd is not None and aligned(len(view), offset):
            buffer = _buffers.get(len(view))
            buffer[: len(view)] = view
            try:
                _pwrite_all(self.direct_fd, memoryview(buffer)[: len(view)], offset)
                return
            except OSError as err:
                if err.errno != errno.EINVAL:
                    raise
                self._give_up_direct()
        _pwrite_all(self.fd, view, offset)

    def feed(self, sink: Any, length: int, offset: int) -> int:
        """Pass the bytes at offset..offset+length to sink.update (a hashlib object), read
        around the page cache when possible; returns how many there were (fewer at EOF)."""
        if self.direct_fd is not None and aligned(length, offset):
            buffer = _buffers.get(length)
            try:
                got = os.preadv(self.direct_fd, [memoryview(buffer)[:length]], offset)
            except OSError as err:
                if err.errno != errno.EINVAL:
                    raise
                self._give_up_direct()
            else:
                if got == length:
                    sink.update(memoryview(buffer)[:length])
                    return got
                # A short direct read (the file ends inside the piece): read it plainly.
        done = 0
        while done < length:
            piece = os.pread(self.fd, length - done, offset + done)
            if not piece:
                break
            sink.update(piece)
            done += len(piece)
        return done

    def close(self) -> None:
        try:
            self._give_up_direct()
        finally:
            os.close(self.fd)


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:  # pwrite may write less than asked
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
