"""The interface on a service with an API key: it asks for the key once, on the first
refusal, keeps it for the tab and sends it; reads stay open unless they are protected,
and then photos are fetched with the key too."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.service.test_client import Server
from tests.synthetic import encode, sighting
from tests.web.live import live_server

pytestmark = pytest.mark.slow

KEY = "s3cret-key"
WRITES_ONLY = f'api_key = "{KEY}"\n'
EVERYTHING = WRITES_ONLY + "protect_reads = true\n"


@pytest.fixture(scope="module", params=[WRITES_ONLY, EVERYTHING], ids=["writes", "reads"])
def settings(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def server(settings: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    photos = {"HW-1": [encode(sighting("HW-1", seed), "JPEG") for seed in (0, 1)]}
    root = tmp_path_factory.mktemp("access")
    with live_server(root, photos, species="humpback_whale", settings=settings) as server:
        yield server


def answer_key(page: Page, key: str) -> None:
    dialog = page.locator("dialog[open]").filter(has_text="API key")
    dialog.locator("input[name=key]").fill(key)
    dialog.get_by_role("button", name="Use this key").click()


def test_the_key_is_asked_for_once_and_sent_with_what_needs_it(
    page: Page, server: Server, settings: str
) -> None:
    reads_protected = settings == EVERYTHING
    page.locator("nav a[data-view=individuals]").click()
    if reads_protected:
        expect(page.locator("dialog[open]")).to_contain_text("This service asks for its API key")
        answer_key(page, "wrong")
        expect(page.locator("dialog[open]")).to_contain_text("That key was refused")
        answer_key(page, KEY)
    card = page.locator(".card[data-id='HW-1']")
    expect(card).to_be_visible()
    # Thumbnails show either way: fetched with the key when reads need it. An <img>
    # whose src is not set yet also counts as complete, so wait for a decoded picture.
    card_image = card.locator("img").element_handle()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=card_image)
    if not reads_protected:
        assert page.evaluate("sessionStorage.length") == 0  # browsing needed no key

    card.click()
    page.locator("[data-action=edit]").click()
    page.locator("dialog[open] input[name=species]").fill("humpback")
    page.locator("dialog[open]").get_by_role("button", name="Save").click()
    if not reads_protected:
        expect(page.locator("dialog[open]").last).to_contain_text("asks for its API key")
        answer_key(page, KEY)
    expect(page.locator(".individual .about")).to_contain_text("humpback")

    # Kept for the tab: the next write does not ask again.
    page.locator("[data-action=edit]").click()
    page.locator("dialog[open] input[name=name]").fill("Salt")
    page.locator("dialog[open]").get_by_role("button", name="Save").click()
    expect(page.locator(".individual .about")).to_contain_text("Salt")
    stored = httpx.get(f"{server.url}/v1/individuals/HW-1", headers={"X-API-Key": KEY}).json()
    assert stored["individual"]["name"] == "Salt"
