"""Operating the service: metrics, API key, rate limit, CORS, the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.config import Settings
from tests.service.test_app import assert_error, enrol, identify, photo

KEY = "s3cret-key"


def service(tmp_path: Path, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(data_dir=str(tmp_path / "data"), **settings)))


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)]
    assert len(values) == 1, (prefix, text)
    return values[0]


def test_metrics_count_requests_rejections_and_gallery(tmp_path: Path) -> None:
    with service(tmp_path) as client:
        enrol(client, photo("HW-1", 0), "HW-1")
        identify(client, photo("HW-1", 5))
        identify(client, b"junk")
        identify(client, b"junk")
        client.get("/v1/individuals/nobody")
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    route = {"route": "/v1/identify", "method": "POST", "status": "200"}
    assert metric(text, "whaleid_requests_total", **route) == 3
    assert (
        metric(
            text,
            "whaleid_requests_total",
            route="/v1/individuals/{individual_id}",
            method="GET",
            status="404",
        )
        == 1
    )
    assert metric(text, "whaleid_rejections_total", reason="unsupported_format") == 2
    assert (
        metric(text, "whaleid_request_duration_seconds_count", route="/v1/identify", method="POST")
        == 3
    )
    assert metric(text, "whaleid_gallery_images") == 1
    assert metric(text, "whaleid_gallery_individuals") == 1


def test_without_a_key_configured_everything_is_open(tmp_path: Path) -> None:
    with service(tmp_path) as client:
        assert enrol(client, photo("HW-1", 0), "HW-1").status_code == 201


def test_writes_need_the_key_reads_do_not(tmp_path: Path) -> None:
    with service(tmp_path, api_key=KEY) as client:
        assert_error(enrol(client, photo("HW-1", 0), "HW-1"), 401, "unauthorized")
        assert_error(client.post("/v1/individuals", json={"id": "x"}), 401)
        assert_error(client.delete("/v1/individuals/x"), 401)
        wrong = client.post("/v1/individuals", json={"id": "x"}, headers={"X-API-Key": "nope"})
        assert_error(wrong, 401)
        ok = client.post("/v1/individuals", json={"id": "x"}, headers={"X-API-Key": KEY})
        assert ok.status_code == 201
        bearer = client.post(
            "/v1/individuals", json={"id": "y"}, headers={"Authorization": f"Bearer {KEY}"}
        )
        assert bearer.status_code == 201
        assert identify(client, photo("HW-1", 5)).status_code == 200
        assert client.get("/v1/individuals").status_code == 200


def test_protected_reads_need_the_key_but_probes_stay_open(tmp_path: Path) -> None:
    with service(tmp_path, api_key=KEY, protect_reads=True) as client:
        assert_error(identify(client, photo("HW-1", 5)), 401)
        assert_error(client.get("/v1/individuals"), 401)
        assert_error(client.get("/v1/export"), 401)
        assert client.get("/v1/individuals", headers={"X-API-Key": KEY}).status_code == 200
        for probe in ("/health", "/ready", "/metrics"):
            assert client.get(probe).status_code == 200


def test_rate_limit_answers_429_with_a_reason(tmp_path: Path) -> None:
    with service(tmp_path, rate_limit_per_minute=3) as client:
        statuses = [client.get("/v1/individuals").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = client.get("/v1/individuals")
        assert_error(limited, 429, "too_many_requests")
        # Probes are not counted, so an orchestrator never gets a busy pod killed.
        assert client.get("/health").status_code == 200


def test_cors_only_for_configured_origins(tmp_path: Path) -> None:
    origin = "https://catalogue.example.org"
    with service(tmp_path, cors_origins=[origin]) as client:
        allowed = client.get("/v1/individuals", headers={"Origin": origin})
        other = client.get("/v1/individuals", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-origin" not in other.headers
    with service(tmp_path) as client:
        plain = client.get("/v1/individuals", headers={"Origin": origin})
    assert "access-control-allow-origin" not in plain.headers


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/identify", "post"),
        ("/v1/identify/batch", "post"),
        ("/v1/individuals", "get"),
        ("/v1/individuals/{individual_id}", "patch"),
        ("/v1/individuals/{individual_id}/merge", "post"),
        ("/v1/review", "post"),
        ("/v1/export", "get"),
        ("/v1/predict-single", "post"),
        ("/v1/predict-batch", "post"),
        ("/metrics", "get"),
    ],
)
def test_openapi_documents_every_endpoint(tmp_path: Path, path: str, method: str) -> None:
    with service(tmp_path) as client:
        schema = client.get("/schema/openapi.json").json()
    assert method in schema["paths"][path]
