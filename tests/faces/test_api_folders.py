"""Folders in the REST API: an upload of a folder (one part per file, named by its path)
lists as a folder with its file count and size, reads back as its entries and as a zip of
the very bytes and modes, and is removed with every file in it; a path outside the folder
or two files of one path are refused with 400 and store nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from apinet import ApiNetwork as Network

from chordshare.faces import api_folders
from chordshare.files import packs
from chordshare.files.folders import (
    MAGIC_V1,
    MAX_FOLDER_NAME_BYTES,
    BadFolder,
    Folder,
    FolderEntry,
    check_folder_name,
    folder_name,
    record_name,
)
from chordshare.sharing.folder_client import FolderClient
from chordshare.sharing.folder_packs import read_entry

FILES = {
    "a.txt": b"alpha",
    "sub/b.bin": os.urandom(90_000),
    "sub/deeper/empty": b"",
    "ünï/日本.txt": "日本語".encode(),
}


def parts(files: dict[str, bytes]) -> list[tuple[str, tuple[str, bytes]]]:
    return [("file", (path, data)) for path, data in files.items()]


async def test_a_folder_uploaded_listed_zipped_and_removed(net: Network) -> None:
    peers = await net.ring(2)
    async with await net.api(peers[0]) as http:
        put = await http.post("/api/v1/folders/pics/2024", files=parts(FILES))
        assert put.status_code == 201, put.text
        assert put.json()["files"] == 4 and not put.json()["unchanged"]

        listed = (await http.get("/api/v1/files", params={"scope": "network"})).json()
        (folder,) = [f for f in listed["files"] if f["kind"] == "folder"]
        assert folder["name"] == "pics/2024" and folder["files"] == 4
        assert folder["size"] == sum(map(len, FILES.values()))

        shown = (await http.get("/api/v1/folders/pics/2024")).json()
        assert [e["path"] for e in shown["entries"] if e["type"] == "file"] == sorted(FILES)

        one = await http.get("/api/v1/files/pics/2024/sub/b.bin")
        assert one.status_code == 200 and one.content == FILES["sub/b.bin"]

        zipped = await http.get("/api/v1/folders/pics/2024", params={"format": "zip"})
        assert zipped.status_code == 200
        assert 'filename="2024.zip"' in zipped.headers["content-disposition"]
        with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
            got = {
                i.filename.removeprefix("2024/"): archive.read(i)
                for i in archive.infolist()
                if not i.is_dir()
            }
            modes = {(i.external_attr >> 16) & 0o777 for i in archive.infolist()}
        assert got == FILES and modes

        gone = await http.delete("/api/v1/folders/pics/2024")
        assert gone.status_code == 204
        assert (await http.get("/api/v1/folders/pics/2024")).status_code == 404
        assert (await http.get("/api/v1/files/pics/2024/a.txt")).status_code == 404


async def test_a_folder_upload_outside_itself_or_twice_one_path_is_refused(
    net: Network,
) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer) as http:
        for files in ({"../x": b"x"}, {"/etc/x": b"x"}, {"a": b"1", "a/b": b"2"}):
            answer = await http.post("/api/v1/folders/bad", files=parts(files))
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["message"]
        # A folder of more parts than a form takes by default is read whole: its bad path
        # at the end is what refuses it.
        many = {**{f"{i}.txt": b"" for i in range(1_001)}, "../x": b"x"}
        answer = await http.post("/api/v1/folders/bad", files=parts(many))
        assert answer.status_code == 400 and "'../x'" in answer.json()["error"]["message"]
        assert peer.store.manifest("bad/x") is None and peer.store.manifest("bad/a") is None


async def test_a_file_inside_a_pack_downloads_with_ranges_and_validators(net: Network) -> None:
    peers = await net.ring(2)
    data = os.urandom(5_000)
    async with await net.api(peers[1]) as http:
        put = await http.post(
            "/api/v1/folders/docs", files=parts({"a.txt": b"a", "sub/r é.bin": data})
        )
        assert put.status_code == 201, put.text
        url = "/api/v1/files/docs/sub/r é.bin"

        whole = await http.get(url)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-disposition"] == "attachment; filename*=utf-8''r%20%C3%A9.bin"
        assert whole.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        assert sum(int(s.split("=")[1]) for s in whole.headers["x-chordshare-sources"].split(","))

        part = await http.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
        tail = await http.get(url, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == data[-10:]
        past = await http.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert past.status_code == 416

        head = await http.head(url)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(data))
        same = await http.get(url, headers={"If-None-Match": whole.headers["etag"]})
        assert same.status_code == 304

        for missing in ("docs/sub/other.bin", "docs/sub", "nodocs/sub/r é.bin"):
            assert (await http.get(f"/api/v1/files/{missing}")).status_code == 404, missing


async def test_a_zip_fetches_each_pack_once_and_drops_it_past_its_last_file(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "PACK_BYTES", 160_000)
    monkeypatch.setattr(packs, "SMALL_FILE", 5_000)
    small = {f"s/{i:03}.txt": os.urandom(1_000) for i in range(300)}
    own = {"s/150-own.bin": os.urandom(6_000), "z.bin": os.urandom(7_000)}
    fetched: dict[int, Path] = {}
    alone: list[str] = []
    seen: list[tuple[int, dict[int, bool]]] = []
    fetch_pack, fetch = FolderClient.fetch_pack, FolderClient.fetch

    async def counted_pack(self: FolderClient, folder: Folder, index: int, scratch: Path) -> Path:
        assert index not in fetched, f"pack {index} fetched twice"
        fetched[index] = await fetch_pack(self, folder, index, scratch)
        return fetched[index]

    async def counted(
        self: FolderClient, folder: Folder, entry: FolderEntry, out: Path
    ) -> dict[str, int]:
        alone.append(entry.path)
        return await fetch(self, folder, entry, out)

    def watched(pack: int, entry: FolderEntry) -> bytes:
        # In a thread, while the loop may fetch the next pack: a copy of what was fetched.
        seen.append((entry.pack or 0, {i: p.exists() for i, p in dict(fetched).items()}))
        return read_entry(pack, entry)

    monkeypatch.setattr(FolderClient, "fetch_pack", counted_pack)
    monkeypatch.setattr(FolderClient, "fetch", counted)
    monkeypatch.setattr(api_folders, "read_entry", watched)
    [peer] = await net.ring(1)
    async with await net.api(peer) as http:
        put = await http.post("/api/v1/folders/many", files=parts({**small, **own}))
        assert put.status_code == 201, put.text
        zipped = await http.get("/api/v1/folders/many", params={"format": "zip"})
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
        got = {name.removeprefix("many/"): archive.read(name) for name in names}
    assert names == [f"many/{path}" for path in sorted({**small, **own})]
    assert got == {**small, **own}
    assert sorted(fetched) == [0, 1] and sorted(alone) == sorted(own)
    assert len(seen) == len(small)
    assert all(exists[pack] for pack, exists in seen)  # cut from its fetched pack
    assert not any(exists[0] for pack, exists in seen if pack == 1)  # pack 0 dropped by then


async def test_a_folders_packs_are_listed_as_part_of_it_only(net: Network) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer) as http:
        put = await http.post("/api/v1/folders/notes", files=parts({"a.txt": b"a", "b": b"b"}))
        assert put.status_code == 201, put.text
        assert peer.store.manifest(packs.pack_name("notes", 0)) is not None
        for scope in ("node", "network"):
            listed = await http.get("/api/v1/files", params={"scope": scope})
            assert [f["name"] for f in listed.json()["files"]] == ["notes"], scope


async def test_an_upload_under_a_name_kept_for_folders_is_refused(net: Network) -> None:
    [peer] = await net.ring(1)
    async with await net.api(peer) as http:
        for kept in ("x.chordshare-pack-0", "d/x.chordshare-pack-12", "x.chordshare-folder"):
            answers = [
                await http.put(f"/api/v1/files/{kept}", content=b"x"),
                await http.post("/api/v1/files", files={"file": (kept, b"x")}),
                await http.post("/api/v1/files", files={"file": ("f", b"x")}, data={"name": kept}),
                await http.post(  # `size` first: the form that streams
                    "/api/v1/files", files={"file": ("f", b"x")}, data={"size": "1", "name": kept}
                ),
                await http.post("/upload_file", files={"file": ("f", b"x")}, data={"name": kept}),
            ]
            for answer in answers:
                assert answer.status_code == 400, (kept, answer.text)
                error = answer.json()["error"]
                assert error["code"] == "bad_name" and "kept for folders'" in error["message"]
            assert peer.store.manifest(kept) is None
        like = await http.put("/api/v1/files/x.chordshare-pack-01", content=b"x")
        assert like.status_code == 201, like.text


async def test_a_link_to_a_file_inside_a_pack_is_refused(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "SMALL_FILE", 10)
    [peer] = await net.ring(1)
    async with await net.api(peer) as http:
        files = {"sub/a.txt": b"packed", "own.bin": b"a file of its own"}
        put = await http.post("/api/v1/folders/docs", files=parts(files))
        assert put.status_code == 201, put.text
        refused = await http.get("/api/v1/link", params={"name": "docs/sub/a.txt"})
        assert refused.status_code == 404
        message = refused.json()["error"]["message"]
        assert "inside folder 'docs'" in message and "no link of its own" in message
        own = await http.get("/api/v1/link", params={"name": "docs/own.bin"})
        assert own.status_code == 200 and own.json()["link"].startswith("chordshare://")
        missing = await http.get("/api/v1/link", params={"name": "docs/sub/none.txt"})
        assert missing.status_code == 404
        assert "no link of its own" not in missing.json()["error"]["message"]


async def test_a_folder_named_before_packs_is_found_and_removed_but_not_made(
    net: Network,
) -> None:
    """Packs' names are longer than a folder's manifest's: a folder stored earlier under a
    name too long for a new one's packs is still read and removed; a new one is refused."""
    peers = await net.ring(1)
    name = "n" * (MAX_FOLDER_NAME_BYTES + 2)
    folder_name(name)  # a name a folder may be stored under...
    with pytest.raises(BadFolder, match="too long for its packs"):
        check_folder_name(name)  # ...but not a new folder's
    body = {"name": name, "entries": [{"path": "d", "type": "dir", "mode": 0o755}]}
    files = peers[0].files(peers[0].server.node)
    await files.put_bytes(record_name(name), MAGIC_V1 + json.dumps(body).encode())
    async with await net.api(peers[0]) as http:
        shown = await http.get(f"/api/v1/folders/{name}")
        assert shown.status_code == 200 and shown.json()["entries"][0]["path"] == "d"
        made = await http.post(f"/api/v1/folders/{name}", files=parts({"a.txt": b"a"}))
        assert made.status_code == 400 and "too long" in made.text
        assert (await http.delete(f"/api/v1/folders/{name}")).status_code == 204
        assert (await http.get(f"/api/v1/folders/{name}")).status_code == 404
