"""The dashboard in headless Chromium (Debian's, driven by Playwright): a 4-node network seen
on the ring, a file uploaded through the page, found by search, downloaded and compared,
then a node killed and the ring redrawn without it; and a node with an API token, whose page
asks for it, then shows the ring and moves files with it."""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from browser import BROWSER_TESTS, SCREENSHOT, dashboard
from peernet import PeerNetwork, store_directly

from chordshare.faces.api import ApiServer
from chordshare.faces.api_token import OPEN, ApiAuth
from chordshare.files.names import conflict_name
from chordshare.sharing.peer import SharingPeer

TOKEN = "dashboard-token-42"

pytestmark = BROWSER_TESTS


async def serve(
    root: Path, size: int, auth: ApiAuth = OPEN
) -> AsyncIterator[tuple[list[SharingPeer], str]]:
    """A ring of `size` peers and the URL of the first one's API."""
    peer_network = PeerNetwork(root)
    api: ApiServer | None = None
    try:
        peers = await peer_network.ring(size)
        api = ApiServer(peers[0], "127.0.0.1:0", lambda: None, auth)
        url = await api.start()
        yield peers, url
    finally:
        if api is not None:
            await api.stop()
        await peer_network.close()


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[tuple[list[SharingPeer], str]]:
    async for served in serve(tmp_path, 4):
        yield served


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[tuple[list[SharingPeer], str]]:
    async for served in serve(tmp_path, 2, ApiAuth(TOKEN, protect_reads=True)):
        yield served


async def test_dashboard_shows_the_ring_and_moves_files(
    network: tuple[list[SharingPeer], str], tmp_path: Path
) -> None:
    from playwright.async_api import expect

    peers, url = network
    data = hashlib.shake_256(b"dashboard").digest(300_000)
    (tmp_path / "q3-report.pdf").write_bytes(data)
    async with dashboard(url) as (page, errors):
        nodes = page.locator("svg#ring g.node")
        await expect(nodes).to_have_count(4, timeout=15_000)
        await expect(page.locator("#node-fingers tr").first).to_be_visible()
        await expect(page.locator("#status")).to_contain_text("ring of 4")

        uploads: list[tuple[str, str]] = []
        page.on(
            "request",
            lambda request: (
                uploads.append((request.method, request.url))
                if request.method in ("POST", "PUT")
                else None
            ),
        )
        await page.set_input_files("#file-input", str(tmp_path / "q3-report.pdf"))
        await expect(page.locator(".upload.done")).to_contain_text("stored", timeout=15_000)
        await expect(page.locator('#files tr[data-name="q3-report.pdf"]')).to_be_visible(
            timeout=15_000
        )
        # The file went as the body of a PUT: streamed on, never staged on the node.
        assert uploads == [("PUT", f"{url}/api/v1/files/q3-report.pdf")], uploads
        # A version kept aside, written apart from the one that kept the name, is marked.
        kept = b"the version written apart, kept aside\n"
        aside = conflict_name("q3-report.pdf", 1765000000.0, hashlib.sha256(kept).digest())
        store_directly(peers[0], aside, kept)
        mark = page.locator(f'#files tr[data-name="{aside}"] .conflict')
        await expect(mark).to_have_text("conflict of q3-report.pdf", timeout=15_000)
        mark = page.locator('#files tr[data-name="q3-report.pdf"] .conflict')
        await expect(mark).to_have_count(0)

        await page.fill("#search", "report")
        result = page.locator('.result[data-name="q3-report.pdf"]')
        for _ in range(50):  # the index is published just after the put
            await page.click("#search-form button")
            if await result.count():
                break
            await page.wait_for_timeout(200)
        await expect(result).to_be_visible()

        async with page.expect_download() as downloading:
            await result.locator("a.download").click()
        download = await downloading.value
        saved = tmp_path / "downloaded.pdf"
        await download.save_as(saved)
        assert saved.read_bytes() == data
        await expect(page.locator("#transfer")).to_contain_text("q3-report.pdf")

        # Select another node: its fingers are drawn as chords.
        other = peers[2].server.node.me.address
        await page.locator(f'g.node[data-address="{other}"] circle').click()
        await expect(page.locator("#node-address")).to_have_text(other)

        if SCREENSHOT:
            await page.screenshot(path=SCREENSHOT, full_page=True)

        await peers[3].stop(graceful=False)  # a crash: no leave notice
        await expect(nodes).to_have_count(3, timeout=30_000)
        gone = peers[3].server.node.me.address
        await expect(page.locator(f'g.node[data-address="{gone}"]')).to_have_count(0)
        assert errors == [], errors


async def test_dashboard_asks_for_the_token_and_works_with_it(
    guarded: tuple[list[SharingPeer], str], tmp_path: Path
) -> None:
    from playwright.async_api import expect

    _, url = guarded
    data = hashlib.shake_256(b"guarded").digest(50_000)
    (tmp_path / "secret-plan.txt").write_bytes(data)
    async with dashboard(url) as (
        page,
        errors,
    ):  # the page itself needs no token; its first call is a 401
        form = page.locator("#auth")
        await expect(form).to_be_visible(timeout=15_000)
        await expect(page.locator("#auth-reason")).to_contain_text("needs its API token: paste it")
        await expect(page.locator("#status")).to_contain_text("needs its API token")
        nodes = page.locator("svg#ring g.node")
        await expect(nodes).to_have_count(0)
        await expect(page.locator("#forget-token")).to_be_hidden()

        await page.fill("#token-input", "not-the-token")
        await page.click("#auth button[type=submit]")
        await expect(page.locator("#auth-reason")).to_contain_text("not this node's")
        await expect(form).to_be_visible()

        await page.fill("#token-input", TOKEN)
        await page.press("#token-input", "Enter")
        await expect(nodes).to_have_count(2, timeout=15_000)
        await expect(form).to_be_hidden()
        await expect(page.locator("#status")).to_contain_text("ring of 2")
        assert await page.evaluate("sessionStorage.getItem('chordshare.apiToken')") == TOKEN

        await page.set_input_files("#file-input", str(tmp_path / "secret-plan.txt"))
        await expect(page.locator(".upload.done")).to_contain_text("stored", timeout=15_000)
        row = page.locator('#files tr[data-name="secret-plan.txt"]')
        await expect(row).to_be_visible(timeout=15_000)
        async with page.expect_download() as downloading:
            await row.locator("a.download").click()
        saved = tmp_path / "downloaded.txt"
        await (await downloading.value).save_as(saved)
        assert saved.read_bytes() == data

        await page.click("#forget-token")
        await expect(form).to_be_visible()
        await expect(page.locator("#auth-reason")).to_contain_text("needs its API token: paste it")
        assert await page.evaluate("sessionStorage.getItem('chordshare.apiToken')") is None
        assert errors == [], errors


async def test_nodes_with_ids_close_together_are_drawn_apart(
    network: tuple[list[SharingPeer], str],
) -> None:
    """Ids a hair apart would put one node's circle over another's, and a click meant for
    one would select the other: each node is drawn at least a circle's width from the next,
    in the ring's order, and near where its id lies."""
    from playwright.async_api import expect

    _, url = network
    async with dashboard(url) as (page, errors):
        await expect(page.locator("svg#ring g.node")).to_have_count(4, timeout=15_000)
        drawn = await page.evaluate(
            """() => {
                const top = 2n ** 160n;
                const ids = [0n, 1n, 2n, 3n, top / 2n, top - 4n, top - 3n, top - 2n, top - 1n];
                const nodes = ids.map((id, i) => ({ id: String(id), address: `n${i}:1` }));
                const angles = spread(nodes);
                return {
                    gap: NODE_GAP,
                    drawn: nodes.map((node) => angles.get(node.address)),
                    natural: nodes.map((node) => angleOf(node.id)),
                };
            }"""
        )
        turn = 2 * math.pi
        angles = [a % turn for a in drawn["drawn"]]
        for a, b in itertools.combinations(angles, 2):
            apart = abs(a - b) % turn
            assert min(apart, turn - apart) >= drawn["gap"] - 1e-9, angles
        for a, natural in zip(angles, drawn["natural"], strict=True):
            off = abs(a - natural % turn) % turn
            assert min(off, turn - off) <= len(angles) * drawn["gap"], angles
        # Clockwise from id 0 the nodes come in the order of their ids.
        order = sorted(range(len(angles)), key=lambda i: (angles[i] - angles[0]) % turn)
        assert order == list(range(len(angles))), angles
        assert errors == [], errors
