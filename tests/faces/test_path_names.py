"""A name with folders (`photos/2024/a.jpg`) where it becomes a local file: `chordshare get`
writes its last part in the current directory (or in the directory given with -o), the
REST API takes it as a path and names the download by its last part, and nothing is ever
written outside the directory asked for."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from apinet import ApiNetwork as Network

from chordshare.faces.api_download import content_disposition
from chordshare.faces.transfers import destination
from chordshare.files.names import BadName

CLI = (sys.executable, "-m", "chordshare.faces.cli")
DATA = b"a photo" * 1000


def test_a_get_writes_the_last_part_of_a_name_where_it_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert destination("photos/2024/a.jpg", None, False) == Path("a.jpg")
    (tmp_path / "into").mkdir()
    into = tmp_path / "into"
    assert destination("photos/2024/a.jpg", into, False) == into / "a.jpg"
    assert destination("a.jpg", into / "b.jpg", False) == into / "b.jpg"
    for bad in ("../a.jpg", "photos/../../a.jpg", "/etc/passwd", "a/..", ".."):
        with pytest.raises(BadName):
            destination(bad, into, False)


def test_a_download_is_named_by_the_last_part_of_its_name() -> None:
    assert content_disposition("photos/2024/a.jpg") == 'attachment; filename="a.jpg"'
    assert content_disposition("notes/é t.txt") == "attachment; filename*=utf-8''%C3%A9%20t.txt"
    with pytest.raises(BadName):
        content_disposition("../../etc/passwd")


async def test_a_name_with_folders_through_the_cli_and_the_api(
    net: Network, tmp_path: Path
) -> None:
    [peer] = await net.ring(1)
    node = peer.server.node.me.address
    async with await net.api(peer) as http:
        put = await http.put("/api/v1/files/photos/2024/a.jpg", content=DATA)
        assert put.status_code == 201 and put.json()["name"] == "photos/2024/a.jpg"
        for path in ("photos/2024/a.jpg", "photos%2F2024%2Fa.jpg"):
            got = await http.get(f"/api/v1/files/{path}")
            assert got.status_code == 200 and got.content == DATA
            assert got.headers["content-disposition"] == 'attachment; filename="a.jpg"'
        refused = await http.get("/api/v1/files/photos/..%2F..%2Fsecret")
        assert refused.status_code == 400

    work = tmp_path / "work"
    work.mkdir()
    data = peer.settings.data_dir

    def written() -> set[Path]:  # every file but the node's own
        return {p for p in tmp_path.rglob("*") if not p.is_relative_to(data)}

    before = written()
    process = await asyncio.create_subprocess_exec(
        *CLI,
        "get",
        "photos/2024/a.jpg",
        "--node",
        node,
        cwd=work,
        env=os.environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert (work / "a.jpg").read_bytes() == DATA
    assert written() - before == {work / "a.jpg"}
