"""The local end of a put or a get from a terminal (the CLI and the console): which file a
put reads, where a get writes, and the progress bar on stderr while bytes move."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from chordshare.faces.render import err_console, human
from chordshare.files.names import local_name, printable


def put_source(path: Path) -> int:
    """The size of the one file a put stores; ValueError saying what else `path` is."""
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; put stores one file")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    return path.stat().st_size


def destination(name: str, output: Path | None, force: bool) -> Path:
    """Where a get writes: `output`, the name's last part inside it when it is a directory,
    or that last part in the current directory (`get photos/2024/a.jpg` writes ./a.jpg, as
    curl -O and wget do). The name's folders are never made locally, so no name can write
    outside the directory asked for. FileExistsError when a file is there already and
    `force` is not given."""
    saved = local_name(name)
    path = output or Path(saved)
    if path.is_dir():
        path = path / saved
    if not force and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"{path} exists: give --force to overwrite it, or -o another path")
    return path


class SpeedColumn(ProgressColumn):
    """The transfer's speed in the binary units every other figure uses (Rich's own column
    counts in decimal MB)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{human(int(speed))}/s", style="progress.data.speed")


def transfer_bar(
    what: str, total: int, shown: bool
) -> tuple[AbstractContextManager[object], Callable[[int], None]]:
    """A Rich progress bar on stderr (only on a terminal) and the callback that feeds it."""
    if not shown or not err_console.is_terminal:
        return nullcontext(), lambda n: None
    progress = Progress(
        TextColumn("[bold]{task.description}"),  # markup: the description is escaped
        BarColumn(),
        DownloadColumn(binary_units=True),
        SpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    task = progress.add_task(escape(printable(what)), total=total)
    return progress, lambda n: progress.advance(task, n)
