"""SIGKILL during enrolment: every acknowledged photo's file survives byte for byte, every
row has its file, and no file without a row is left once the gallery opens again."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from litestar.testing import TestClient

from indexer.gallery import Gallery
from service.app import create_app
from service.config import Settings
from tests.indexer.crash_enrol import content

ROOT = Path(__file__).resolve().parents[2]
ITERATIONS = 3


def enrol_until_killed(data: Path, first: int, rng: random.Random) -> list[tuple[int, int, str]]:
    """Run the child, SIGKILL it after a few acknowledgements and a random delay;
    return every (index, image_id, sha256) it acknowledged."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.indexer.crash_enrol", str(data), str(first)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    acknowledged = []
    try:
        assert child.stdout is not None
        wanted = rng.randint(1, 4)
        for line in child.stdout:
            index, image_id, sha = line.split()
            acknowledged.append((int(index), int(image_id), sha))
            if len(acknowledged) >= wanted:
                break
        assert len(acknowledged) == wanted, "the child stopped before it was killed"
        # Somewhere in the next enrolment: decoding, extracting, writing, committing.
        time.sleep(rng.uniform(0.0, 0.25))
    finally:
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
    # Lines printed before the kill were acknowledged too.
    for line in rest.splitlines():
        parts = line.split()
        if len(parts) == 3:
            acknowledged.append((int(parts[0]), int(parts[1]), parts[2]))
    assert child.returncode == -signal.SIGKILL
    return acknowledged


def files_on_disk(photos: Path) -> set[str]:
    names = set()
    for path in photos.rglob("*"):
        if path.is_file() and path.name != ".lock":
            names.add(path.name)
    return names


@pytest.mark.slow
def test_acknowledged_photo_files_survive_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = random.Random(20261127)
    acknowledged: list[tuple[int, int, str]] = []
    for iteration in range(ITERATIONS):
        acknowledged += enrol_until_killed(data, 1000 * iteration, rng)
        with Gallery.open(data) as gallery:  # sweeps what the kill left
            for index, image_id, sha in acknowledged:
                row = gallery.store.image(image_id)
                assert row is not None and row.sha256 == sha
                assert gallery.photos.read(sha) == content(index)
            # The file is written before the row commits: every row has its file.
            shas = gallery.store.image_shas()
            for sha in shas:
                assert hashlib.sha256(gallery.photos.read(sha)).hexdigest() == sha
            # ... and nothing else is left: no file without a row, no temporary file.
            assert files_on_disk(data / "photos") == shas

    settings = Settings(data_dir=str(data), rate_limit_per_minute=0)
    with TestClient(create_app(settings)) as client:
        for index, image_id, _ in acknowledged[:: max(1, len(acknowledged) // 3)]:
            response = client.get(f"/v1/images/{image_id}/file")
            assert response.status_code == 200
            assert response.content == content(index)
