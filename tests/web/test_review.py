"""Identify and review in the browser: photos and ZIPs in, each photo beside its best
candidates, and one or two keys per photo to confirm, name a new individual, merge, skip
or undo, every verdict applied through the API."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import date

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page, expect

from tests.service.test_client import Server, make_zip
from tests.synthetic import encode, sighting
from tests.web.live import enrol, enrolled, live_server, payload, upload

pytestmark = pytest.mark.slow


def jpeg(individual: str, seed: int) -> bytes:
    return encode(sighting(individual, seed), "JPEG")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Three photos of each of six: enough for the calibration to call a match a match.
    photos = {f"HW-{n}": [jpeg(f"HW-{n}", seed) for seed in (0, 1, 2)] for n in range(1, 7)}
    with live_server(tmp_path_factory.mktemp("review"), photos, species="humpback_whale") as s:
        # One animal catalogued twice, under two ids (what a merge is for), added after
        # the calibration was fitted so that it does not learn from the mistake.
        enrol(s.url, "HW-7", [jpeg("HW-7", 0), jpeg("HW-7", 1)], "humpback_whale")
        enrol(s.url, "HW-7b", [jpeg("HW-7", 2), jpeg("HW-7", 3)], "humpback_whale")
        yield s


def current(page: Page) -> str:
    return page.locator("#review").get_attribute("data-current") or ""


def pairs_drawn(page: Page) -> None:
    """Waits until the matched points between the two photos are drawn.

    The predicate is a function, not an expression: Playwright evaluates an expression
    string afresh on every poll, which the page's CSP (no 'unsafe-eval') refuses once
    polling leaves the first DevTools call, while a function is compiled once inside it."""
    page.wait_for_function("() => Number(document.querySelector('.pairs').dataset.drawn) > 0")


def saved(page: Page, count: int) -> None:
    expect(page.locator(".queue li[data-saved=true]")).to_have_count(count)


def test_before_any_photo_the_page_says_what_to_do_and_which_key_does_what(
    page: Page, server: Server
) -> None:
    empty = page.locator(".empty-state")
    expect(empty).to_contain_text("Add photos or a ZIP of a survey")
    expect(empty.locator("dl.keys dt kbd")).to_have_count(9)
    expect(empty.locator("dl.keys dd").first).to_contain_text("accept")
    expect(empty).not_to_contain_text("[object")


def test_a_query_opens_beside_its_best_candidate_and_enter_confirms_it(
    page: Page, server: Server
) -> None:
    upload(page, [payload("IMG_0101.jpg", jpeg("HW-1", 21))])

    expect(page.locator(".decision")).to_contain_text("Match: HW-1")
    cards = page.locator(".candidate")
    expect(cards.first).to_have_attribute("data-id", "HW-1")
    expect(cards.first).to_contain_text("humpback_whale")
    expect(cards.first).to_contain_text(re.compile(r"\d+%"))
    expect(cards.first).to_contain_text(re.compile(r"HW-1_\d\.jpg"))  # its best photo
    expect(page.locator(".compare")).to_have_attribute("data-candidate", "HW-1")
    # The located box over the query, and the matched points between the two photos.
    expect(page.locator(".frame[data-side=query] .box")).to_have_count(1)
    pairs_drawn(page)

    page.keyboard.press("Enter")
    saved(page, 1)
    expect(page.locator(".queue li .mark")).to_have_text("✓ HW-1")
    assert "IMG_0101.jpg" in [image["source_name"] for image in enrolled(server.url, "HW-1")]

    page.locator("nav a[data-view=individuals]").click()
    page.locator(".card[data-id='HW-1']").click()
    expect(page.locator(".individual h1")).to_have_text("HW-1")
    expect(page.locator(".sightings tbody")).to_contain_text("IMG_0101.jpg")


def test_no_match_starts_a_new_individual_under_the_id_given(page: Page, server: Server) -> None:
    upload(page, [payload("stranger.jpg", jpeg("HW-70", 1))])
    expect(page.locator(".decision")).to_contain_text("new individual")

    page.keyboard.press("n")
    field = page.locator("dialog input[name=id]")
    expect(field).to_have_value(re.compile(rf"^new-{date.today():%Y%m%d}-[0-9a-f]{{8}}$"))
    field.fill("HW-70")
    page.keyboard.press("Enter")

    saved(page, 1)
    expect(page.locator(".queue li .mark")).to_have_text("+ HW-70")
    detail = httpx.get(f"{server.url}/v1/individuals/HW-70").json()
    assert detail["individual"]["image_count"] == 1


def test_undo_takes_back_a_new_individual_then_a_confirm(page: Page, server: Server) -> None:
    before = len(enrolled(server.url, "HW-2"))
    upload(page, [payload("known.jpg", jpeg("HW-2", 22)), payload("new.jpg", jpeg("HW-71", 0))])
    expect(page.locator(".decision")).to_contain_text("Match: HW-2")
    page.keyboard.press("Enter")  # confirm HW-2; the next photo opens
    expect(page.locator(".decision")).to_contain_text("new individual")
    page.keyboard.press("Enter")  # not a match: Enter names a new individual...
    page.locator("dialog input[name=id]").fill("HW-71")
    page.keyboard.press("Enter")  # ... and Enter accepts it
    saved(page, 2)
    assert len(enrolled(server.url, "HW-2")) == before + 1

    page.keyboard.press("u")
    expect(page.locator(".queue li").nth(1)).to_have_attribute("data-status", "ready")
    assert current(page) == "1"
    expect(page.locator("#notices")).to_contain_text("HW-71 removed")
    assert httpx.get(f"{server.url}/v1/individuals/HW-71").status_code == 404

    page.keyboard.press("u")
    expect(page.locator(".queue li").nth(0)).to_have_attribute("data-status", "ready")
    assert current(page) == "0"
    expect(page.locator("#notices")).to_contain_text("no longer a photo of HW-2")
    assert len(enrolled(server.url, "HW-2")) == before


def test_merge_makes_two_candidates_one_individual(page: Page, server: Server) -> None:
    upload(page, [payload("twice.jpg", jpeg("HW-7", 9))])
    ids = page.locator(".candidate").evaluate_all("cards => cards.map(c => c.dataset.id)")
    assert set(ids[:2]) == {"HW-7", "HW-7b"}, ids
    kept, merged = ids[0], ids[1]

    page.keyboard.press("m")
    expect(page.locator("dialog select[name=target]")).to_have_value(kept)
    expect(page.locator("dialog select[name=source]")).to_have_value(merged)
    page.keyboard.press("Enter")

    expect(page.locator("#notices")).to_contain_text(f"Merged {merged} into {kept}")
    assert httpx.get(f"{server.url}/v1/individuals/{merged}").status_code == 404
    assert len(enrolled(server.url, kept)) == 4
    ids = page.locator(".candidate").evaluate_all("cards => cards.map(c => c.dataset.id)")
    assert ids[0] == kept and merged not in ids


def test_unusable_photos_say_why_in_words(page: Page, server: Server) -> None:
    blank = encode(np.full((320, 480, 3), 200, np.uint8), "JPEG")
    upload(page, [payload("broken.jpg", b"\xff\xd8\xff not a photo"), payload("fog.jpg", blank)])

    decision = page.locator(".decision")
    expect(decision).to_contain_text("The file cannot be read: it is damaged or not a photo.")
    page.keyboard.press("ArrowRight")
    expect(decision).to_contain_text("Too blurred or too little texture to match")
    for text in ("corrupted_image", "low_confidence", "Traceback"):
        expect(page.locator("body")).not_to_contain_text(text)
    # Nothing to confirm: Enter moves on.
    expect(page.locator("[data-action=primary]")).to_have_text("Next (Enter)")
    expect(page.locator("[data-action=confirm]")).to_be_disabled()


def test_a_photo_stored_under_another_individual_can_be_moved(page: Page, server: Server) -> None:
    image = enrolled(server.url, "HW-3")[0]
    content = httpx.get(f"{server.url}/v1/images/{image['id']}/file").content
    upload(page, [payload("again.jpg", content)])
    expect(page.locator(".candidate").first).to_have_attribute("data-id", "HW-3")
    other = page.locator(".candidate").nth(1).get_attribute("data-id")

    page.keyboard.press("2")
    page.keyboard.press("c")
    notice = page.locator(".notice.error")
    expect(notice).to_contain_text(f"already image {image['id']} of individual 'HW-3'")
    notice.get_by_role("button", name="Open it").click()
    expect(page.locator(".banner [data-action=move]")).to_be_visible()
    page.keyboard.press("Enter")

    saved(page, 1)
    assert image["id"] in [i["id"] for i in enrolled(server.url, other)]
    page.keyboard.press("u")
    expect(page.locator("#notices")).to_contain_text("Undo is not available")


def test_wheel_zoom_keeps_the_point_under_the_cursor_and_p_hides_the_pairs(
    page: Page, server: Server
) -> None:
    upload(page, [payload("zoom.jpg", jpeg("HW-4", 23))])
    pairs_drawn(page)
    frame = page.locator(".frame[data-side=candidate]")
    box = frame.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6
    under = """([x, y]) => {
        const frame = document.querySelector('.frame[data-side=candidate]');
        const rect = frame.getBoundingClientRect();
        const m = new DOMMatrix(getComputedStyle(frame.querySelector('.layer')).transform);
        return [(x - rect.left - m.e) / m.a, (y - rect.top - m.f) / m.a, m.a];
    }"""
    before = page.evaluate(under, [x, y])
    page.mouse.move(x, y)
    page.mouse.wheel(0, -400)
    page.wait_for_function(
        "s => new DOMMatrix(getComputedStyle("
        "document.querySelector('.frame[data-side=candidate] .layer')).transform).a > s",
        arg=before[2],
    )
    after = page.evaluate(under, [x, y])
    assert after[2] > before[2] * 1.5
    assert after[0] == pytest.approx(before[0], abs=0.5)
    assert after[1] == pytest.approx(before[1], abs=0.5)

    page.mouse.down()
    page.mouse.move(x + 40, y + 25, steps=4)
    page.mouse.up()
    dragged = page.evaluate(under, [x + 40, y + 25])
    assert dragged[:2] == pytest.approx(after[:2], abs=0.5)

    page.keyboard.press("p")
    expect(page.locator(".compare")).to_have_class(re.compile("pairs-hidden"))
    expect(page.locator(".pairs")).to_be_hidden()
    page.keyboard.press("p")
    expect(page.locator(".pairs")).to_be_visible()


def test_a_zip_batch_shows_true_progress_and_is_reviewed_in_two_keys_a_photo(
    page: Page, server: Server
) -> None:
    strangers = {"survey/e.jpg": jpeg("HW-80", 0), "survey/f.jpg": jpeg("HW-81", 0)}
    files = {
        "survey/": b"",
        "survey/a.jpg": jpeg("HW-1", 30),
        "survey/b.jpg": jpeg("HW-2", 30),
        "survey/c.jpg": b"\xff\xd8\xff damaged",
        "survey/d.jpg": jpeg("HW-4", 30),
        **strangers,
        "__MACOSX/survey/._a.jpg": b"\x00\x05\x16\x07",
    }
    page.evaluate("""() => {
        const progress = document.querySelector('.progress');
        window.seen = [];
        new MutationObserver((records) => records.forEach((r) =>
            r.addedNodes.forEach((node) => window.seen.push(node.textContent))))
            .observe(progress, {childList: true});
    }""")
    upload(page, [payload("survey.zip", make_zip(files))])

    seen = [text.split(" ·")[0] for text in page.evaluate("window.seen")]
    assert [f"done {n} of 6" for n in range(7)] == sorted(set(seen)), seen
    expect(page.locator(".queue li")).to_have_count(6)
    expect(page.locator(".queue li[data-status=ready]")).to_have_count(6)

    keys = 0
    while current(page) != "":
        before = current(page)
        page.keyboard.press("Enter")
        keys += 1
        page.wait_for_function(
            "before => document.querySelector('dialog[open]')"
            " || document.querySelector('#review').dataset.current !== before",
            arg=before,
        )
        if page.locator("dialog[open]").count():
            page.keyboard.press("Enter")  # accept the suggested id
            keys += 1
            page.wait_for_function(
                "before => document.querySelector('#review').dataset.current !== before",
                arg=before,
            )
    assert keys <= 2 * 6
    statuses = page.locator(".queue li").evaluate_all("li => li.map(l => l.dataset.status)")
    assert statuses == ["confirmed", "confirmed", "skipped", "confirmed", "new", "new"]
    saved(page, 5)
    # The suggested id is the one the service itself makes up: the date and the photo's hash.
    for content in strangers.values():
        made_up = f"new-{date.today():%Y%m%d}-{hashlib.sha256(content).hexdigest()[:8]}"
        assert len(enrolled(server.url, made_up)) == 1
