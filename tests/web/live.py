"""What the browser tests share: a live `whaleid serve` on a catalogue enrolled with the
command line (which also fits the probability calibration, as a user's first enrolment
does), and helpers that hand photos to the page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.service.test_client import Server
from tests.service.test_shared_folder import cli
from tests.synthetic import write_manifest

__all__ = ["FilePayload", "enrol", "enrolled", "live_server", "payload", "upload"]

FilePayload = dict[str, str | bytes]
"""A file as Playwright's set_input_files takes it: name, mimeType, buffer."""


@contextmanager
def live_server(
    root: Path, photos: dict[str, list[bytes]], *, species: str = "", settings: str = ""
) -> Iterator[Server]:
    """A server on a catalogue of `photos` (individual id -> photo files), enrolled with
    `species`; `settings` are more lines of its configuration."""
    rows = []
    for individual, contents in photos.items():
        for index, content in enumerate(contents):
            name = f"{individual}_{index}.jpg"
            (root / name).write_bytes(content)
            rows.append((name, individual, species))
    if rows:
        enrolled = cli(root / "data", "enrol", str(write_manifest(root / "manifest.csv", rows)))
        assert enrolled.returncode == 0, enrolled.stderr
    server = Server(root / "data", root / "server.log", settings)
    try:
        assert httpx.get(f"{server.url}/ready", timeout=30).status_code == 200
        yield server
    finally:
        server.stop()


def enrol(url: str, individual: str, contents: list[bytes], species: str = "") -> None:
    """Enrol photos through the running service (its calibration is not refitted for a
    few photos)."""
    for index, content in enumerate(contents):
        answer = httpx.post(
            f"{url}/v1/enrol",
            files={"file": (f"{individual}_{index}.jpg", content)},
            data={"individual_id": individual, **({"species": species} if species else {})},
            timeout=60,
        )
        assert answer.status_code in (200, 201), answer.text


def enrolled(url: str, individual: str) -> list[dict]:
    """The photos the service holds for `individual` ([] when it does not exist)."""
    answer = httpx.get(f"{url}/v1/individuals/{individual}", timeout=30)
    return [] if answer.status_code == 404 else answer.json()["images"]


def payload(name: str, content: bytes) -> FilePayload:
    kind = "application/zip" if name.endswith(".zip") else "image/jpeg"
    return {"name": name, "mimeType": kind, "buffer": content}


def upload(page, files: list[FilePayload]) -> None:  # type: ignore[no-untyped-def]
    """Give the review page photos (or ZIPs) as a user picks them, and wait until every
    answer is in."""
    page.set_input_files("[data-role=pick-photos]", files)
    page.wait_for_selector(".progress[data-complete=true]", timeout=120_000)
