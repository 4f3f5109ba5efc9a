"""How quickly the web interface answers a keystroke, on a 2,000-photo catalogue, in
Chromium: from the key press to the page showing the result.

    python scripts/benchmark_interface.py [--photos 2000] [--runs 9]
        [--catalogue scratch/interface-catalogue] [--json reports/interface.json]

Builds the catalogue once (synthetic photos from tests/synthetic.py, five per individual,
enrolled with `whaleid enrol`; kept in --catalogue and reused), serves a copy of it (so
the confirmations measured never change the one kept), opens the interface at 1280 x 800
in the system's Chromium (Playwright) and measures, --runs times each:

- next photo: -> in a batch under review, until the next photo and its best candidate's
  photo are decoded on screen;
- confirm: Enter on a match, until the next photo is on screen (the verdict is sent in
  the background: the time until the service has stored it is reported beside);
- open an individual: Enter on a card of the list, until its page shows every sighting
  (thumbnails load after);
- search: one character typed in the search field, until the list shows the matches.

A key's time starts at the keydown event and ends at the first animation frame in which
the page shows the result. The bar: median within 300 ms. Writes reports/interface.md
and the JSON given. Exits 0 with a message where no Chromium (or no Playwright) is found.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from browser import VIEWPORT, launch_chromium, missing_browser
from reporting import report_meta
from serving import bench_env, server

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.synthetic renders the photos

from tests.synthetic import encode, sighting

REPORT = ROOT / "reports" / "interface.md"
BAR_MS = 300.0
PHOTOS_PER_INDIVIDUAL = 5
SEARCHES = ("HW-012", "hw-3", "0042")
# A key's time: from its keydown event (captured before the page's own handlers) to the
# animation frame in which the check first holds.
KEY_CLOCK = "window.addEventListener('keydown', (e) => { window.keyAt = e.timeStamp; }, true)"
PHOTO_SHOWN = """(previous) => {
    const query = document.querySelector('.frame[data-side=query] img');
    const shown = document.querySelector('.frame[data-side=candidate] img');
    const card = document.querySelector('.candidate img');
    const best = card && card.src.match(/images\\/(\\d+)\\//);
    return Boolean(best) && query.src !== previous && query.complete && query.naturalWidth > 0
        && shown.src.includes(`/v1/images/${best[1]}/thumbnail?size=1024`)
        && shown.complete && shown.naturalWidth > 0;
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--catalogue", type=Path, default=ROOT / "scratch" / "interface-catalogue")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    missing = missing_browser()
    if missing:
        print(f"skipped: {missing}")
        return 0
    from playwright.sync_api import sync_playwright

    individuals = args.photos // PHOTOS_PER_INDIVIDUAL
    built = _catalogue(args.catalogue, individuals)
    with tempfile.TemporaryDirectory(prefix="whaleid-interface-") as tmp:
        root = Path(tmp)
        data = root / "data"
        shutil.copytree(built, data)
        with server(data, bench_env(root)) as url:
            _wait_ready(url)
            stats = httpx.get(f"{url}/ready").json()["counts"]
            load = os.getloadavg()[0]
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                try:
                    page = browser.new_page(viewport=VIEWPORT)
                    page.add_init_script(KEY_CLOCK)
                    page.goto(url + "/")
                    results = _review(page, root, args.runs) | _catalogue_keys(page, args.runs)
                finally:
                    browser.close()
    result = {
        "meta": report_meta() | {"load_average_1min_at_start": round(load, 2)},
        "catalogue": {
            "photos": stats["images"],
            "individuals": stats["individuals"],
            "source": f"synthetic (tests/synthetic.py), {PHOTOS_PER_INDIVIDUAL} per individual",
        },
        "viewport": VIEWPORT,
        "bar_ms": BAR_MS,
        "actions": {name: _summary(samples) for name, samples in results.items()},
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    REPORT.write_text(_markdown(result))
    print(f"wrote {REPORT}")
    return 0


def _catalogue(folder: Path, individuals: int) -> Path:
    """The data folder of the catalogue, enrolled the first time."""
    data = folder / "data"
    done = folder / "built.json"
    if done.is_file() and json.loads(done.read_text())["individuals"] == individuals:
        return data
    photos = folder / "photos"
    shutil.rmtree(folder, ignore_errors=True)
    print(f"rendering {individuals * PHOTOS_PER_INDIVIDUAL} synthetic photos ...", flush=True)
    for n in range(individuals):
        individual = _individual(n)
        (photos / individual).mkdir(parents=True)
        for seed in range(PHOTOS_PER_INDIVIDUAL):
            path = photos / individual / f"{individual}_{seed}.jpg"
            path.write_bytes(encode(sighting(individual, seed), "JPEG"))
    print("enrolling them (whaleid enrol) ...", flush=True)
    subprocess.run(
        [str(Path(sys.executable).parent / "whaleid"), "enrol", str(photos), "--data", str(data)],
        env=bench_env(folder),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    done.write_text(json.dumps({"individuals": individuals}) + "\n")
    return data


def _individual(n: int) -> str:
    return f"HW-{n:04d}"


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 900
    while httpx.get(f"{url}/ready", timeout=10).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the catalogue did not open within 15 minutes")
        time.sleep(1)


def _timed(page, press: Callable[[], None], check: str, arg: object = None) -> float:  # type: ignore[no-untyped-def]
    """Milliseconds from the key `press` sends to the frame where `check(arg)` holds."""
    page.evaluate("() => { window.keyAt = null; }")
    press()
    page.wait_for_function(
        f"(arg) => {{ if (window.keyAt !== null && ({check})(arg)) {{"
        " window.doneAt = performance.now(); return true; } return false; }",
        arg=arg,
        polling="raf",
        timeout=60_000,
    )
    return page.evaluate("window.doneAt - window.keyAt")


def _query_src(page) -> str:  # type: ignore[no-untyped-def]
    return page.eval_on_selector(".frame[data-side=query] img", "img => img.src")


def _review(page, root: Path, runs: int) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    """Next photo and confirm, in a batch of queries of known individuals."""
    queries = []
    for n in range(2 * runs + 2):
        path = root / f"query_{n}.jpg"
        path.write_bytes(encode(sighting(_individual(n * 7), 50 + n), "JPEG"))
        queries.append(str(path))
    print(f"identifying {len(queries)} queries in the interface ...", flush=True)
    page.set_input_files("[data-role=pick-photos]", queries)
    page.wait_for_selector(".progress[data-complete=true]", timeout=600_000)
    page.wait_for_function(PHOTO_SHOWN, arg="")
    samples: dict[str, list[float]] = {"next photo": [], "confirm": [], "confirm stored": []}
    for _ in range(runs):
        previous = _query_src(page)
        samples["next photo"].append(
            _timed(page, lambda: page.keyboard.press("ArrowRight"), PHOTO_SHOWN, previous)
        )
    page.locator(".queue li").first.click()
    page.wait_for_function(PHOTO_SHOWN, arg="")
    for index in range(runs):
        previous = _query_src(page)
        samples["confirm"].append(
            _timed(page, lambda: page.keyboard.press("Enter"), PHOTO_SHOWN, previous)
        )
        page.wait_for_function(
            "(i) => document.querySelectorAll('.queue li')[i].dataset.saved === 'true'"
            " && (window.savedAt = performance.now())",
            arg=index,
            polling="raf",
            timeout=60_000,
        )
        samples["confirm stored"].append(page.evaluate("window.savedAt - window.keyAt"))
    return samples


def _catalogue_keys(page, runs: int) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    """Opening an individual from the list, and typing in the search field."""
    print("measuring the catalogue's keys ...", flush=True)
    samples: dict[str, list[float]] = {"open an individual": [], "search (one character)": []}
    for n in range(runs):
        page.evaluate("() => { location.hash = '#/individuals'; }")
        card = page.locator(".card").nth(n)
        card.wait_for()
        individual = card.get_attribute("data-id")
        card.focus()
        samples["open an individual"].append(
            _timed(
                page,
                lambda: page.keyboard.press("Enter"),
                # The rows are put in at once, with the heading.
                "(id) => document.querySelector('.individual h1')?.textContent === id"
                " && document.querySelector('.sightings tbody tr') !== null",
                individual,
            )
        )
    page.evaluate("() => { location.hash = '#/individuals'; }")
    search = page.locator("#search")
    search.wait_for()
    for text in SEARCHES:
        search.fill("")
        page.wait_for_function("() => document.querySelector('.individuals').dataset.query === '|'")
        search.focus()
        for end in range(1, len(text) + 1):
            typed = text[:end]
            samples["search (one character)"].append(
                _timed(
                    page,
                    lambda c=typed[-1]: page.keyboard.type(c),
                    "(typed) => document.querySelector('.individuals').dataset.query"
                    " === `${typed}|`",
                    typed,
                )
            )
    return samples


def _summary(samples: list[float]) -> dict[str, object]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered),
        "min_ms": ordered[0],
        "max_ms": ordered[-1],
        "samples_ms": [round(s, 1) for s in samples],
    }


def _markdown(result: dict) -> str:
    meta = result["meta"]
    catalogue = result["catalogue"]
    lines = [
        "# Interface: from a keystroke to the page updated",
        "",
        (
            f"`{meta['command']}`, {meta['date']}, on {meta['machine']}; load average"
            f" {meta['load_average_1min_at_start']} when it started (the machine is shared)."
        ),
        "",
        (
            f"Catalogue: {catalogue['photos']} photos of {catalogue['individuals']} individuals,"
            f" {catalogue['source']}. Chromium (headless, software rendering) at"
            f" {result['viewport']['width']} x {result['viewport']['height']}, driven by Playwright"
            " on the same machine as the service. A key's time runs from its keydown event to the"
            " first animation frame showing the result: the next photo and its best candidate's"
            " photo decoded, an individual's page with every sighting listed (thumbnails load"
            " after), the list showing the matches of the search. A confirmation opens the next"
            " photo at once and is stored in the background; 'confirm stored' is the time until"
            " the service has stored it (not a wait the reviewer sees)."
        ),
        "",
        f"Bar: median within {result['bar_ms']:.0f} ms.",
        "",
        "| action | median | min | max | samples |",
        "|---|---|---|---|---|",
    ]
    for name, summary in result["actions"].items():
        lines.append(
            f"| {name} | {summary['median_ms']:.0f} ms | {summary['min_ms']:.0f} ms"
            f" | {summary['max_ms']:.0f} ms | {len(summary['samples_ms'])} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
