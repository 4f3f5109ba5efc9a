"""Screenshots of each page of the web interface, from a real run.

    python scripts/screenshots.py [--out screenshots] [--data ../shared/data]

Starts `whaleid serve` on a fresh catalogue, reviews a small batch in Chromium and
writes review.png, compare-zoomed.png, new-individual.png, catalogue.png,
individual.png and status.png (1280 x 800) into --out.

Without --data the photos are synthetic (tests/synthetic.py), with survey dates and GPS
positions: those are the only screenshots the README may show (docs/screenshots/). With
--data, photos of its humpback-flukes set are used: they stay in --out, which is not part
of the repository (.gitignore), since no image derived from those photos may enter it.
Exits 0 with a message where no Chromium (or no Playwright) is found.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from browser import VIEWPORT, launch_chromium, missing_browser
from serving import bench_env, server

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.synthetic renders the photos

from tests.synthetic import camera_jpeg, encode, sighting, write_manifest

INDIVIDUALS = 8
ENROLLED = 3  # photos per individual; the next one is a query
SURVEY_START = datetime(2024, 6, 1, 8, 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--data", type=Path, help="the shared data folder (not distributed)")
    args = parser.parse_args()
    missing = missing_browser()
    if missing:
        print(f"skipped: {missing}")
        return 0
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="whaleid-screenshots-") as tmp:
        root = Path(tmp)
        env = bench_env(root)
        make = _survey if args.data else _synthetic
        manifest, queries = make(args.data, root)
        whaleid = str(Path(sys.executable).parent / "whaleid")
        subprocess.run(
            [whaleid, "enrol", str(manifest), "--data", str(root / "data")],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with server(root / "data", env) as url:
            while httpx.get(f"{url}/ready", timeout=10).status_code != 200:
                time.sleep(0.5)
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                try:
                    _shoot(browser.new_page(viewport=VIEWPORT), url, queries, args.out)
                finally:
                    browser.close()
    print(f"wrote screenshots to {args.out}")
    return 0


def _synthetic(_: Path | None, root: Path) -> tuple[Path, list[Path]]:
    """Synthetic individuals photographed along a survey track, with dates and GPS."""
    rows, queries = [], []
    for n in range(INDIVIDUALS):
        individual = f"HW-{n + 1:03d}"
        for seed in range(ENROLLED + 1):
            hours = n * 2 + seed * 26
            where = (57.20 + 0.04 * seed + 0.01 * n, -6.30 + 0.05 * seed - 0.02 * n)
            content = camera_jpeg(
                sighting(individual, seed),
                taken_at=SURVEY_START + timedelta(hours=hours),
                position=where,
            )
            path = root / f"{individual}_{seed}.jpg"
            path.write_bytes(content)
            if seed < ENROLLED:
                rows.append((path.name, individual, "humpback_whale"))
            elif n < 4:
                queries.append(path)
    stranger = root / "IMG_0417.jpg"
    stranger.write_bytes(encode(sighting("stranger", 0), "JPEG"))
    damaged = root / "IMG_0418.jpg"
    damaged.write_bytes(b"\xff\xd8\xff damaged on the card")
    return write_manifest(root / "manifest.csv", rows), [*queries, stranger, damaged]


def _survey(data: Path, root: Path) -> tuple[Path, list[Path]]:
    """Individuals of the humpback-flukes set with enough photos; their files are read
    in place, never copied."""
    folder = data / "humpback-flukes"
    by_individual: dict[str, list[str]] = defaultdict(list)
    with open(folder / "manifest.csv", newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            if row.get("individual_id"):
                by_individual[row["individual_id"]].append(row["path"])
    chosen = [i for i, paths in by_individual.items() if len(paths) > ENROLLED][:INDIVIDUALS]
    rows = [
        (str((folder / path).resolve()), individual, "humpback_whale")
        for individual in chosen
        for path in by_individual[individual][:ENROLLED]
    ]
    queries = [folder / by_individual[i][ENROLLED] for i in chosen[:4]]
    return write_manifest(root / "manifest.csv", rows), queries


def _shoot(page, url: str, queries: list[Path], out: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(url + "/")
    page.set_input_files("[data-role=pick-photos]", [str(q) for q in queries])
    page.wait_for_selector(".progress[data-complete=true]", timeout=300_000)
    page.wait_for_function("Number(document.querySelector('.pairs').dataset.drawn) > 0")
    page.screenshot(path=out / "review.png")

    frame = page.locator(".frame[data-side=candidate]").bounding_box()
    page.mouse.move(frame["x"] + frame["width"] * 0.45, frame["y"] + frame["height"] * 0.5)
    page.mouse.wheel(0, -500)
    page.wait_for_timeout(500)  # the original photo replaces the thumbnail
    page.screenshot(path=out / "compare-zoomed.png")

    new = page.locator(".queue li[data-decision=new_individual]")
    if new.count():
        new.first.click()
        page.keyboard.press("n")
        page.wait_for_selector("dialog[open]")
        page.screenshot(path=out / "new-individual.png")
        page.keyboard.press("Escape")

    page.locator("nav a[data-view=individuals]").click()
    page.wait_for_selector(".individuals .card img")
    page.wait_for_timeout(500)
    page.screenshot(path=out / "catalogue.png")

    page.locator(".individuals .card").first.click()
    page.wait_for_selector(".sightings tbody tr")
    page.wait_for_timeout(500)
    page.screenshot(path=out / "individual.png")

    page.locator("nav a[data-view=status]").click()
    page.wait_for_selector(".status-page[data-ready]")
    page.screenshot(path=out / "status.png")


if __name__ == "__main__":
    sys.exit(main())
