"""The web interface's page and files as the app serves them: public (they load before
any key is given and while the catalogue opens), outside the OpenAPI document, and
self-contained (nothing fetched from another origin)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.config import Settings
from service.web import STATIC

# Anything that would make the page fetch from elsewhere: a URL with a scheme or a
# protocol-relative one, in markup, style sheets or modules.
_ELSEWHERE = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)
_SVG_NAMESPACE = "http://www.w3.org/2000/svg"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        rate_limit_per_minute=0,
        api_key="k",
        protect_reads=True,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_page_and_its_files_need_no_key_while_the_api_does(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "{{version}}" not in page.text
    assert client.get("/v1/individuals").status_code == 401
    for name in re.findall(r"""(?:src|href)="/ui/([^"]+)\"""", page.text):
        assert client.get(f"/ui/{name}").status_code == 200, name


def test_every_module_is_served_as_javascript_and_every_import_exists(client: TestClient) -> None:
    for module in STATIC.glob("*.js"):
        served = client.get(f"/ui/{module.name}")
        assert served.status_code == 200
        assert "javascript" in served.headers["content-type"], module.name
        for imported in re.findall(r"""from "\./([^"]+)";""", module.read_text()):
            assert (STATIC / imported).is_file(), (module.name, imported)


def test_nothing_is_fetched_from_elsewhere() -> None:
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8").replace(_SVG_NAMESPACE, "")
        assert _ELSEWHERE.findall(text) == [], path.name


def test_the_interface_is_not_part_of_the_api_document(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"), rate_limit_per_minute=0)
    with TestClient(create_app(settings)) as client:
        paths = client.get("/schema/openapi.json").json()["paths"]
    assert "/" not in paths and not [p for p in paths if p.startswith("/ui")]


def test_a_missing_file_is_a_404_with_the_error_body(client: TestClient) -> None:
    missing = client.get("/ui/nothing.js")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert client.get("/ui/../app.py").status_code == 404
