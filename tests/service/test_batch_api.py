"""Batch identification (NDJSON) and the earlier service's /v1/predict-* schema."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from PIL import Image

from service.app import create_app
from service.config import Settings
from tests.service.test_app import assert_error, enrol, photo


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=str(tmp_path_factory.mktemp("data")),
        rate_limit_per_minute=0,
        max_batch_entries=6,
        max_upload_bytes=2_000_000,
        max_batch_bytes=5_000_000,
    )
    with TestClient(create_app(settings)) as client:
        for individual in ("HW-1", "HW-2"):
            for seed in (0, 1):
                enrol(client, photo(individual, seed), individual, species="humpback_whale")
        yield client


def make_zip(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def lines(response) -> list[dict]:
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines() if line]


def test_zip_batch_answers_every_entry_in_order(client: TestClient) -> None:
    archive = make_zip(
        {
            "survey/a.jpg": photo("HW-1", 5),
            "survey/b.jpg": photo("HW-2", 5),
            "survey/broken.jpg": photo("HW-1", 6)[:300],
            "inner.zip": make_zip({"x.jpg": photo("HW-1", 7)}),
            "notes/": b"",
        }
    )
    response = client.post("/v1/identify/batch", files={"archive": ("s.zip", archive)})
    assert response.status_code == 200, response.text
    results = lines(response)
    assert response.headers["X-Batch-Total"] == str(len(results)) == "4"
    assert [r["image"] for r in results] == [
        "survey/a.jpg",
        "survey/b.jpg",
        "survey/broken.jpg",
        "inner.zip",
    ]
    assert results[0]["candidates"][0]["individual_id"] == "HW-1"
    assert results[1]["candidates"][0]["individual_id"] == "HW-2"
    assert (results[2]["decision"], results[2]["rejection_reason"]) == (
        "rejected",
        "corrupted_image",
    )
    assert (results[3]["decision"], results[3]["rejection_reason"]) == (
        "rejected",
        "unsupported_format",
    )


def test_several_files_batch(client: TestClient) -> None:
    files = [
        ("files", ("one.jpg", photo("HW-2", 8))),
        ("files", ("two.png", b"\x89PNG\r\n\x1a\n garbage")),
    ]
    response = client.post("/v1/identify/batch", files=files, params={"top_k": 1})
    results = lines(response)
    assert response.headers["X-Batch-Total"] == "2"
    assert [r["image"] for r in results] == ["one.jpg", "two.png"]
    assert len(results[0]["candidates"]) == 1
    assert results[1]["decision"] == "rejected"


def test_a_file_above_the_photo_limit_is_answered_too_large(client: TestClient) -> None:
    files = [("files", ("big.jpg", bytes(2_100_000))), ("files", ("ok.jpg", photo("HW-2", 5)))]
    results = lines(client.post("/v1/identify/batch", files=files))
    assert results[0]["rejection_reason"] == "too_large"
    assert results[1]["candidates"][0]["individual_id"] == "HW-2"


def test_zip_bomb_entry_is_rejected_without_inflating(client: TestClient) -> None:
    bomb = make_zip({"bomb.jpg": bytes(1_500_000), "ok.jpg": photo("HW-1", 5)})
    results = lines(client.post("/v1/identify/batch", files={"archive": ("b.zip", bomb)}))
    assert results[0]["rejection_reason"] == "too_large"
    assert results[1]["candidates"][0]["individual_id"] == "HW-1"


@pytest.mark.parametrize(
    ("archive", "status", "error"),
    [
        (b"this is not a zip", 422, "not_a_zip"),
        (make_zip({f"{i}.jpg": b"x" for i in range(7)}), 413, "too_many_entries"),
    ],
)
def test_unusable_archive_is_a_4xx(client: TestClient, archive: bytes, status, error) -> None:
    response = client.post("/v1/identify/batch", files={"archive": ("a.zip", archive)})
    assert_error(response, status, error)


def test_empty_batch_is_400(client: TestClient) -> None:
    assert_error(client.post("/v1/identify/batch", data={"x": "1"}), 400)


def test_batch_above_the_byte_limit_is_413(client: TestClient) -> None:
    big = make_zip({"a.jpg": bytes(6_000_000)}, zipfile.ZIP_STORED)
    assert_error(client.post("/v1/identify/batch", files={"archive": ("a.zip", big)}), 413)


def test_entry_names_never_touch_the_file_system(client: TestClient, tmp_path: Path) -> None:
    target = tmp_path / "escaped.jpg"
    archive = make_zip({f"../../../../{target}": photo("HW-1", 5)})
    results = lines(client.post("/v1/identify/batch", files={"archive": ("a.zip", archive)}))
    assert results[0]["candidates"][0]["individual_id"] == "HW-1"
    assert not target.exists()


def test_predict_single_speaks_the_old_schema(client: TestClient) -> None:
    content = photo("HW-2", 5)
    response = client.post("/v1/predict-single", files={"file": ("q.jpg", content)})
    body = response.json()
    assert set(body) == {
        "image_ind",
        "bbox",
        "class_animal",
        "id_animal",
        "probability",
        "is_cetacean",
        "cetacean_score",
        "rejected",
        "rejection_reason",
        "model_version",
        "mask",
    }
    assert (body["image_ind"], body["class_animal"], body["id_animal"]) == (
        "q.jpg",
        "HW-2",
        "humpback_whale",
    )
    assert body["bbox"] == [0, 0, *Image.open(io.BytesIO(content)).size]
    assert body["rejected"] is False
    assert body["cetacean_score"] == -1.0
    assert body["is_cetacean"] is None  # no gate looked: no claim either way
    assert "gate=none" in body["model_version"]
    text = client.post("/v1/predict-single", files={"file": ("notes.txt", b"not a photo")})
    assert text.json()["is_cetacean"] is None and text.json()["rejected"] is True


def test_predict_batch_returns_a_list(client: TestClient) -> None:
    archive = make_zip({"a.jpg": photo("HW-1", 5), "b.jpg": b"junk"})
    body = client.post("/v1/predict-batch", files={"file": ("a.zip", archive)}).json()
    assert [d["image_ind"] for d in body] == ["a.jpg", "b.jpg"]
    assert body[0]["class_animal"] == "HW-1"
    assert (body[1]["rejected"], body[1]["rejection_reason"]) == (True, "unsupported_format")
