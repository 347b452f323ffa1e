"""chordshare as a user installs it: the wheel built from this tree, installed into a fresh
virtual environment, whose own `chordshare` command runs a node, puts a file and gets it
back, with nothing from this checkout on its path."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import eventually

pytestmark = [pytest.mark.system, pytest.mark.processes, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"node \d+ serving at (\S+?),")


def run(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `chordshare` command of a fresh venv with the wheel of this tree installed."""
    work = tmp_path_factory.mktemp("install")
    built = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", work / "dist", ROOT, cwd=work
    )
    assert built.returncode == 0, built.stderr
    [wheel] = (work / "dist").glob("chordshare-*.whl")
    venv.create(work / "venv", with_pip=True)
    python = work / "venv" / "bin" / "python"
    done = run(python, "-m", "pip", "install", "--quiet", wheel, cwd=work)
    assert done.returncode == 0, done.stderr
    return work / "venv" / "bin" / "chordshare"


@pytest.fixture
def node(installed: Path, tmp_path: Path) -> Iterator[str]:
    log = (tmp_path / "node.log").open("w")
    process = subprocess.Popen(
        [installed, "node", "--bind", "127.0.0.1:0", "--data-dir", tmp_path / "data"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:

        def ready() -> str:
            found = READY.search((tmp_path / "node.log").read_text())
            assert found, "the node has not said where it serves yet"
            return found[1]

        yield eventually(ready, 30)
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def test_the_installed_command_says_its_version(installed: Path, tmp_path: Path) -> None:
    from importlib.metadata import version

    done = run(installed, "--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"chordshare {version('chordshare')}"
    # It is the venv's own package, not this checkout's.
    where = run(
        installed.with_name("python"),
        "-c",
        "import chordshare; print(chordshare.__file__)",
        cwd=tmp_path,
    )
    assert str(installed.parents[1]) in where.stdout and str(ROOT) not in where.stdout


def test_the_installed_command_puts_and_gets_a_file(
    installed: Path, node: str, tmp_path: Path
) -> None:
    source = tmp_path / "holiday.jpg"
    source.write_bytes(os.urandom(300_000))
    put = run(installed, "put", source, "--node", node, cwd=tmp_path)
    assert put.returncode == 0, put.stderr
    back = tmp_path / "back.jpg"
    got = run(installed, "get", "holiday.jpg", "-o", back, "--node", node, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert back.read_bytes() == source.read_bytes()
