"""A version kept aside under a conflict name is marked wherever files are listed: the
JSON of the CLI and the REST API (`conflict_of`), and the CLI's tables."""

from __future__ import annotations

import hashlib

from apinet import ApiNetwork
from peernet import store_directly
from rich.console import Console

from chordshare.faces.render import files_table
from chordshare.faces.shapes import manifest_json
from chordshare.files.names import conflict_name
from chordshare.sharing.chunking import manifest_of

DATA = b"written on the other side of the split\n"
ASIDE = conflict_name("notes.txt", 1765000000.0, hashlib.sha256(DATA).digest())


def test_the_json_of_a_kept_version_names_what_it_was_written_apart_from() -> None:
    assert manifest_json(manifest_of(DATA, ASIDE, 1024))["conflict_of"] == "notes.txt"
    assert manifest_json(manifest_of(DATA, "notes.txt", 1024))["conflict_of"] is None


def test_the_cli_table_marks_a_kept_version() -> None:
    files = [manifest_json(manifest_of(DATA, n, 1024)) for n in (ASIDE, "notes.txt")]
    console = Console(width=200, record=True)
    console.print(files_table("files", files))
    lines = console.export_text().splitlines()
    assert any(ASIDE in line and "(conflict of notes.txt)" in line for line in lines)
    plain = [line for line in lines if "notes.txt" in line and ASIDE not in line]
    assert plain and "conflict" not in plain[0]


async def test_the_api_lists_a_kept_version_with_what_it_is(net: ApiNetwork) -> None:
    (peer,) = await net.ring(1)
    store_directly(peer, ASIDE, DATA)
    store_directly(peer, "notes.txt", b"the version that kept the name\n")
    async with await net.api(peer) as http:
        for scope in ({}, {"scope": "network"}):
            listing = (await http.get("/api/v1/files", params=scope)).json()
            marks = {f["name"]: f["conflict_of"] for f in listing["files"]}
            assert marks == {ASIDE: "notes.txt", "notes.txt": None}, scope
        schema = (await http.get("/openapi.json")).json()
        assert "conflict_of" in schema["components"]["schemas"]["NodeFile"]["properties"]
