"""The browser tests: the interface in Debian's Chromium, driven by Playwright, against a
live `whaleid serve`. One browser per module; each test gets a fresh page whose every
response is recorded (none may be a 5xx) and whose scripts must not throw.

They are skipped only where no Chromium is installed or Playwright is not."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed: pip install -e '.[test]'"
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# No sandbox: CI runs as root. Nothing is fetched from anywhere but the test server.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    if CHROMIUM is None:
        pytest.skip("no Chromium: install Debian's chromium package")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: sync_api.Browser, server) -> Iterator[sync_api.Page]:  # type: ignore[no-untyped-def]
    """The interface of the module's `server`, open at its first view."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    responses: list[tuple[int, str]] = []
    script_errors: list[str] = []
    page.on("response", lambda response: responses.append((response.status, response.url)))
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.goto(server.url + "/")
    yield page
    context.close()
    assert [r for r in responses if r[0] >= 500] == []
    assert script_errors == []
