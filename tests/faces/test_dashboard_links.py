"""Links in the dashboard: a file's or a folder's link shown to copy, and a link opened
(a folder's as a zip), in headless Chromium; and the REST API's link routes."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from browser import browser_page, browser_test
from peernet import PeerNetwork

from chordshare.faces.api import ApiServer
from chordshare.faces.api_token import ApiAuth, load_or_make_token
from chordshare.files.folders import record_name
from chordshare.files.links import parse_link

OLD_ALBUM = {"a.txt": b"first a", "sub/b.bin": b"first b" * 1000}
NEW_ALBUM = {"a.txt": b"second a", "sub/c.bin": b"other"}


class Served:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    async def put(self, name: str, data: bytes, replace: bool = False) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            answer = await http.put(
                f"/api/v1/files/{name}",
                params={"replace": "true"} if replace else {},
                content=data,
                headers={"Authorization": f"Bearer {self.token}"},
            )
        assert answer.status_code in (200, 201), answer.text

    async def put_folder(self, name: str, files: dict[str, bytes]) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            answer = await http.post(
                f"/api/v1/folders/{name}",
                params={"replace": "true"},
                files=[("file", (path, data)) for path, data in files.items()],
                headers={"Authorization": f"Bearer {self.token}"},
            )
        assert answer.status_code in (200, 201), answer.text


def unzipped(data: bytes) -> dict[str, bytes]:
    """A zip's files by path."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    network = PeerNetwork(tmp_path)
    api: ApiServer | None = None
    try:
        [peer] = await network.ring(1)
        token = load_or_make_token(peer.settings.data_dir)
        api = ApiServer(peer, "127.0.0.1:0", lambda: None, ApiAuth(token))
        yield Served(await api.start(), token)
    finally:
        if api is not None:
            await api.stop()
        await network.close()


async def test_the_api_gives_a_files_link_and_serves_the_bytes_it_names(served: Served) -> None:
    await served.put("notes.txt", b"the first notes")
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        info = (await http.get("/api/v1/link", params={"name": "notes.txt"})).json()
        link = parse_link(info["link"])
        assert info["manifest_id"] == link.manifest_id.hex() and link.name == "notes.txt"
        assert info["needs_cluster_token"] is False and link.via
        assert info["kind"] is None
        await served.put("notes.txt", b"the second notes", replace=True)
        got = await http.get("/api/v1/link/file", params={"link": info["link"]})
        assert got.status_code == 200 and got.content == b"the first notes"
        bad = await http.get("/api/v1/link/file", params={"link": info["link"][:30]})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_link"
        missing = await http.get("/api/v1/link", params={"name": "nothing.txt"})
        assert missing.status_code == 404


async def test_the_api_links_a_folder_and_zips_the_version_it_names(served: Served) -> None:
    await served.put_folder("trips/album", OLD_ALBUM)
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        info = (await http.get("/api/v1/link", params={"name": "trips/album"})).json()
        link = parse_link(info["link"])
        assert info["kind"] == "folder" and link.name == record_name("trips/album")
        assert info["manifest_id"] == link.manifest_id.hex()
        await served.put_folder("trips/album", NEW_ALBUM)
        got = await http.get("/api/v1/link/file", params={"link": info["link"]})
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "application/zip"
        assert 'filename="album.zip"' in got.headers["content-disposition"]
        assert unzipped(got.content) == {f"album/{p}": d for p, d in OLD_ALBUM.items()}


@browser_test
async def test_the_dashboard_shows_a_link_and_opens_one(served: Served, tmp_path: Path) -> None:
    from playwright.async_api import expect

    await served.put("holiday.txt", b"postcard one")
    async with browser_page() as (page, errors):
        await page.goto(f"{served.url}/#token={served.token}")
        row = page.locator('#files tr[data-name="holiday.txt"]')
        await expect(row).to_be_visible(timeout=15_000)
        await row.locator("button.link").click()
        line = page.locator("#transfer input.link-line")
        await expect(line).to_have_value(
            re.compile(r"^chordshare://[0-9a-f]{64}/holiday\.txt\?via="), timeout=15_000
        )
        link = await line.input_value()
        assert parse_link(link).name == "holiday.txt"

        await served.put("holiday.txt", b"postcard two", replace=True)
        await page.fill("#link-input", link)
        async with page.expect_download() as downloading:
            await page.press("#link-input", "Enter")
        saved = tmp_path / "opened.txt"
        await (await downloading.value).save_as(saved)
        assert saved.read_bytes() == b"postcard one"
        assert (await downloading.value).suggested_filename == "holiday.txt"
        assert errors == [], errors


@browser_test
async def test_the_dashboard_links_a_folder_and_opens_its_link_as_a_zip(
    served: Served, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    await served.put_folder("album", OLD_ALBUM)
    async with browser_page() as (page, errors):
        await page.goto(f"{served.url}/#token={served.token}")
        row = page.locator('#files tr.folder[data-name="album"]')
        await expect(row).to_be_visible(timeout=15_000)
        await row.locator("button.link").click()
        line = page.locator("#transfer input.link-line")
        await expect(line).to_have_value(
            re.compile(r"^chordshare://[0-9a-f]{64}/album\.chordshare-folder\?via="),
            timeout=15_000,
        )
        link = await line.input_value()

        await served.put_folder("album", NEW_ALBUM)
        await page.fill("#link-input", link)
        async with page.expect_download() as downloading:
            await page.press("#link-input", "Enter")
        saved = tmp_path / "opened.zip"
        await (await downloading.value).save_as(saved)
        assert (await downloading.value).suggested_filename == "album.zip"
        assert unzipped(saved.read_bytes()) == {f"album/{p}": d for p, d in OLD_ALBUM.items()}
        await expect(page.locator("#transfer")).to_contain_text("got album/ as a zip")
        assert errors == [], errors
