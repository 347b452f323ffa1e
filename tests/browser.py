"""Headless Chromium (Debian's, driven by Playwright) for the dashboard's tests: Playwright's
own browser downloads are not used. CI installs Chromium and sets CHORDSHARE_REQUIRE_ALL, so
there these tests run, never skipped."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from required import REQUIRED

CHROMIUM = os.environ.get("CHORDSHARE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = os.environ.get("CHORDSHARE_SCREENSHOT")  # where to keep a picture of the page

BROWSER = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
HAVE_CHROMIUM = BROWSER is not None
T = TypeVar("T")
BROWSER_TESTS = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not HAVE_CHROMIUM and not REQUIRED,
        reason="Chromium is not installed (.ci/run installs Debian's chromium)",
    ),
]


def browser_test(test: T) -> T:
    """BROWSER_TESTS' marks on one test (a module of them sets `pytestmark` instead)."""
    for mark in BROWSER_TESTS:
        test = mark(test)
    return test


async def launch(play: Any, extra_args: Sequence[str] = ()) -> Any:
    return await play.chromium.launch(
        executable_path=BROWSER,
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            *extra_args,
        ],
    )


@contextlib.asynccontextmanager
async def browser_page(extra_args: Sequence[str] = ()) -> AsyncIterator[tuple[Any, list[str]]]:
    """A blank page in a fresh headless Chromium, and the JavaScript errors it raises."""
    from playwright.async_api import async_playwright

    async with async_playwright() as play:
        browser = await launch(play, extra_args)
        try:
            context = await browser.new_context(accept_downloads=True)
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            yield page, errors
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def dashboard(url: str) -> AsyncIterator[tuple[Any, list[str]]]:
    """The page at url in a fresh headless Chromium, and the JavaScript errors it raises."""
    async with browser_page() as (page, errors):
        await page.goto(url)
        yield page, errors
