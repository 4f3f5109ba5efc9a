"""Each API request described once, as a `Call` that either client sends, and the
building of the httpx request from it."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote

import httpx
import msgspec

from service.schemas import IndividualPatch, MergeRequest, NewIndividual

__all__ = [
    "Call",
    "add_images",
    "client_headers",
    "create_individual",
    "delete_image",
    "delete_individual",
    "enrol",
    "export",
    "health",
    "identify",
    "identify_batch",
    "image",
    "image_file",
    "individual",
    "list_individuals",
    "merge",
    "metrics",
    "ready",
    "request",
    "review",
    "thumbnail",
    "update_individual",
]

_JSON = {"Content-Type": "application/json"}


class Call(msgspec.Struct, frozen=True, kw_only=True):
    """One API request, independent of the client that sends it."""

    method: str
    path: str
    retry: bool
    """Whether sending it twice is harmless, so it may be retried."""
    params: dict[str, str | int] = {}
    content: bytes | None = None
    headers: dict[str, str] = {}
    data: dict[str, str] = {}
    files: list[tuple[str, tuple[str, bytes, str]]] = []


def health() -> Call:
    return Call(method="GET", path="/health", retry=True)


def ready() -> Call:
    return Call(method="GET", path="/ready", retry=True)


def identify(content: bytes, name: str, top_k: int | None) -> Call:
    return Call(
        method="POST",
        path="/v1/identify",
        retry=True,
        params=_present(top_k=top_k),
        files=[_upload("file", name, content)],
    )


def identify_batch(
    photos: Sequence[tuple[str, bytes]], archive: tuple[str, bytes] | None, top_k: int | None
) -> Call:
    if not photos and archive is None:
        raise ValueError("identify_batch needs photos, an archive, or both")
    files = [_upload("files", name, content) for name, content in photos]
    if archive is not None:
        files.append(_upload("archive", *archive))
    return Call(
        method="POST",
        path="/v1/identify/batch",
        retry=True,
        params=_present(top_k=top_k),
        files=files,
    )


def enrol(content: bytes, name: str, individual_id: str, species: str | None) -> Call:
    return Call(
        method="POST",
        path="/v1/enrol",
        retry=False,
        data=_present(individual_id=individual_id, species=species),
        files=[_upload("file", name, content)],
    )


def create_individual(individual_id: str, species: str | None, name: str | None) -> Call:
    body = NewIndividual(id=individual_id, species=species, name=name)
    return _json_call("POST", "/v1/individuals", body)


def list_individuals(species: str | None, limit: int, offset: int, search: str | None) -> Call:
    return Call(
        method="GET",
        path="/v1/individuals",
        retry=True,
        params=_present(species=species, limit=limit, offset=offset, search=search),
    )


def individual(individual_id: str) -> Call:
    return Call(method="GET", path=_individual_path(individual_id), retry=True)


def update_individual(
    individual_id: str, new_id: str | None, species: str | None, name: str | None
) -> Call:
    body = IndividualPatch(id=new_id, species=species, name=name)
    return _json_call("PATCH", _individual_path(individual_id), body)


def merge(target: str, source: str) -> Call:
    return _json_call("POST", _individual_path(target) + "/merge", MergeRequest(source=source))


def delete_individual(individual_id: str) -> Call:
    return Call(method="DELETE", path=_individual_path(individual_id), retry=True)


def add_images(individual_id: str, photos: Sequence[tuple[str, bytes]]) -> Call:
    return Call(
        method="POST",
        path=_individual_path(individual_id) + "/images",
        retry=False,
        files=[_upload("files", name, content) for name, content in photos],
    )


def image(image_id: int) -> Call:
    return Call(method="GET", path=f"/v1/images/{int(image_id)}", retry=True)


def image_file(image_id: int) -> Call:
    return Call(method="GET", path=f"/v1/images/{int(image_id)}/file", retry=True)


def thumbnail(image_id: int, size: int | None) -> Call:
    return Call(
        method="GET",
        path=f"/v1/images/{int(image_id)}/thumbnail",
        retry=True,
        params=_present(size=size),
    )


def delete_image(image_id: int) -> Call:
    return Call(method="DELETE", path=f"/v1/images/{int(image_id)}", retry=True)


def review(
    content: bytes,
    name: str,
    verdict: Literal["confirm", "no_match"],
    individual_id: str | None,
    species: str | None,
) -> Call:
    return Call(
        method="POST",
        path="/v1/review",
        retry=False,
        data=_present(verdict=verdict, individual_id=individual_id, species=species),
        files=[_upload("file", name, content)],
    )


def export(format: Literal["csv", "dwc"], species: str | None) -> Call:
    return Call(
        method="GET",
        path="/v1/export",
        retry=True,
        params=_present(format=format, species=species),
    )


def metrics() -> Call:
    return Call(method="GET", path="/metrics", retry=True)


def _json_call(method: str, path: str, body: msgspec.Struct) -> Call:
    # Omitted fields go as null, which the service reads as "not given".
    return Call(
        method=method, path=path, retry=False, content=msgspec.json.encode(body), headers=_JSON
    )


def _individual_path(individual_id: str) -> str:
    # Catalogue ids are free text: "/", "?", "#" or spaces must not change the path, and
    # an id "." or ".." must not be read as a dot-segment and resolved away.
    segment = quote(individual_id, safe="")
    if segment in (".", ".."):
        segment = segment.replace(".", "%2E")
    return "/v1/individuals/" + segment


def _upload(field: str, name: str, content: bytes) -> tuple[str, tuple[str, bytes, str]]:
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return field, (name, content, mime)


def _present(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def request(http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
    # Built afresh for each attempt: a multipart body is a stream read once per send.
    return http.build_request(
        call.method,
        call.path,
        params=call.params,
        content=call.content,
        headers=call.headers,
        data=call.data or None,
        files=call.files or None,
    )


def client_headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": "whaleid-client"}
    if api_key is not None:
        headers["X-API-Key"] = api_key
    return headers
