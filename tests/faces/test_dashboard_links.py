"""Links in the dashboard: a file's link shown to copy, and a link opened, in headless
Chromium; and the REST API's link routes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from browser import BROWSER_TESTS, browser_page
from peernet import PeerNetwork

from chordshare.faces.api import ApiServer
from chordshare.faces.api_token import ApiAuth, load_or_make_token
from chordshare.files.links import parse_link


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
        await served.put("notes.txt", b"the second notes", replace=True)
        got = await http.get("/api/v1/link/file", params={"link": info["link"]})
        assert got.status_code == 200 and got.content == b"the first notes"
        bad = await http.get("/api/v1/link/file", params={"link": info["link"][:30]})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_link"
        missing = await http.get("/api/v1/link", params={"name": "nothing.txt"})
        assert missing.status_code == 404


@pytest.mark.skipif(not BROWSER_TESTS, reason="no Chromium and Playwright here")
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
