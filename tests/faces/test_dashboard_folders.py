"""Folders in the dashboard (headless Chromium, driven by Playwright): a folder chosen with
the directory picker is uploaded as one, listed with its file count, browsed, one of its
files downloaded alone, the whole folder downloaded as a zip of the very bytes, then
removed with every file in it."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from browser import BROWSER_TESTS, dashboard
from peernet import PeerNetwork

from chordshare.faces.api import ApiServer
from chordshare.faces.api_token import OPEN
from chordshare.sharing.peer import SharingPeer

pytestmark = BROWSER_TESTS

FILES = {"a.txt": b"alpha\n", "sub/b.bin": bytes(range(256)) * 300, "sub/c/d.txt": b"deep"}


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[tuple[list[SharingPeer], str]]:
    peer_network = PeerNetwork(tmp_path / "nodes")
    api: ApiServer | None = None
    try:
        peers = await peer_network.ring(2)
        api = ApiServer(peers[0], "127.0.0.1:0", lambda: None, OPEN)
        yield peers, await api.start()
    finally:
        if api is not None:
            await api.stop()
        await peer_network.close()


async def test_a_folder_uploaded_browsed_zipped_and_removed(
    network: tuple[list[SharingPeer], str], tmp_path: Path
) -> None:
    from playwright.async_api import expect

    peers, url = network
    source = tmp_path / "holiday"
    for path, data in FILES.items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_bytes(data)
    async with dashboard(url) as (page, errors):
        await page.set_input_files("#folder-input", str(source))
        await expect(page.locator(".upload.done")).to_contain_text(
            "holiday/: stored (3 file(s)", timeout=15_000
        )
        row = page.locator('#files tr[data-name="holiday"]')
        await expect(row.locator(".folder-mark")).to_have_text("folder, 3 file(s)", timeout=15_000)
        await expect(page.locator("#files tr[data-name]")).to_have_count(1)  # no pack of its own

        await row.locator("button.browse").click()
        entries = page.locator("#transfer .folder-entries li")
        await expect(entries.filter(has_text="sub/b.bin")).to_be_visible()
        async with page.expect_download() as downloading:
            await page.locator('#transfer li[data-path="sub/b.bin"] a.download').click()
        one = tmp_path / "one.bin"
        await (await downloading.value).save_as(one)
        assert one.read_bytes() == FILES["sub/b.bin"]

        async with page.expect_download() as downloading:
            await row.locator("a.download-zip").click()
        saved = tmp_path / "holiday.zip"
        await (await downloading.value).save_as(saved)
        with zipfile.ZipFile(io.BytesIO(saved.read_bytes())) as archive:
            got = {
                i.filename.removeprefix("holiday/"): archive.read(i)
                for i in archive.infolist()
                if not i.is_dir()
            }
        assert got == FILES

        page.on("dialog", lambda dialog: dialog.accept())
        await row.locator("button.remove").click()
        await expect(row).to_have_count(0, timeout=15_000)
        assert all(p.store.manifest("holiday/a.txt") is None for p in peers)
        assert errors == [], errors
