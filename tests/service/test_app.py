"""The HTTP service on a real gallery in a temporary folder, with synthetic photos."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient, create_test_client

from embeddings.photo import ImageError
from indexer.store import Conflict, NotFound, StoreError
from service.app import create_app
from service.config import Settings
from service.errors import BadRequest, PayloadTooLarge, handle_error
from service.schemas import WEIGHT_FREE
from tests.synthetic import encode, fluke, sighting

INDIVIDUALS = [f"HW-{i}" for i in range(5)]
ERROR_FIELDS = {"status_code", "error", "detail"}


def photo(individual: str, seed: int, fmt: str = "JPEG") -> bytes:
    return encode(sighting(individual, seed), fmt)


def enrol(client: TestClient, content: bytes, individual_id: str, **fields: str) -> httpx.Response:
    return client.post(
        "/v1/enrol",
        files={"file": ("photo.jpg", content, "image/jpeg")},
        data={"individual_id": individual_id, **fields},
    )


def identify(
    client: TestClient, content: bytes, name: str = "query.jpg", **params: object
) -> httpx.Response:
    return client.post("/v1/identify", files={"file": (name, content)}, params=params)


def wait_ready(client: TestClient, timeout_s: float = 30.0) -> None:
    """Wait until /ready says the catalogue is open. It opens in the background: an
    empty one in well under a second, but longer on a machine busy with other work."""
    deadline = time.monotonic() + timeout_s
    while (ready := client.get("/ready")).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.status_code == 200, ready.text


def assert_error(response: httpx.Response, status: int, error: str | None = None) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == ERROR_FIELDS
    assert body["status_code"] == status
    if error is not None:
        assert body["error"] == error
    assert body["detail"]
    return body


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """A fresh service on an empty gallery."""
    with TestClient(create_app(Settings(data_dir=str(tmp_path / "data")))) as client:
        yield client


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A service with two photos of each of INDIVIDUALS; tests must not change it."""
    settings = Settings(data_dir=str(tmp_path_factory.mktemp("data")), max_image_pixels=400_000)
    with TestClient(create_app(settings)) as client:
        for individual in INDIVIDUALS:
            for seed in (0, 1):
                response = enrol(
                    client, photo(individual, seed), individual, species="humpback_whale"
                )
                assert response.status_code == 201, response.text
        yield client


# ---------------------------------------------------------------------- probes


def test_health(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_says_plainly_that_no_model_is_loaded(client: TestClient, tmp_path: Path) -> None:
    body = client.get("/ready").json()

    assert body["status"] == "ready"
    assert body["models"] == []
    assert body["identification"] == WEIGHT_FREE
    assert body["extractor"]["name"] == "rootsift"
    assert body["extractor"]["version"]
    assert body["counts"] == {
        "individuals": 0,
        "images": 0,
        "descriptors": 0,
        "embeddings": 0,
        "centroids": 0,
        "stored_images": 0,
    }
    assert Path(body["database"]).is_relative_to(tmp_path / "data")
    assert Path(body["database"]).is_file()


def test_ready_counts_the_gallery(enrolled: TestClient) -> None:
    counts = enrolled.get("/ready").json()["counts"]

    assert counts["individuals"] == len(INDIVIDUALS)
    assert counts["images"] == 2 * len(INDIVIDUALS)
    assert counts["descriptors"] > 0


# ---------------------------------------------------------------------- identify


def test_identify_finds_the_individual(enrolled: TestClient) -> None:
    response = identify(enrolled, photo("HW-3", seed=9, fmt="PNG"), name="DSC_0042.png")

    body = response.json()
    assert response.status_code == 200
    assert body["image"] == "DSC_0042.png"
    assert body["candidates"][0]["individual_id"] == "HW-3"
    assert body["candidates"][0]["species"] == "humpback_whale"
    assert body["candidates"][0]["evidence"]["source_name"] == "photo.jpg"
    assert body["candidates"][0]["evidence"]["inliers"] > 0
    assert body["rejection_reason"] is None
    assert body["identification"] == WEIGHT_FREE
    assert body["extractor"]["name"] == "rootsift"
    assert body["index_version"]
    assert isinstance(body["calibrated"], bool)
    assert {"decode", "total"} <= set(body["timings_ms"])
    scores = [c["score"] for c in body["candidates"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("top_k", [1, 3])
def test_identify_returns_at_most_top_k(enrolled: TestClient, top_k: int) -> None:
    response = identify(enrolled, photo("HW-1", seed=5), top_k=top_k)

    assert response.status_code == 200
    assert 1 <= len(response.json()["candidates"]) <= top_k


def test_identify_on_an_empty_gallery_is_a_new_individual(client: TestClient) -> None:
    body = identify(client, photo("HW-1", seed=5)).json()

    assert body["decision"] == "new_individual"
    assert body["candidates"] == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(b"", "unsupported_format", id="empty"),
        pytest.param(b"%PDF-1.7 not a photo", "unsupported_format", id="pdf"),
        pytest.param(encode(fluke("HW-1"), "JPEG")[:500], "corrupted_image", id="truncated"),
        # The enrolled fixture allows 400 000 pixels; this one has 960 x 640.
        pytest.param(encode(fluke("HW-1", width=960, height=640), "PNG"), "too_large", id="large"),
    ],
)
def test_unusable_photo_is_a_normal_answer_with_a_reason(
    enrolled: TestClient, content: bytes, reason: str
) -> None:
    response = identify(enrolled, content, name="bad.jpg")

    body = response.json()
    assert response.status_code == 200
    assert body["decision"] == "rejected"
    assert body["rejection_reason"] == reason
    assert body["detail"]
    assert body["candidates"] == []
    assert body["identification"] == WEIGHT_FREE


def test_blank_photo_is_rejected_as_low_confidence(enrolled: TestClient) -> None:
    blank = encode(np.full((240, 320, 3), 90, np.uint8), "PNG")
    body = identify(enrolled, blank, name="sea.png").json()

    assert (body["decision"], body["rejection_reason"]) == ("rejected", "low_confidence")
    assert body["candidates"] == []
    assert body["bbox"] == [0, 0, 320, 240]
    assert body["gate"] == {"applied": False, "score": None, "detail": "no gate model loaded"}


@pytest.mark.parametrize("top_k", ["0", "51", "five"])
def test_identify_top_k_out_of_range_is_400(enrolled: TestClient, top_k: str) -> None:
    assert_error(identify(enrolled, photo("HW-1", 5), top_k=top_k), 400, "bad_request")


def test_identify_without_a_file_is_400(client: TestClient) -> None:
    response = client.post("/v1/identify", files={"other": ("a.jpg", b"x")})

    body = assert_error(response, 400, "bad_request")
    assert "file" in body["detail"]


def test_identify_with_a_json_body_is_400(client: TestClient) -> None:
    assert_error(client.post("/v1/identify", json={"file": "a.jpg"}), 400)


# ---------------------------------------------------------------------- enrol


def test_enrol_creates_then_recognises_the_same_photo(client: TestClient) -> None:
    content = photo("HW-7", 0)

    first = enrol(client, content, "HW-7", species="humpback_whale")
    again = enrol(client, content, "HW-7")

    assert first.status_code == 201
    assert first.json() == {
        "image_id": first.json()["image_id"],
        "individual_id": "HW-7",
        "created": True,
    }
    assert again.status_code == 200
    assert again.json() == {**first.json(), "created": False}


def test_enrolled_photo_is_searchable_at_once(client: TestClient) -> None:
    enrol(client, photo("HW-7", 0), "HW-7")

    body = identify(client, photo("HW-7", 4)).json()

    assert body["candidates"][0]["individual_id"] == "HW-7"


def test_enrol_strips_the_individual_id(client: TestClient) -> None:
    response = enrol(client, photo("HW-8", 0), "  HW-8 ")

    assert response.json()["individual_id"] == "HW-8"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        pytest.param({}, "individual_id", id="missing-id"),
        pytest.param({"individual_id": ""}, "individual_id", id="empty-id"),
        pytest.param({"individual_id": "   "}, "individual_id", id="blank-id"),
    ],
)
def test_enrol_without_an_individual_is_400(
    client: TestClient, fields: dict[str, str], words: str
) -> None:
    response = client.post("/v1/enrol", files={"file": ("a.jpg", photo("HW-1", 0))}, data=fields)

    body = assert_error(response, 400, "bad_request")
    assert words in body["detail"]


def test_enrol_without_a_file_is_400(client: TestClient) -> None:
    assert_error(client.post("/v1/enrol", data={"individual_id": "HW-1"}), 400, "bad_request")


def test_enrol_of_an_unusable_photo_is_422_with_the_reason(client: TestClient) -> None:
    response = enrol(client, b"GIF89a not accepted", "HW-1")

    assert_error(response, 422, "unsupported_format")
    assert client.get("/ready").json()["counts"]["images"] == 0


# ---------------------------------------------------------------------- limits, errors


@pytest.mark.parametrize("extra", [1, 10 * 1024 * 1024], ids=["just-over", "far-over"])
def test_upload_over_the_limit_is_413(tmp_path: Path, extra: int) -> None:
    limit = 256 * 1024
    settings = Settings(data_dir=str(tmp_path / "data"), max_upload_bytes=limit)
    with TestClient(create_app(settings)) as client:
        response = identify(client, b"\xff" * (limit + extra))
        within = identify(client, b"\xff" * limit)

    assert_error(response, 413, "payload_too_large")
    assert within.status_code == 200  # exactly at the limit is accepted (and rejected as junk)


@pytest.mark.parametrize(
    ("exc", "status", "error", "detail"),
    [
        (BadRequest("species: too long"), 400, "bad_request", "species: too long"),
        (PayloadTooLarge("too big"), 413, "payload_too_large", "too big"),
        (ImageError("too_large", "9000x9000"), 422, "too_large", "9000x9000"),
        (NotFound("individual 'X' not found"), 404, "not_found", "individual 'X' not found"),
        (Conflict("individual 'X' already exists"), 409, "conflict", None),
        # Internal failures say nothing about the internals.
        (
            StoreError("/srv/db.sqlite3: disk I/O error"),
            500,
            "database_error",
            "the database failed",
        ),
        (RuntimeError("secret"), 500, "internal_error", "internal server error"),
    ],
)
def test_error_handler_maps_the_hierarchy_to_statuses(
    exc: Exception, status: int, error: str, detail: str | None
) -> None:
    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise exc

    with create_test_client([boom], exception_handlers={Exception: handle_error}) as client:
        body = assert_error(client.get("/boom"), status, error)

    if detail is not None:
        assert body["detail"] == detail


def test_unknown_route_and_wrong_method_are_json(client: TestClient) -> None:
    assert_error(client.get("/v2/nothing"), 404, "not_found")
    assert_error(client.get("/v1/identify"), 405, "method_not_allowed")


def test_openapi_schema_is_served(client: TestClient) -> None:
    schema = client.get("/schema/openapi.json").json()

    assert {"/health", "/ready", "/v1/identify", "/v1/enrol"} <= set(schema["paths"])


# ---------------------------------------------------------------------- lifecycle


def test_enrolments_survive_a_restart(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    with TestClient(create_app(settings)) as client:
        assert enrol(client, photo("HW-2", 0), "HW-2").status_code == 201

    with TestClient(create_app(settings)) as client:
        counts = client.get("/ready").json()["counts"]
        body = identify(client, photo("HW-2", 3)).json()

    assert counts["images"] == 1
    assert body["candidates"][0]["individual_id"] == "HW-2"


def test_apps_do_not_share_state(tmp_path: Path) -> None:
    one = create_app(Settings(data_dir=str(tmp_path / "one")))
    two = create_app(Settings(data_dir=str(tmp_path / "two")))
    with TestClient(one) as first, TestClient(two) as second:
        enrol(first, photo("HW-1", 0), "HW-1")

        assert first.get("/ready").json()["counts"]["images"] == 1
        assert second.get("/ready").json()["counts"]["images"] == 0


def test_heavy_work_runs_in_a_bounded_pool_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TestClient runs the app on an event loop in its own thread; requests sent from
    # several threads here are served concurrently on that loop.
    app: Litestar = create_app(Settings(data_dir=str(tmp_path / "data"), workers=2))
    release = threading.Event()
    lock = threading.Lock()
    running: list[int] = []
    peak = 0

    with TestClient(app) as client:
        wait_ready(client)  # the gallery opens in the background
        pipeline = app.state.runtime.pipeline
        real_identify = pipeline.identify_photo

        def blocking_identify(photo, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal peak
            with lock:
                running.append(1)
                peak = max(peak, len(running))
            try:
                release.wait(timeout=30)
                return real_identify(photo, **kwargs)
            finally:
                with lock:
                    running.pop()

        monkeypatch.setattr(pipeline, "identify_photo", blocking_identify)
        content = photo("HW-1", 0)
        with ThreadPoolExecutor(max_workers=3) as pool:
            pending = [pool.submit(identify, client, content) for _ in range(3)]
            deadline = time.monotonic() + 20
            while len(running) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            # Both workers are blocked inside identify: the loop still answers, and the
            # third request waits for a worker instead of starting a third thread.
            health = client.get("/health")
            time.sleep(0.2)
            busy = len(running)
            release.set()
            responses = [f.result(timeout=60) for f in pending]

    assert health.status_code == 200
    assert busy == 2
    assert peak == 2
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert all(r.json()["decision"] != "rejected" for r in responses)
