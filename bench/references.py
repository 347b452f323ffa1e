"""Reference throughputs on loopback, to judge our own P2P file transfer against in one run.

A transfer benchmark on a 2-core machine that is busy with other work gives numbers that move
from run to run; an absolute MB/s target means little there. This script measures, in the same
run and on the same machine, what the building blocks of a transfer can do at best, so that a
transfer can be reported as a ratio of them:

- ``raw_tcp_mb_s``: ``size`` bytes over a loopback TCP socket, sent by a separate process with
  ``sendall`` of a pre-generated 1 MiB buffer, received with ``recv_into`` a reused buffer;
  timed from ``connect`` to the last byte.
- ``grpc_stream_mb_s``: a bare ``grpc.aio`` server in a separate process (generic handlers,
  identity bytes serializers, no protobuf, no disk, no hashing) streams ``size`` bytes in
  messages of 64 KiB, 256 KiB, 1 MiB and 4 MiB to a ``grpc.aio`` client in this process.
- ``grpc_upload_mb_s``: the client-streaming direction: this process streams the messages,
  the server counts them and answers with the byte count.
- ``disk_fsync_mb_s``: ``size`` bytes written in 1 MiB writes to a new file, then ``fsync``
  and ``close`` (all timed); the file is deleted after.
- ``sha256_mb_s``: ``hashlib.sha256`` over 1 MiB buffers, ``size`` bytes in all.

MB/s means 10^6 bytes per second. Every measurement runs ``--repeat`` times; the rounds are
interleaved (round 1 of everything, then round 2, ...) so that a burst of noise from other
work does not fall on one measurement only. The JSON has, for each, the list of runs, the
median and the best. Like the node (``chordshare.faces.loops.run``), both processes run on
uvloop where it is installed (``--no-uvloop`` for the stock asyncio loop). Child processes are
killed at the end, also on errors and Ctrl-C, and die with this process (PR_SET_PDEATHSIG).

    .venv/bin/python bench/references.py [--size-mib 256] [--dir DIR] [--repeat 3]

The functions below are importable, e.g. to print the references next to a transfer::

    with spawn_server("grpc") as port:
        mb_s = await grpc_download_once(f"127.0.0.1:{port}", size, 1 << 20)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
import node_procs  # bench/ is the script's directory, so on sys.path

T = TypeVar("T")

MIB = 1 << 20
PIECE = MIB  # TCP sendall pieces, receive buffer, disk writes and hash updates
MESSAGE_SIZES: tuple[int, ...] = (64 << 10, 256 << 10, MIB, 4 * MIB)
MAX_MESSAGE = 16 * MIB  # both directions, both sides: well above the largest message
GRPC_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
]
SERVICE = "chordshare.bench.Reference"
DOWNLOAD = f"/{SERVICE}/Download"  # unary -> stream: request = (size, message size), u64 BE
UPLOAD = f"/{SERVICE}/Upload"  # stream -> unary: reply = bytes received, u64 BE
REQUEST = struct.Struct(">QQ")
COUNT = struct.Struct(">Q")
START_DEADLINE = 30.0  # for a child process to report its port
CALL_DEADLINE = 120.0  # for one timed transfer


def log(message: str) -> None:
    print(f"[references {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def mb_s(size: int, seconds: float) -> float:
    """Throughput in MB/s (10^6 bytes per second)."""
    return size / seconds / 1e6


def summary(runs: list[float]) -> dict[str, Any]:
    """The runs (MB/s, rounded), their median and their best."""
    return {
        "runs": [round(r, 1) for r in runs],
        "median": round(statistics.median(runs), 1),
        "best": round(max(runs), 1),
    }


def size_label(size: int) -> str:
    return f"{size // MIB}MiB" if size % MIB == 0 else f"{size >> 10}KiB"


def run_loop(coro: Coroutine[Any, Any, T], use_uvloop: bool = True) -> T:
    """Run a coroutine on uvloop if asked and installed, else on the stock asyncio loop."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:  # not built for this platform
            pass
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


def loop_name(use_uvloop: bool) -> str:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            return "asyncio"
        return f"uvloop {uvloop.__version__}"
    return "asyncio"


# --------------------------------------------------------------------------- child processes


def _announce(port: int) -> None:
    print(f"PORT {port}", flush=True)


def serve_tcp() -> None:
    """Child: for each connection, read the size wanted (u64 BE) and send that many bytes."""
    block = os.urandom(PIECE)  # the pre-generated buffer
    view = memoryview(block)
    with socket.create_server(("127.0.0.1", 0), backlog=8) as listener:
        _announce(listener.getsockname()[1])
        while True:
            conn, _ = listener.accept()
            with conn:
                header = b""
                while len(header) < COUNT.size:
                    chunk = conn.recv(COUNT.size - len(header))
                    if not chunk:
                        break
                    header += chunk
                if len(header) < COUNT.size:
                    continue
                (left,) = COUNT.unpack(header)
                with contextlib.suppress(OSError):  # the receiver gave up
                    while left >= PIECE:
                        conn.sendall(view)
                        left -= PIECE
                    if left:
                        conn.sendall(view[:left])


def _identity(message: bytes) -> bytes:
    return message


async def _download(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    size, message_size = REQUEST.unpack(request)
    message = _BLOCK[:message_size]  # one bytes object, yielded again and again
    full, rest = divmod(size, message_size)
    for _ in range(full):
        yield message
    if rest:
        yield message[:rest]


async def _upload(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
    received = 0
    async for message in requests:
        received += len(message)
    return COUNT.pack(received)


_BLOCK = b""  # set in serve_grpc: the pre-generated source of every message


async def serve_grpc() -> None:
    """Child: a bare grpc.aio server with one server-streaming and one client-streaming method."""
    global _BLOCK
    _BLOCK = os.urandom(max(MESSAGE_SIZES))
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Download": grpc.unary_stream_rpc_method_handler(
                _download, request_deserializer=_identity, response_serializer=_identity
            ),
            "Upload": grpc.stream_unary_rpc_method_handler(
                _upload, request_deserializer=_identity, response_serializer=_identity
            ),
        },
    )
    server = grpc.aio.server(options=GRPC_OPTIONS)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _announce(port)
    await server.wait_for_termination()


@contextlib.contextmanager
def spawn_server(kind: str, use_uvloop: bool = True) -> Iterator[int]:
    """Start this script as a ``tcp`` or ``grpc`` server process; yield its port; kill it."""
    with spawn_server_process(kind, use_uvloop) as (port, _):
        yield port


@contextlib.contextmanager
def spawn_server_process(kind: str, use_uvloop: bool = True) -> Iterator[tuple[int, int]]:
    """As `spawn_server`, yielding (port, pid): the pid to count the server's CPU time."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve", kind]
    if not use_uvloop:
        argv.append("--no-uvloop")
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        preexec_fn=node_procs.die_with_parent,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + START_DEADLINE
        line = b""
        while not line.startswith(b"PORT "):  # readline blocks; the deadline is a backstop
            line = proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} server did not start (exit code {proc.poll()})")
        yield int(line.split()[1]), proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# --------------------------------------------------------------------------- measurements


def cpu_seconds(pids: Iterable[int] = ()) -> float:
    """CPU time (user + system, every thread) used so far by this process and `pids`."""
    own = os.times()
    total = own.user + own.system
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                # Fields after the command name (which may hold spaces): utime is the 14th.
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process is gone: it used no more
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


@dataclass
class CpuMeter:
    """CPU seconds this process and `pids` used inside a `with` block."""

    pids: Sequence[int] = ()
    seconds: float = 0.0
    _start: float = 0.0

    def __enter__(self) -> CpuMeter:
        self._start = cpu_seconds(self.pids)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = cpu_seconds(self.pids) - self._start


def raw_tcp_once(port: int, size: int) -> float:
    """MB/s of ``size`` bytes from the ``tcp`` server at ``port``, connect to last byte."""
    buffer = bytearray(PIECE)
    received = 0
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(COUNT.pack(size))
        while received < size:
            n = conn.recv_into(buffer)
            if n == 0:
                raise RuntimeError(f"TCP sender closed after {received} of {size} bytes")
            received += n
        elapsed = time.perf_counter() - start
    return mb_s(size, elapsed)


def grpc_channel(target: str) -> grpc.aio.Channel:
    """An insecure grpc.aio channel with the message size limits raised."""
    return grpc.aio.insecure_channel(target, options=GRPC_OPTIONS)


async def grpc_download_once(channel: grpc.aio.Channel, size: int, message_size: int) -> float:
    """MB/s of ``size`` bytes streamed by the server in ``message_size`` messages."""
    download = channel.unary_stream(
        DOWNLOAD, request_serializer=_identity, response_deserializer=_identity
    )
    received = 0
    start = time.perf_counter()
    call = download(REQUEST.pack(size, message_size), timeout=CALL_DEADLINE)
    while True:
        message = await call.read()
        if message is grpc.aio.EOF:
            break
        received += len(message)
    elapsed = time.perf_counter() - start
    if received != size:
        raise RuntimeError(f"gRPC download got {received} of {size} bytes")
    return mb_s(size, elapsed)


async def grpc_upload_once(channel: grpc.aio.Channel, size: int, message_size: int) -> float:
    """MB/s of ``size`` bytes streamed to the server in ``message_size`` messages."""
    upload = channel.stream_unary(
        UPLOAD, request_serializer=_identity, response_deserializer=_identity
    )
    message = _client_block(message_size)
    full, rest = divmod(size, message_size)

    async def messages() -> AsyncIterator[bytes]:
        for _ in range(full):
            yield message
        if rest:
            yield message[:rest]

    start = time.perf_counter()
    reply = await upload(messages(), timeout=CALL_DEADLINE)
    elapsed = time.perf_counter() - start
    (counted,) = COUNT.unpack(reply)
    if counted != size:
        raise RuntimeError(f"gRPC upload: server counted {counted} of {size} bytes")
    return mb_s(size, elapsed)


_CLIENT_BLOCKS: dict[int, bytes] = {}


def _client_block(message_size: int) -> bytes:
    if message_size not in _CLIENT_BLOCKS:
        _CLIENT_BLOCKS[message_size] = os.urandom(message_size)
    return _CLIENT_BLOCKS[message_size]


def disk_fsync_once(directory: str | os.PathLike[str], size: int) -> float:
    """MB/s of writing ``size`` bytes in 1 MiB writes to a new file, fsync and close included."""
    block = memoryview(os.urandom(PIECE))
    path = os.path.join(directory, f"references-{os.getpid()}-{time.monotonic_ns()}.bin")
    try:
        start = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            left = size
            while left > 0:
                piece = block if left >= PIECE else block[:left]
                written = os.write(fd, piece)
                while written < len(piece):  # short writes are rare but legal
                    written += os.write(fd, piece[written:])
                left -= len(piece)
            os.fsync(fd)
        finally:
            os.close(fd)
        elapsed = time.perf_counter() - start
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return mb_s(size, elapsed)


def sha256_once(size: int) -> float:
    """MB/s of hashlib.sha256 over 1 MiB buffers, ``size`` bytes in all."""
    block = memoryview(os.urandom(PIECE))
    digest = hashlib.sha256()
    start = time.perf_counter()
    left = size
    while left >= PIECE:
        digest.update(block)
        left -= PIECE
    if left:
        digest.update(block[:left])
    digest.digest()
    return mb_s(size, time.perf_counter() - start)


def filesystem_of(directory: str | os.PathLike[str]) -> str:
    """The type of the filesystem holding ``directory`` (tmpfs makes fsync meaningless)."""
    path = os.path.realpath(directory)
    best, kind = "", "unknown"
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) < 3:
                continue
            mount = fields[1].replace("\\040", " ")
            inside = path == mount or path.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, fields[2]
    return kind


# --------------------------------------------------------------------------- all of them


async def _timed_rounds(
    repeat: int, steps: dict[str, Callable[[], Awaitable[float]]]
) -> dict[str, list[float]]:
    runs: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(repeat):
        for name, step in steps.items():
            value = await step()
            runs[name].append(value)
            log(f"round {round_ + 1}/{repeat} {name}: {value:.1f} MB/s")
    return runs


async def measure_all(
    size: int,
    directory: str | os.PathLike[str],
    repeat: int = 3,
    message_sizes: tuple[int, ...] = MESSAGE_SIZES,
    use_uvloop: bool = True,
) -> dict[str, Any]:
    """Every reference, ``repeat`` interleaved rounds; the result is JSON-ready."""
    with (
        spawn_server("tcp", use_uvloop) as tcp_port,
        spawn_server("grpc", use_uvloop) as grpc_port,
    ):
        async with grpc_channel(f"127.0.0.1:{grpc_port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), START_DEADLINE)
            for message_size in message_sizes:  # warm-up: connection, windows, allocator
                await grpc_download_once(channel, 8 * message_size, message_size)
                await grpc_upload_once(channel, 8 * message_size, message_size)
            raw_tcp_once(tcp_port, 8 * MIB)

            async def tcp() -> float:
                return raw_tcp_once(tcp_port, size)

            def down(m: int) -> Callable[[], Awaitable[float]]:
                return lambda: grpc_download_once(channel, size, m)

            def up(m: int) -> Callable[[], Awaitable[float]]:
                return lambda: grpc_upload_once(channel, size, m)

            async def disk() -> float:
                return disk_fsync_once(directory, size)

            async def sha() -> float:
                return sha256_once(size)

            steps: dict[str, Callable[[], Awaitable[float]]] = {"raw_tcp": tcp}
            for m in message_sizes:
                steps[f"grpc_stream {size_label(m)}"] = down(m)
                steps[f"grpc_upload {size_label(m)}"] = up(m)
            steps["disk_fsync"] = disk
            steps["sha256"] = sha
            runs = await _timed_rounds(repeat, steps)

    def per_message(prefix: str) -> dict[str, Any]:
        return {size_label(m): summary(runs[f"{prefix} {size_label(m)}"]) for m in message_sizes}

    return {
        "raw_tcp_mb_s": summary(runs["raw_tcp"]),
        "grpc_stream_mb_s": per_message("grpc_stream"),
        "grpc_upload_mb_s": per_message("grpc_upload"),
        "disk_fsync_mb_s": summary(runs["disk_fsync"]),
        "sha256_mb_s": summary(runs["sha256"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="bytes per run, in MiB")
    parser.add_argument("--dir", default=None, help="directory for the disk test (a temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    parser.add_argument("--serve", choices=("tcp", "grpc"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    use_uvloop = not args.no_uvloop

    if args.serve == "tcp":
        serve_tcp()
        return 0
    if args.serve == "grpc":
        run_loop(serve_grpc(), use_uvloop)
        return 0
    if args.size_mib < 1 or args.repeat < 1:
        parser.error("--size-mib and --repeat must be at least 1")

    size = args.size_mib * MIB
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        directory = args.dir or stack.enter_context(tempfile.TemporaryDirectory())
        measuring = measure_all(size, directory, args.repeat, use_uvloop=use_uvloop)
        results = run_loop(measuring, use_uvloop)
        fs = filesystem_of(directory)
    report = {
        "unit": "MB/s (10^6 bytes/s)",
        "size_mib": args.size_mib,
        "size_bytes": size,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "grpc": grpc.__version__,
        "loop": loop_name(use_uvloop),
        "disk_dir": str(args.dir) if args.dir else "(temporary directory)",
        "disk_filesystem": fs,
        **results,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
