"""The service answers at once, whatever opening the catalogue costs: /health at once,
/ready 503 with progress while the index is rebuilt, identification 503 with Retry-After
until it is open."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from litestar.testing import TestClient

import service.runtime
from embeddings.images import load_photo
from indexer.catalogue import Catalogue
from indexer.gallery import Gallery
from indexer.results import BuildStage
from service.app import create_app
from service.config import FeatureSettings, Settings
from tests.synthetic import encode, sighting


def test_probes_answer_while_the_catalogue_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_open = Gallery.open
    rebuilding = None  # the opening's `stages` callback, once the opening calls Gallery.open

    def slow_open(data_dir: Path, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal rebuilding
        rebuilding = kwargs["rebuilding"]
        rebuilding(BuildStage.READING)(120, 1000)  # as a rebuild reports it
        assert release.wait(timeout=30)
        return real_open(data_dir, **kwargs)

    monkeypatch.setattr(Gallery, "open", slow_open)
    monkeypatch.setattr(service.runtime, "_WAIT_FOR_GALLERY_S", 0.2)
    app = create_app(Settings(data_dir=str(tmp_path / "data"), rate_limit_per_minute=0))
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok"}
        starting = client.get("/ready")
        assert starting.status_code == 503
        assert starting.json() == {
            "status": "starting",
            "detail": "rebuilding the search index: reading the photos' features: 120 of 1000",
            "done": 120,
            "total": 1000,
        }
        busy = client.post("/v1/identify", files={"file": ("q.jpg", encode(sighting(1, 0)))})
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "5"
        assert busy.json()["error"] == "unavailable"
        assert client.get("/v1/individuals").status_code == 503
        assert client.get("/metrics").status_code == 200
        # The web interface loads, and says the catalogue is opening (from /ready).
        assert client.get("/").status_code == 200
        assert client.get("/ui/app.js").status_code == 200
        rebuilding(BuildStage.TRAINING)(0, 0)  # every photo read: the lists are trained
        assert client.get("/ready").json() == {
            "status": "starting",
            "detail": f"rebuilding the search index: {BuildStage.TRAINING}",
            "done": 0,
            "total": 0,
        }
        assert "no progress shown" in BuildStage.TRAINING
        rebuilding(BuildStage.ADDING)(400, 1000)
        assert client.get("/ready").json()["detail"] == (
            "rebuilding the search index: adding the descriptors to the index: 400 of 1000"
        )
        release.set()
        assert client.get("/ready").status_code == 200
        answer = client.post("/v1/identify", files={"file": ("q.jpg", encode(sighting(1, 0)))})
        assert answer.status_code == 200


def test_a_catalogue_that_cannot_be_opened_leaves_the_service_unready(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("not a data folder")
    with TestClient(create_app(Settings(data_dir=str(not_a_folder)))) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "failed"
        assert "could not be opened" in ready.json()["detail"]


def test_a_catalogue_described_under_other_settings_is_described_again_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade (or a `[features]` change) that changes the extractor's version,
    the service describes its stored photos again before it is ready, saying so, instead
    of answering "new individual" for every photo it holds."""
    data = tmp_path / "data"
    with Gallery.open(data) as gallery:
        for individual in (1, 2, 3):
            photo = load_photo(encode(sighting(individual, 0)))
            gallery.catalogue.enrol(photo, f"HW-{individual}")
    release = threading.Event()
    real_reextract = Catalogue.reextract

    def slow_reextract(self, progress=None, describe=None):  # type: ignore[no-untyped-def]
        progress(1, 3)
        assert release.wait(timeout=30)
        return real_reextract(self, progress, describe)

    monkeypatch.setattr(Catalogue, "reextract", slow_reextract)
    monkeypatch.setattr(service.runtime, "_WAIT_FOR_GALLERY_S", 0.2)
    settings = Settings(
        data_dir=str(data), rate_limit_per_minute=0, features=FeatureSettings(max_features=600)
    )
    with TestClient(create_app(settings)) as client:
        starting = client.get("/ready")
        release.set()
        # Describing and rebuilding take a moment after the release; /ready waits only
        # 0.2 s for them here, so ask until they are done.
        deadline = time.monotonic() + 30
        ready = client.get("/ready")
        while ready.status_code == 503 and time.monotonic() < deadline:
            ready = client.get("/ready")
        answer = client.post("/v1/identify", files={"file": ("q.jpg", encode(sighting(2, 1)))})
    assert starting.status_code == 503
    assert starting.json()["detail"] == (
        "describing stored photos for the current extractor settings: 1 of 3"
    )
    assert ready.status_code == 200, ready.text
    counts = ready.json()["counts"]
    assert counts["images"] == counts["stored_images"] == 3
    assert answer.json()["candidates"][0]["individual_id"] == "HW-2"
