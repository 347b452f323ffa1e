"""The faces load apart: the REST API never loads the command line, the command line never
loads the web server (nor pydantic, to read a command's arguments), and no module of
`chordshare.faces` imports another that leads back to it, at module level or inside a
function.

Each load is checked in a fresh interpreter, since this one has loaded everything."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import chordshare.faces

FACES = Path(chordshare.faces.__file__).parent
PACKAGE = "chordshare.faces"
CLI_MODULES = [
    "typer",
    *(f"{PACKAGE}.{m}" for m in ("cli", "cli_app", "files_cli", "ring_cli", "tools_cli")),
    f"{PACKAGE}.node_cli",
    f"{PACKAGE}.console",
]
WEB_MODULES = ["fastapi", "uvicorn", "starlette", f"{PACKAGE}.api", f"{PACKAGE}.serve"]


def loaded_after(module: str, watched: list[str]) -> list[str]:
    """Which of `watched` (modules or packages) a fresh interpreter has loaded once it has
    imported `module`."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"watched = {watched!r}\n"
        "print(json.dumps(sorted(w for w in watched if w in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_the_api_loads_no_command_line() -> None:
    assert loaded_after(f"{PACKAGE}.api", CLI_MODULES) == []


def test_the_command_line_loads_no_web_server_and_nothing_a_command_runs_alone() -> None:
    lazy = [*WEB_MODULES, "chordshare.sim", f"{PACKAGE}.demo", f"{PACKAGE}.console"]
    assert loaded_after(f"{PACKAGE}.cli", lazy) == []


def test_a_command_reads_its_arguments_without_pydantic(tmp_path: Path) -> None:
    """Typer reads arguments through pydantic unless `cli_values` reads them: a path, text,
    a number and a flag here, and the command then refuses them with its own line."""
    token = tmp_path / "token"
    token.write_text("a-cluster-token-of-the-test\n")
    argv = ["chordshare", "--cluster-token-file", str(token), "lookup", "KEY", "--id", "5"]
    code = (
        "import json, sys\n"
        f"sys.argv = {[*argv, '--node', '127.0.0.1:1', '--json']!r}\n"
        "from chordshare.faces.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as done:\n"
        "    print(json.dumps([done.code, 'pydantic' in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout) == [2, False], result.stderr
    assert "give a KEY name or --id N (one of them)" in result.stderr


def imported_faces(path: Path, faces: set[str]) -> set[str]:
    """The faces modules `path` imports, anywhere in it (a function's imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the faces package itself
                base = f"{PACKAGE}.{base}".rstrip(".")
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if ".".join(parts[:2]) == PACKAGE and len(parts) > 2 and parts[2] in faces:
                found.add(parts[2])
    found.discard(path.stem)
    return found


def import_graph() -> dict[str, set[str]]:
    faces = {path.stem for path in FACES.glob("*.py")}
    return {path.stem: imported_faces(path, faces) for path in sorted(FACES.glob("*.py"))}


def a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as the modules along it, or None when it has none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph[module]):
            cycle = visit(imported)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle is not None:
            return cycle
    return None


def test_the_faces_modules_import_each_other_without_a_cycle() -> None:
    graph = import_graph()
    assert graph["cli"], "the graph is read: the CLI imports its command modules"
    cycle = a_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b", "c"}, "b": {"c"}, "c": {"c2"}, "c2": {"c"}}, ["c", "c2", "c"]),
    ],
)
def test_the_cycle_finder_finds_cycles(
    graph: dict[str, set[str]], expected: list[str] | None
) -> None:
    assert a_cycle(graph) == expected


def test_imports_inside_functions_count(tmp_path: Path) -> None:
    module = tmp_path / "x.py"
    module.write_text(
        "from chordshare.faces import render\n"
        "def later() -> None:\n"
        "    from chordshare.faces.api import create_app\n"
        "    import chordshare.faces.shapes\n"
        "    from . import loops\n"
    )
    faces = {"render", "api", "shapes", "loops", "x"}
    assert imported_faces(module, faces) == {"render", "api", "shapes", "loops"}
