"""Property test: no request the OpenAPI document allows, or garbles, gets a 5xx.

For every operation in the app's own OpenAPI document, hypothesis sends random path
and query values (of the declared type, or random text), and random bodies: JSON values
for JSON bodies, random form fields and random or real photo bytes for multipart ones.
Whatever arrives, the service must answer with a status below 500.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from service.app import create_app
from service.config import Settings
from tests.service.test_app import enrol, photo

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
_TEXT = st.text(max_size=30)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        Settings(data_dir=str(data), rate_limit_per_minute=0, max_image_pixels=2_000_000)
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        enrol(client, photo("HW-1", 0), "HW-1")
        yield client


@pytest.fixture(scope="module")
def operations(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    schema = client.get("/schema/openapi.json").json()
    found = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "patch", "delete"}
    ]
    assert len(found) >= 18
    return found


def _photo_bytes() -> st.SearchStrategy[bytes]:
    real = photo("HW-1", 3)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("a.jpg", real)
        archive.writestr("b.jpg", real[:200])
    return st.sampled_from([real, real[:500], zipped.getvalue(), b""]) | st.binary(max_size=300)


def _value(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    kind = schema.get("type")
    if kind == "integer":
        return st.integers(min_value=-(2**63), max_value=2**63) | _TEXT
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | _TEXT
    return _TEXT


@st.composite
def _request(draw: st.DrawFn, operation: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    path, method, spec = operation
    params: dict[str, Any] = {}
    for parameter in spec.get("parameters", []):
        value = draw(_value(parameter.get("schema", {})))
        if parameter["in"] == "path":
            text = quote(str(value), safe="") or "x"
            path = path.replace("{" + parameter["name"] + "}", text)
        elif parameter["in"] == "query" and draw(st.booleans()):
            params[parameter["name"]] = str(value)
    request: dict[str, Any] = {"method": method.upper(), "url": path, "params": params}
    content = spec.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        request["json"] = draw(_JSON | st.fixed_dictionaries({"id": _TEXT, "source": _TEXT}))
    elif "multipart/form-data" in content:
        fields = ["file", "files", "archive"]
        chosen = draw(st.lists(st.sampled_from(fields), max_size=3))
        request["files"] = [(name, ("x.jpg", draw(_photo_bytes()))) for name in chosen]
        request["data"] = draw(
            st.dictionaries(
                st.sampled_from(["individual_id", "species", "verdict"]),
                _TEXT | st.sampled_from(["confirm", "no_match", "HW-1"]),
                max_size=3,
            )
        )
    return request


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_request_gets_a_5xx(client: TestClient, operations, data: st.DataObject) -> None:
    operation = data.draw(st.sampled_from(operations))
    request = data.draw(_request(operation))
    response = client.request(**request)
    assert response.status_code < 500, (request["method"], request["url"], response.text)


def test_the_gallery_survives_the_fuzzing(client: TestClient, tmp_path: Path) -> None:
    # Runs after the property test (file order): whatever was sent, the service answers.
    assert client.get("/ready").status_code == 200
    assert client.get("/v1/individuals").status_code == 200
