"""What the CLI and the console say, as plain values: one unit system (binary) in the
progress bar as in every summary, a get's closing line, and completion that quotes names
the way the console's command line reads them."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from rich.progress import Progress

from chordshare.faces.console import ChordConsole
from chordshare.faces.render import got_line, human
from chordshare.faces.transfers import SpeedColumn


def test_the_progress_speed_counts_in_the_units_of_the_summary() -> None:
    progress = Progress(SpeedColumn())
    task_id = progress.add_task("get", total=100 << 20)
    task = progress.tasks[task_id]
    assert SpeedColumn().render(task).plain == "?"
    task.finished_speed = float(3 << 20)  # 3 MiB/s
    assert SpeedColumn().render(task).plain == f"{human(3 << 20)}/s" == "3.0 MiB/s"


def test_a_gets_closing_line() -> None:
    assert got_line("a.txt", 0, "a.txt", {}) == "got a.txt (an empty file) into a.txt"
    line = got_line("b.bin", 3 << 20, "out/b.bin", {"n2:7000": 1 << 20, "n1:7000": 2 << 20})
    assert (
        line == "got b.bin (3.0 MiB) into out/b.bin; served by n1:7000 (2.0 MiB), n2:7000 (1.0 MiB)"
    )
    resumed = got_line("c.bin", 10, "c.bin", {"n1:7000": 0})
    assert resumed.endswith("all of it from the .part file of an earlier try")
    assert "\x1b" not in got_line("esc\x1b[2J.txt", 1, "x", {"n1:7000": 1})


@pytest.mark.parametrize(
    ("typed", "offered"),
    [
        ("", ["'holiday photos.zip'", "'it'\"'\"'s.txt'", "notes.txt"]),
        ("holi", ["'holiday photos.zip'"]),
        ("'holi", ["'holiday photos.zip'"]),  # a quote opened already
        ("it", ["'it'\"'\"'s.txt'"]),
        ("x", []),
    ],
)
def test_completion_quotes_names_as_the_command_line_reads_them(
    typed: str, offered: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    console = ChordConsole("127.0.0.1:1")
    names = ["holiday photos.zip", "it's.txt", "notes.txt"]
    monkeypatch.setattr(console, "network_names", lambda: names)
    completed = console.complete_get(typed, f"get {typed}", 4, 4 + len(typed))
    assert completed == offered
    # What completion inserts is read back as the name itself.
    for text in completed:
        assert shlex.split(text)[0] in names


def test_the_demo_prints_commands_a_fresh_shell_can_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chordshare.faces.demo import command_name

    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    mine = venv_bin / "chordshare"
    mine.write_text("#!/bin/sh\n")
    mine.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert command_name(str(mine)) == str(mine)  # not on PATH: the path it was run by
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")
    assert command_name(str(mine)) == "chordshare"  # PATH finds this very command
    assert command_name("/usr/lib/python3/chordshare/faces/cli.py") == "chordshare"
