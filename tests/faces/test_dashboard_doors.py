"""What a web page in the user's own browser can do to a node with the default settings (an
API on loopback with its own token), in headless Chromium: nothing, whether it comes from
another origin (a form POST, a no-cors upload, an <img>) or rebinds its own name to
127.0.0.1. The dashboard opened with the URL a node prints still uploads, downloads and
removes, and shows a name made of HTML as text."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import BROWSER_TESTS, browser_page
from peernet import PeerNetwork, store_directly
from waiting import wait_until

from chordshare.faces.api import ApiServer
from chordshare.faces.api_token import ApiAuth, load_or_make_token
from chordshare.faces.serve import dashboard_url
from chordshare.sharing.peer import SharingPeer

pytestmark = BROWSER_TESTS

EVIL_ORIGIN = "http://127.0.0.2:28999"
# Chromium asks the user before a page that is not itself local reaches a local address
# (Local Network Access); headless it refuses. Other browsers do not ask, and a user may
# allow it: the node must hold without that help.
AS_IF_ALLOWED = (
    "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,"
    "PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults"
)


class Node:
    """One peer on a ring of its own, its API served with the token a node makes for itself,
    and a record of every leave the API asked for."""

    def __init__(self, peer: SharingPeer, url: str, token: str) -> None:
        self.peer, self.url, self.token = peer, url, token
        self.left: list[str] = []

    def stored(self, name: str) -> bool:
        return self.peer.store.manifest(name) is not None

    async def put(self, name: str, data: bytes) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            answer = await http.post(
                "/api/v1/files",
                files={"file": (name, data)},
                headers={"Authorization": f"Bearer {self.token}"},
            )
        assert answer.status_code == 201, answer.text


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    network = PeerNetwork(tmp_path)
    api: ApiServer | None = None
    try:
        [peer] = await network.ring(1)
        token = load_or_make_token(peer.settings.data_dir)
        left: list[str] = []
        api = ApiServer(peer, "127.0.0.1:0", lambda: left.append("left"), ApiAuth(token))
        served = Node(peer, await api.start(), token)
        served.left = left
        yield served
    finally:
        if api is not None:
            await api.stop()
        await network.close()


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "chordshare.faces.api_doors"]


async def test_a_page_of_another_origin_can_neither_store_nor_stop(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chordshare.faces.api_doors")
    api = node.url
    attack = f"""<!doctype html><title>cute cats</title>
<img src="{api}/shutdown">
<iframe name="one"></iframe><iframe name="two"></iframe>
<form id="leave" method="POST" action="{api}/api/v1/node/leave" target="one"></form>
<form id="stop" method="POST" action="{api}/shutdown" target="two"></form>
<script>
  const form = new FormData();
  form.append("file", new Blob(["planted"]), "planted-by-evil-page.txt");
  fetch("{api}/api/v1/files", {{method: "POST", mode: "no-cors", body: form}})
    .finally(() => {{ window.uploaded = true; }});
  document.getElementById("leave").submit();
  document.getElementById("stop").submit();
</script>"""
    async with browser_page([AS_IF_ALLOWED]) as (page, _):
        await page.route(
            f"{EVIL_ORIGIN}/cats.html",
            lambda route: route.fulfill(status=200, content_type="text/html", body=attack),
        )
        await page.goto(f"{EVIL_ORIGIN}/cats.html", wait_until="load")  # the <img> is done
        await page.wait_for_function("window.uploaded === true", timeout=15_000)
        # The upload and both forms reached the API and were refused at its door.
        await wait_until(lambda: len(refusals(caplog)) >= 3, 15, "the three refusals")
    found = refusals(caplog)
    for path in ("/api/v1/files", "/api/v1/node/leave", "/shutdown"):
        assert any(f"'{path}'" in line and "another origin" in line for line in found), found
    await asyncio.sleep(0)  # a leave would have been scheduled with call_soon
    assert node.left == [] and not node.stored("planted-by-evil-page.txt")
    async with httpx.AsyncClient(base_url=node.url) as http:
        assert (await http.get("/healthz")).status_code == 200


async def test_a_rebound_name_can_neither_read_nor_delete(node: Node) -> None:
    """DNS rebinding: the page's own name now points at 127.0.0.1, so to the browser the API
    is the page's own origin and no CORS rule stands in the way; only the Host check does."""
    await node.put("kept.txt", b"private bytes")
    port = httpx.URL(node.url).port
    origin = f"http://evil.test:{port}"
    attack = """<!doctype html><script>
  window.answers = (async () => {
    const tries = [["GET", "/api/v1/node"], ["GET", "/api/v1/files?scope=network"],
      ["GET", "/api/v1/files/kept.txt"], ["GET", "/"], ["DELETE", "/api/v1/files/kept.txt"],
      ["POST", "/api/v1/node/leave"], ["POST", "/shutdown"]];
    const seen = [];
    for (const [method, path] of tries) {
      const answer = await fetch(path, {method});
      seen.push([method, path, answer.status, await answer.text()]);
    }
    return seen;
  })();
</script>"""
    rebound = ["--host-resolver-rules=MAP evil.test 127.0.0.1", AS_IF_ALLOWED]
    async with browser_page(rebound) as (page, _):
        # The attacker's page, served under the name before it was rebound.
        await page.route(
            f"{origin}/index.html",
            lambda route: route.fulfill(status=200, content_type="text/html", body=attack),
        )
        await page.goto(f"{origin}/index.html")
        answers: list[Any] = await page.evaluate("window.answers")
    assert len(answers) == 7
    for method, path, status, body in answers:
        assert status == 403, (method, path, status, body)
        assert "private bytes" not in body and "--api-allowed-hosts" in body
    assert node.stored("kept.txt") and node.left == []


async def test_the_printed_dashboard_url_uploads_downloads_and_removes(
    node: Node, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    html_name = "<img src=x onerror=window.pwned=1>.txt"
    await node.put(html_name, b"just text")
    # Stored before names were checked: its bidi override would show it as "invoicecod.exe".
    store_directly(node.peer, "invoice\u202eexe.doc", b"old")
    data = hashlib.shake_256(b"printed url").digest(40_000)
    (tmp_path / "holiday.jpg").write_bytes(data)
    url = dashboard_url(node.url, ApiAuth(node.token))
    assert url.endswith(f"/#token={node.token}")
    async with browser_page() as (page, errors):
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.goto(url)
        # The token left the address bar (and so the history) for the tab's storage.
        await expect(page.locator("svg#ring g.node")).to_have_count(1, timeout=15_000)
        assert "token" not in page.url
        stored = await page.evaluate("sessionStorage.getItem('chordshare.apiToken')")
        assert stored == node.token

        # A name made of HTML is shown as the text it is.
        row = page.locator("#files tr").filter(has_text="onerror")
        await expect(row).to_have_count(1, timeout=15_000)
        assert await row.locator("td").first.text_content() == html_name
        assert await page.locator("#files img").count() == 0
        assert await page.evaluate("window.pwned") is None
        old = page.locator("#files tr").filter(has_text="invoice")
        await expect(old.locator("td").first).to_have_text("invoice\\u202eexe.doc")

        await page.set_input_files("#file-input", str(tmp_path / "holiday.jpg"))
        await expect(page.locator(".upload.done")).to_contain_text("stored", timeout=15_000)
        photo = page.locator('#files tr[data-name="holiday.jpg"]')
        await expect(photo).to_be_visible(timeout=15_000)
        # Signed by the node's own key on the page's behalf, and shown as published by it;
        # a file stored before signatures is shown as unsigned.
        await expect(photo.locator("td.publisher")).to_have_text(node.peer.signer.fingerprint)
        await expect(old.locator("td.publisher")).to_have_text("unsigned")
        async with page.expect_download() as downloading:
            await photo.locator("a.download").click()
        saved = tmp_path / "downloaded.jpg"
        await (await downloading.value).save_as(saved)
        assert saved.read_bytes() == data

        await photo.locator("button.remove").click()
        await expect(page.locator("#transfer")).to_contain_text("removed holiday.jpg")
        await expect(photo).to_have_count(0, timeout=15_000)
        assert errors == [], errors
    await wait_until(lambda: not node.stored("holiday.jpg"), 10, "the removal")
    assert node.stored(html_name) and node.left == []


async def test_an_upload_refused_for_want_of_the_token_goes_through_once_it_is_given(
    node: Node, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    data = hashlib.shake_256(b"later").digest(30_000)
    (tmp_path / "plan.txt").write_bytes(data)
    async with browser_page() as (page, errors):
        await page.goto(node.url)  # opened without the link's token
        await expect(page.locator("svg#ring g.node")).to_have_count(1, timeout=15_000)
        await page.set_input_files("#file-input", str(tmp_path / "plan.txt"))
        form = page.locator("#auth")
        await expect(form).to_be_visible(timeout=15_000)
        await expect(page.locator("#auth-reason")).to_contain_text("dashboard link")
        assert not node.stored("plan.txt")
        await page.fill("#token-input", node.token)
        await page.press("#token-input", "Enter")
        await expect(page.locator(".upload.done")).to_contain_text("stored", timeout=15_000)
        await expect(page.locator('#files tr[data-name="plan.txt"]')).to_be_visible()
        assert errors == [], errors
    assert node.stored("plan.txt")


async def test_long_names_a_favicon_and_results_in_view(node: Node) -> None:
    from playwright.async_api import expect

    long_name = "quarterly-report-" + "very-long-words-" * 14 + "final.pdf"
    await node.put(long_name, b"long")
    for i in range(40):  # enough rows to push the result panel far below the fold
        await node.put(f"file-{i:02}.txt", b"%d" % i)
    async with browser_page() as (page, errors):
        await page.set_viewport_size({"width": 1280, "height": 800})
        await page.goto(dashboard_url(node.url, ApiAuth(node.token)))
        row = page.locator(f'#files tr[data-name="{long_name}"]')
        await expect(row).to_be_visible(timeout=15_000)
        await expect(page.locator("#files tr")).to_have_count(41, timeout=15_000)
        wide = await page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 1280, wide  # the long name wraps; nothing scrolls sideways

        icon = await page.get_attribute('link[rel="icon"]', "href")
        assert icon is not None
        answer = await page.request.get(node.url + icon)
        assert answer.ok and answer.headers["content-type"].startswith("image/svg")

        first = page.locator('#files tr[data-name="file-00.txt"]')
        await first.scroll_into_view_if_needed()
        async with page.expect_download():
            await first.locator("a.download").click()
        await expect(page.locator("#transfer")).to_contain_text("got file-00.txt")
        await expect(page.locator("#transfer")).to_be_in_viewport()
        assert errors == [], errors


async def test_clicks_on_ring_nodes_are_never_lost_to_a_redraw(tmp_path: Path) -> None:
    from playwright.async_api import expect

    network = PeerNetwork(tmp_path)
    api: ApiServer | None = None
    try:
        peers = await network.ring(3)
        api = ApiServer(peers[0], "127.0.0.1:0", lambda: None)
        url = await api.start()
        addresses = [p.server.node.me.address for p in peers]
        async with browser_page() as (page, errors):
            await page.goto(url)
            await expect(page.locator("svg#ring g.node")).to_have_count(3, timeout=15_000)
            centres = {}
            for address in addresses:
                box = await page.locator(f'g.node[data-address="{address}"] circle').bounding_box()
                assert box is not None
                centres[address] = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            # Ids are random: two nodes may lie so close that one covers the other's centre.
            # Press only where the node itself is what the pointer meets.
            hit = "([x, y]) => document.elementFromPoint(x, y).closest('g.node').dataset.address"
            reachable = [a for a in addresses if await page.evaluate(hit, centres[a]) == a]
            assert len(reachable) >= 2, centres
            # A press held across a refresh of the ring (every 1.5 s): the drawing under the
            # pointer is replaced before the release, and the selection must still happen.
            drawn = "a => document.querySelector(`g.node[data-address='${a}']`)"
            for address in [*reachable[1:], reachable[0], reachable[1]]:
                await page.mouse.move(*centres[address])
                await page.evaluate(f"a => {{ ({drawn})(a).dataset.pressed = 'yes'; }}", address)
                await page.mouse.down()
                # Released only once the node under the pointer has been drawn anew.
                await page.wait_for_function(
                    f"a => !({drawn})(a).dataset.pressed", arg=address, timeout=10_000
                )
                await page.mouse.up()
                await expect(page.locator("#node-address")).to_have_text(address, timeout=3_000)
            assert errors == [], errors
    finally:
        if api is not None:
            await api.stop()
        await network.close()
