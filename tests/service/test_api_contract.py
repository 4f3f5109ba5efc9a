"""The API's contract: the OpenAPI document names every status and error body the server
sends, its docs page works offline, and malformed input is a 4xx, never a 500."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.config import Settings
from tests.service.test_app import wait_ready


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=str(tmp_path / "data"), rate_limit_per_minute=0)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


def test_docs_page_fetches_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/schema")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert re.findall(r"(?:src|href)=['\"]?(https?:)?//", page.text) == []
    assert "/v1/identify" in page.text and "/schema/openapi.json" in page.text


def test_every_error_answer_is_documented_with_the_body_sent(client: TestClient) -> None:
    doc = client.get("/schema/openapi.json").json()
    body = doc["components"]["schemas"]["ErrorBody"]
    assert set(body["required"]) == {"status_code", "error", "detail"}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            public = path in ("/health", "/ready", "/metrics")
            for status in ("400", "401", "429", "503"):
                if public:
                    continue
                answer = operation["responses"].get(status)
                assert answer is not None, (method, path, status)
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
    enrol = doc["paths"]["/v1/enrol"]["post"]["responses"]
    assert {"409", "413", "422"} <= set(enrol)


@pytest.mark.parametrize("offset", ["9223372036854775808", "-1", "99999999999999999999999999"])
def test_offsets_past_sqlites_integers_are_a_400(client: TestClient, offset: str) -> None:
    answer = client.get(f"/v1/individuals?offset={offset}")
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"


@pytest.mark.parametrize("path", ["/v1/enrol", "/v1/identify", "/v1/review"])
def test_a_form_field_that_is_not_utf8_is_a_400(client: TestClient, path: str) -> None:
    answer = client.post(
        path,
        files={
            "file": ("a.jpg", b"\xff\xd8 whatever"),
            "individual_id": (None, b"\xff\xfe\xfa"),
            "verdict": (None, b"\xff\xfe"),
        },
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "bad_request"


def test_csv_export_has_one_charset(client: TestClient) -> None:
    answer = client.get("/v1/export")
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"


def test_merging_from_an_individual_that_does_not_exist_is_a_422(client: TestClient) -> None:
    assert client.post("/v1/individuals", json={"id": "target"}).status_code == 201
    missing = client.post("/v1/individuals/target/merge", json={"source": "ghost"})
    assert missing.status_code == 422 and missing.json()["error"] == "unknown_individual"
    gone = client.post("/v1/individuals/nobody/merge", json={"source": "target"})
    assert gone.status_code == 404  # 404 names the path's individual only
