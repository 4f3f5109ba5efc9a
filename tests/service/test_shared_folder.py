"""`whaleid serve` and the CLI on one data folder, as a biologist runs them: every CLI
change is in the service's answers within seconds, and nothing is rebuilt for it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.service.test_client import Server
from tests.synthetic import encode, sighting, write_folder

VISIBLE_WITHIN_S = 5.0


def cli(data: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHALEID_")}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *argv, "--data", str(data)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def best(url: str, content: bytes) -> str | None:
    answer = httpx.post(f"{url}/v1/identify", files={"file": ("q.jpg", content)}, timeout=60)
    answer.raise_for_status()
    candidates = answer.json()["candidates"]
    return candidates[0]["individual_id"] if answer.json()["decision"] == "match" else None


def eventually(check, expected) -> float:  # type: ignore[no-untyped-def]
    """Seconds until `check()` returns `expected`; fails past `VISIBLE_WITHIN_S`."""
    started = time.monotonic()
    while (value := check()) != expected:
        assert time.monotonic() - started < VISIBLE_WITHIN_S, f"still {value!r}"
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.mark.slow
def test_cli_changes_are_in_the_services_answers_within_seconds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_folder(tmp_path / "first", ["HW-1", "HW-2"], photos=3)
    assert cli(data, "enrol", str(tmp_path / "first")).returncode == 0
    server = Server(data, tmp_path / "server.log")
    try:
        url = server.url
        assert httpx.get(f"{url}/ready", timeout=30).status_code == 200
        query = encode(sighting("HW-3", 7), "JPEG")
        assert best(url, query) is None

        write_folder(tmp_path / "more", ["HW-3"], photos=3)
        enrolled = cli(data, "enrol", str(tmp_path / "more"))
        assert enrolled.returncode == 0, enrolled.stderr
        eventually(lambda: best(url, query), "HW-3")
        ready = httpx.get(f"{url}/ready").json()
        assert ready["counts"]["images"] == 9

        assert cli(data, "individual", "rename", "HW-3", "Bjorn").returncode == 0
        eventually(lambda: best(url, query), "Bjorn")

        assert cli(data, "individual", "delete", "Bjorn").returncode == 0
        eventually(lambda: best(url, query), None)

        # Neither side rebuilt anything: the server followed the database, and each CLI
        # command resumed from the saved index.
        assert "rebuilding the search index" not in server.tail()
        assert "rebuilding" not in enrolled.stderr
    finally:
        server.stop()
