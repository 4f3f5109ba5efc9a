"""Catalogue, review and export endpoints through Litestar's test client."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient
from PIL import Image

from embeddings.images import load_photo
from service.app import create_app
from service.config import Settings
from tests.service.test_app import assert_error, enrol, identify, photo


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=str(tmp_path / "data"), rate_limit_per_minute=0)
    with TestClient(create_app(settings)) as client:
        for individual in ("HW-1", "HW-2"):
            for seed in (0, 1):
                assert enrol(client, photo(individual, seed), individual, species="humpback_whale")
        yield client


def best(client: TestClient, individual: str, seed: int = 5) -> str | None:
    candidates = identify(client, photo(individual, seed)).json()["candidates"]
    return candidates[0]["individual_id"] if candidates else None


def files(*contents: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (f"p{i}.jpg", c, "image/jpeg")) for i, c in enumerate(contents)]


# ---------------------------------------------------------------------- individuals


def test_create_list_and_read_individuals(client: TestClient) -> None:
    created = client.post("/v1/individuals", json={"id": "FW-1", "species": "fin_whale"})
    assert created.status_code == 201, created.text
    assert created.json()["image_count"] == 0
    assert_error(client.post("/v1/individuals", json={"id": "FW-1"}), 409, "conflict")

    page = client.get("/v1/individuals", params={"limit": 2}).json()
    assert [i["id"] for i in page["items"]] == ["FW-1", "HW-1"]
    assert page["next_offset"] == 2
    last = client.get("/v1/individuals", params={"limit": 2, "offset": 2}).json()
    assert [i["id"] for i in last["items"]] == ["HW-2"]
    assert last["next_offset"] is None
    fins = client.get("/v1/individuals", params={"species": "fin_whale"}).json()
    assert [i["id"] for i in fins["items"]] == ["FW-1"]

    detail = client.get("/v1/individuals/HW-1").json()
    assert detail["individual"]["image_count"] == 2
    assert len(detail["images"]) == 2
    assert {"taken_at", "latitude", "longitude", "source_name"} <= set(detail["images"][0])


def test_search_finds_ids_and_names_containing_the_text(client: TestClient) -> None:
    assert (
        client.post("/v1/individuals", json={"id": "FW-1", "name": "Salt 50%"}).status_code == 201
    )
    assert client.post("/v1/individuals", json={"id": "x_y"}).status_code == 201

    def found(search: str, **params: str) -> list[str]:
        page = client.get("/v1/individuals", params={"search": search, **params}).json()
        return [i["id"] for i in page["items"]]

    assert found("hw") == ["HW-1", "HW-2"]
    assert found("-1") == ["FW-1", "HW-1"]
    assert found("sal") == ["FW-1"]  # the name
    assert found("_") == ["x_y"]  # as text, not a pattern
    assert found("0%") == ["FW-1"]
    assert found("hw", species="humpback_whale", limit="1") == ["HW-1"]
    assert found("   ") == ["FW-1", "HW-1", "HW-2", "x_y"]
    assert found("nobody") == []
    assert_error(client.get("/v1/individuals", params={"search": "x" * 129}), 400)


def test_an_individual_names_a_photo_to_show_it_by(client: TestClient) -> None:
    detail = client.get("/v1/individuals/HW-1").json()
    first = min(image["id"] for image in detail["images"])
    assert detail["individual"]["cover_image_id"] == first
    listed = client.get("/v1/individuals").json()["items"]
    assert {i["id"]: i["cover_image_id"] for i in listed}["HW-1"] == first
    created = client.post("/v1/individuals", json={"id": "FW-2"}).json()
    assert created["cover_image_id"] is None


@pytest.mark.parametrize(
    ("body", "status"),
    [({"id": ""}, 400), ({"id": "   "}, 400), ({}, 400), ({"id": "x", "colour": "red"}, 400)],
)
def test_create_individual_rejects_bad_bodies(client: TestClient, body: dict, status: int) -> None:
    assert_error(client.post("/v1/individuals", json=body), status)


def test_unknown_individual_and_image_are_404(client: TestClient) -> None:
    assert_error(client.get("/v1/individuals/nobody"), 404, "not_found")
    assert_error(client.patch("/v1/individuals/nobody", json={"name": "x"}), 404)
    assert_error(client.delete("/v1/individuals/nobody"), 404)
    assert_error(client.get("/v1/images/999"), 404)
    # Beyond SQLite's 64-bit integers: a malformed id, not a crash.
    assert_error(client.get(f"/v1/images/{2**63}"), 400, "bad_request")
    assert_error(client.delete(f"/v1/images/{2**63}"), 400, "bad_request")
    assert_error(client.delete("/v1/images/999"), 404)
    assert_error(client.post("/v1/individuals/nobody/images", files=files(photo("HW-1", 3))), 404)


@pytest.mark.parametrize("limit", [0, 501, -1])
def test_page_size_out_of_range_is_400(client: TestClient, limit: int) -> None:
    assert_error(client.get("/v1/individuals", params={"limit": limit}), 400)


def test_rename_and_set_species_are_searchable_at_once(client: TestClient) -> None:
    response = client.patch(
        "/v1/individuals/HW-1", json={"id": "HW-0001", "species": "Megaptera novaeangliae"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "HW-0001"
    answer = identify(client, photo("HW-1", 5)).json()["candidates"][0]
    assert (answer["individual_id"], answer["species"]) == ("HW-0001", "Megaptera novaeangliae")
    refused = client.patch("/v1/individuals/HW-0001", json={"id": "HW-2", "name": "Salt"})
    assert_error(refused, 409)
    assert client.get("/v1/individuals/HW-0001").json()["individual"]["name"] is None


def test_merge_moves_photos(client: TestClient) -> None:
    response = client.post("/v1/individuals/HW-2/merge", json={"source": "HW-1"})
    assert response.status_code == 200, response.text
    assert response.json()["moved_images"] == 2
    assert response.json()["individual"]["image_count"] == 4
    assert best(client, "HW-1") == "HW-2"
    assert_error(client.get("/v1/individuals/HW-1"), 404)
    assert_error(client.post("/v1/individuals/HW-2/merge", json={"source": "HW-2"}), 409)


def test_delete_image_and_individual(client: TestClient) -> None:
    images = client.get("/v1/individuals/HW-1").json()["images"]
    assert client.get(f"/v1/images/{images[0]['id']}").json()["individual_id"] == "HW-1"
    assert client.delete(f"/v1/images/{images[0]['id']}").status_code == 204
    assert client.get("/v1/individuals/HW-1").json()["individual"]["image_count"] == 1
    deleted = client.delete("/v1/individuals/HW-1")
    assert deleted.json() == {"deleted_images": 1}
    assert best(client, "HW-1") != "HW-1"
    assert client.get("/ready").json()["counts"]["individuals"] == 1


def test_add_images_to_an_individual(client: TestClient) -> None:
    client.post("/v1/individuals", json={"id": "HW-3"})
    response = client.post(
        "/v1/individuals/HW-3/images", files=files(photo("HW-3", 0), photo("HW-3", 1))
    )
    assert response.status_code == 201, response.text
    assert [r["created"] for r in response.json()] == [True, True]
    assert best(client, "HW-3") == "HW-3"


def test_one_bad_photo_stores_none_of_the_request(client: TestClient) -> None:
    client.post("/v1/individuals", json={"id": "HW-3"})
    response = client.post(
        "/v1/individuals/HW-3/images", files=files(photo("HW-3", 0), b"not a photo")
    )
    assert_error(response, 422, "unsupported_format")
    assert client.get("/v1/individuals/HW-3").json()["images"] == []


# ---------------------------------------------------------------------- review


def review(client: TestClient, content: bytes, verdict: str, **fields: str):
    return client.post(
        "/v1/review",
        files={"file": ("q.jpg", content, "image/jpeg")},
        data={"verdict": verdict, **fields},
    )


def test_review_confirm_enrols_into_the_individual(client: TestClient) -> None:
    response = review(client, photo("HW-1", 7), "confirm", individual_id="HW-1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["individual_id"], body["created_individual"], body["created_image"]) == (
        "HW-1",
        False,
        True,
    )
    assert client.get("/v1/individuals/HW-1").json()["individual"]["image_count"] == 3


def test_review_no_match_starts_a_new_individual(client: TestClient) -> None:
    named = review(client, photo("HW-9", 0), "no_match", individual_id="HW-9", species="fin_whale")
    assert named.json()["created_individual"] is True
    assert best(client, "HW-9") == "HW-9"
    unnamed = review(client, photo("HW-8", 0), "no_match").json()
    assert unnamed["individual_id"].startswith("new-")
    assert best(client, "HW-8") == unnamed["individual_id"]


def test_review_errors(client: TestClient) -> None:
    assert_error(review(client, photo("HW-1", 7), "confirm"), 400)
    assert_error(review(client, photo("HW-1", 7), "confirm", individual_id="nobody"), 404)
    assert_error(review(client, photo("HW-1", 7), "no_match", individual_id="HW-2"), 409)
    assert_error(review(client, photo("HW-1", 7), "maybe", individual_id="HW-1"), 400)
    assert_error(review(client, b"junk", "confirm", individual_id="HW-1"), 422)
    assert client.get("/v1/individuals/HW-1").json()["individual"]["image_count"] == 2


# ---------------------------------------------------------------------- export


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_export_csv_has_every_sighting(client: TestClient) -> None:
    response = client.get("/v1/export", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    table = rows(response.text)
    assert sorted(r["individual_id"] for r in table) == ["HW-1", "HW-1", "HW-2", "HW-2"]


def test_export_darwin_core(client: TestClient) -> None:
    table = rows(client.get("/v1/export", params={"format": "dwc"}).text)
    assert len(table) == 4
    assert {r["scientificName"] for r in table} == {"Megaptera novaeangliae"}
    assert {r["organismID"] for r in table} == {"HW-1", "HW-2"}
    assert all(r["occurrenceID"].startswith("urn:whaleid:image:") for r in table)
    assert {"eventDate", "decimalLatitude", "decimalLongitude", "basisOfRecord"} <= set(table[0])


def test_export_filters_by_species_and_refuses_unknown_formats(client: TestClient) -> None:
    client.post("/v1/individuals", json={"id": "FW-1", "species": "fin_whale"})
    enrol(client, photo("FW-1", 0), "FW-1")
    only = rows(client.get("/v1/export", params={"species": "fin_whale"}).text)
    assert [r["individual_id"] for r in only] == ["FW-1"]
    assert_error(client.get("/v1/export", params={"format": "xlsx"}), 400)

    media = "http://testserver.local/v1/images/{}/file"
    dwc = rows(client.get("/v1/export", params={"format": "dwc"}).text)
    assert {r["associatedMedia"] for r in dwc} == {media.format(r["image_id"]) for r in only} | {
        media.format(i["id"]) for n in ("HW-1", "HW-2") for i in images_of(client, n)
    }


# ---------------------------------------------------------------------- photo files


def images_of(client: TestClient, individual: str) -> list[dict]:
    return client.get(f"/v1/individuals/{individual}").json()["images"]


def test_image_file_is_the_original_bytes_with_caching_headers(client: TestClient) -> None:
    [first, _] = images_of(client, "HW-1")
    response = client.get(f"/v1/images/{first['id']}/file")

    assert response.status_code == 200
    assert response.content in (photo("HW-1", 0), photo("HW-1", 1))
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["etag"] == f'"{first["sha256"]}"'
    assert response.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert first["file_bytes"] == len(response.content)
    assert first["format"] == "JPEG"


def test_image_file_media_type_follows_the_format(client: TestClient) -> None:
    content = photo("HW-5", 0, "PNG")
    image_id = enrol(client, content, "HW-5").json()["image_id"]
    response = client.get(f"/v1/images/{image_id}/file")
    assert response.headers["content-type"] == "image/png"
    assert response.content == content


@pytest.mark.parametrize("path", ["file", "thumbnail"])
def test_if_none_match_answers_304(client: TestClient, path: str) -> None:
    image_id = images_of(client, "HW-2")[0]["id"]
    etag = client.get(f"/v1/images/{image_id}/{path}").headers["etag"]

    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = client.get(f"/v1/images/{image_id}/{path}", headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["etag"] == etag
    stale = client.get(f"/v1/images/{image_id}/{path}", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200 and stale.content


def test_thumbnail_is_a_cached_jpeg_whose_etag_names_the_size(client: TestClient) -> None:
    image = images_of(client, "HW-1")[0]
    small = client.get(f"/v1/images/{image['id']}/thumbnail", params={"size": 64})
    default = client.get(f"/v1/images/{image['id']}/thumbnail")

    assert small.status_code == 200 and small.headers["content-type"] == "image/jpeg"
    assert small.headers["etag"] == f'"{image["sha256"]}-64"'
    assert default.headers["etag"] == f'"{image["sha256"]}-256"'
    assert small.headers["cache-control"] == "private, max-age=31536000, immutable"
    with Image.open(io.BytesIO(small.content)) as thumb:
        assert max(thumb.size) == 64
    photos = client.app.state.runtime.gallery.photos
    cached = photos.root / "thumbnails" / "64" / f"{image['sha256']}.jpg"
    assert cached.read_bytes() == small.content
    again = client.get(f"/v1/images/{image['id']}/thumbnail", params={"size": 64})
    assert again.content == small.content


@pytest.mark.parametrize("size", ["0", "15", "1025", "big", "-1"])
def test_thumbnail_size_out_of_range_is_400(client: TestClient, size: str) -> None:
    image_id = images_of(client, "HW-1")[0]["id"]
    assert_error(
        client.get(f"/v1/images/{image_id}/thumbnail", params={"size": size}), 400, "bad_request"
    )


@pytest.mark.parametrize("path", ["file", "thumbnail"])
def test_files_of_unknown_images_and_of_images_without_a_file_are_404(
    client: TestClient, path: str
) -> None:
    # As an older version enrolled it: features only.
    old = msgspec.structs.replace(load_photo(photo("HW-7", 0)), content=b"")
    image_id = client.app.state.runtime.gallery.catalogue.enrol(old, "HW-7").image_id
    assert client.get(f"/v1/images/{image_id}").json()["file_bytes"] is None

    body = assert_error(client.get(f"/v1/images/{image_id}/{path}"), 404, "not_found")
    assert "no stored file" in body["detail"]
    assert_error(client.get(f"/v1/images/999/{path}"), 404, "not_found")
    dwc = rows(client.get("/v1/export", params={"format": "dwc"}).text)
    assert [r["associatedMedia"] for r in dwc if r["organismID"] == "HW-7"] == [""]


def test_deleted_image_files_are_gone(client: TestClient) -> None:
    image = images_of(client, "HW-1")[0]
    assert client.get(f"/v1/images/{image['id']}/thumbnail").status_code == 200
    photos = client.app.state.runtime.gallery.photos
    assert photos.has(image["sha256"])

    assert client.delete(f"/v1/images/{image['id']}").status_code == 204
    assert not photos.has(image["sha256"])
    assert_error(client.get(f"/v1/images/{image['id']}/file"), 404)
    others = [i["sha256"] for i in images_of(client, "HW-2")]
    assert client.delete("/v1/individuals/HW-2").status_code == 200
    assert not any(photos.has(sha) for sha in others)


def test_photo_file_routes_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    for path in ("/v1/images/{image_id}/file", "/v1/images/{image_id}/thumbnail"):
        assert {"200", "304", "404"} <= set(paths[path]["get"]["responses"]), path
    assert "400" in paths["/v1/images/{image_id}/thumbnail"]["get"]["responses"]
