"""The catalogue in the browser: enrolment, the individuals list (search, species), an
individual's sightings with positions, the curator's changes (each destructive one
confirmed in a dialog), the exports and the status page."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.service.test_client import Server
from tests.synthetic import camera_jpeg, encode, sighting
from tests.web.live import enrol, enrolled, live_server, payload

pytestmark = pytest.mark.slow

# A day of a survey off Skye: positions and times of three photos of HW-1.
SURVEY = [(57.30 + 0.01 * i, -6.20 - 0.02 * i) for i in range(3)]
START = datetime(2024, 6, 1, 9, 30)


def jpeg(individual: str, seed: int) -> bytes:
    return encode(sighting(individual, seed), "JPEG")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    surveyed = [
        camera_jpeg(sighting("HW-1", i), taken_at=START + timedelta(hours=i), position=where)
        for i, where in enumerate(SURVEY)
    ]
    photos = {"HW-1": surveyed, "HW-2": [jpeg("HW-2", 0), jpeg("HW-2", 1)]}
    with live_server(tmp_path_factory.mktemp("catalogue"), photos, species="humpback_whale") as s:
        for individual in ("OO-1", "OO-2"):
            enrol(s.url, individual, [jpeg(individual, 0)], species="orca")
        for individual in ("DD-1", "DD-2", "DD-3"):
            enrol(s.url, individual, [jpeg(individual, 0)], species="bottlenose_dolphin")
        yield s


def open_catalogue(page: Page) -> None:
    page.locator("nav a[data-view=individuals]").click()
    expect(page.locator(".individuals .card").first).to_be_visible()


def open_individual(page: Page, individual: str) -> None:
    open_catalogue(page)
    page.locator(f".card[data-id='{individual}']").click()
    expect(page.locator(".individual h1")).to_have_text(individual)


def test_photos_are_enrolled_through_the_interface(page: Page, server: Server) -> None:
    open_catalogue(page)
    page.locator("[data-action=enrol]").click()
    dialog = page.locator("dialog[open]")
    dialog.locator("input[name=id]").fill("FW-9")
    dialog.locator("input[name=species]").fill("fin_whale")
    dialog.locator("input[type=file]").set_input_files(
        [payload(f"fin_{seed}.jpg", jpeg("FW-9", seed)) for seed in range(3)]
    )
    dialog.get_by_role("button", name="Enrol").click()

    expect(page.locator(".individual h1")).to_have_text("FW-9")
    expect(page.locator(".sightings tbody tr")).to_have_count(3)
    expect(page.locator(".individual .about")).to_contain_text("fin_whale")
    assert sorted(i["source_name"] for i in enrolled(server.url, "FW-9")) == [
        "fin_0.jpg",
        "fin_1.jpg",
        "fin_2.jpg",
    ]


def test_the_list_is_searched_by_id_or_name_and_filtered_by_species(
    page: Page, server: Server
) -> None:
    httpx.patch(f"{server.url}/v1/individuals/OO-2", json={"name": "Moby"}).raise_for_status()
    open_catalogue(page)
    cards = page.locator(".individuals .card")
    expect(page.locator(".card[data-id='HW-1'] img")).to_have_attribute(
        "src", re.compile("/v1/images/")
    )

    page.locator("#search").press_sequentially("hw")
    expect(cards).to_have_count(2)
    page.locator("#search").fill("mob")
    expect(cards).to_have_count(1)
    expect(cards.first).to_have_attribute("data-id", "OO-2")
    page.locator("#search").fill("")
    page.locator("#species-filter").fill("orca")
    expect(cards).to_have_count(2)
    ids = cards.evaluate_all("cards => cards.map(c => c.dataset.id)")
    assert ids == ["OO-1", "OO-2"]
    # The filter is in the address, so a reload or a shared link shows the same list.
    assert page.url.endswith("#/individuals?species=orca")


def test_an_individual_shows_its_sightings_with_dates_positions_and_a_plot(
    page: Page, server: Server
) -> None:
    open_individual(page, "HW-1")
    rows = page.locator(".sightings tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("2024-06-01 09:30")
    expect(rows.first).to_contain_text("57.30000")
    expect(rows.first).to_contain_text("-6.20000")
    expect(rows.nth(2)).to_contain_text("57.32000")
    expect(page.locator(".plot circle.sighting")).to_have_count(3)
    expect(page.locator(".where figcaption")).to_have_text("3 of 3 photos with a position")
    # Drawn in place, from nothing but the page's own files.
    assert page.locator(".plot image").count() == 0


def test_rename_species_merge_and_delete_each_in_a_dialog(page: Page, server: Server) -> None:
    open_individual(page, "DD-1")
    page.locator("[data-action=edit]").click()
    dialog = page.locator("dialog[open]")
    dialog.locator("input[name=id]").fill("DD-1a")
    dialog.locator("input[name=species]").fill("common_dolphin")
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator(".individual h1")).to_have_text("DD-1a")
    expect(page.locator(".individual .about")).to_contain_text("common_dolphin")
    assert httpx.get(f"{server.url}/v1/individuals/DD-1").status_code == 404

    page.locator("[data-action=merge-into]").click()
    dialog = page.locator("dialog[open]")
    dialog.locator("input[name=source]").fill("DD-2")
    dialog.get_by_role("button", name="Cancel").click()
    assert len(enrolled(server.url, "DD-2")) == 1  # cancelled: nothing happened
    page.locator("[data-action=merge-into]").click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("cannot be undone")
    dialog.locator("input[name=source]").fill("DD-2")
    dialog.get_by_role("button", name="Merge").click()
    expect(page.locator(".sightings tbody tr")).to_have_count(2)
    assert httpx.get(f"{server.url}/v1/individuals/DD-2").status_code == 404

    page.locator("[data-action=delete]").click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("DD-1a and its 2 photos")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # Enter is safe
    page.keyboard.press("Enter")
    assert len(enrolled(server.url, "DD-1a")) == 2
    page.locator("[data-action=delete]").click()
    page.locator("dialog[open]").get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile("#/individuals$"))
    assert httpx.get(f"{server.url}/v1/individuals/DD-1a").status_code == 404


def test_refusals_are_shown_in_the_services_words(page: Page, server: Server) -> None:
    open_individual(page, "DD-3")
    page.locator("[data-action=edit]").click()
    dialog = page.locator("dialog[open]")
    dialog.locator("input[name=id]").fill("OO-1")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator(".dialog-status")).to_have_text("individual 'OO-1' already exists")
    dialog.get_by_role("button", name="Cancel").click()

    page.locator("[data-action=add-photos]").click()
    dialog = page.locator("dialog[open]")
    dialog.locator("input[type=file]").set_input_files(
        [payload("bad.jpg", b"\xff\xd8\xff not a photo"), payload("good.jpg", jpeg("DD-3", 1))]
    )
    dialog.get_by_role("button", name="Enrol").click()
    status = dialog.locator(".dialog-status")
    expect(status).to_contain_text("1 of 2 enrolled; not enrolled: bad.jpg:")
    expect(status).not_to_contain_text("Traceback")
    assert len(enrolled(server.url, "DD-3")) == 2


def test_exports_are_saved_as_csv_and_darwin_core(page: Page, server: Server) -> None:
    open_catalogue(page)
    for action, name, column in (
        ("export-csv", "sightings.csv", "individual_id"),
        ("export-dwc", "occurrences.csv", "occurrenceID"),
    ):
        with page.expect_download() as download:
            page.locator(f"[data-action={action}]").click()
        assert download.value.suggested_filename == name
        with open(download.value.path(), newline="", encoding="utf-8") as saved:
            rows = list(csv.DictReader(saved))
        assert column in rows[0] and len(rows) >= 5


def test_status_shows_what_the_service_runs_with(page: Page, server: Server) -> None:
    page.locator("nav a[data-view=status]").click()
    status = page.locator(".status-page[data-ready]")
    expect(status).to_contain_text("weight-free")
    expect(status).to_contain_text("no gate model loaded")
    expect(status).to_contain_text("locator")
    expect(status).to_contain_text(re.compile(r"version\s*0\.1\.0|version\s*\S+"))
    ready = httpx.get(f"{server.url}/ready").json()
    expect(status).to_contain_text(f"individuals{ready['counts']['individuals']}")
