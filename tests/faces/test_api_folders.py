"""Folders in the REST API: an upload of a folder (one part per file, named by its path)
lists as a folder with its file count and size, reads back as its entries and as a zip of
the very bytes and modes, and is removed with every file in it; a path outside the folder
or two files of one path are refused with 400 and store nothing."""

from __future__ import annotations

import io
import os
import zipfile

from apinet import ApiNetwork as Network

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
