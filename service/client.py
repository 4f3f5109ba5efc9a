"""Typed Python clients for the whaleid HTTP API: `WhaleIdClient` (blocking) and
`AsyncWhaleIdClient` (asyncio), with the same methods.

Answers are decoded into the service's own schema Structs, so a client and the service it
talks to can never disagree about a field. Every 4xx or 5xx answer raises `ApiError` with
the service's error code; no answer at all raises `ServiceUnavailable`.

Retries: only calls that change nothing are retried (GET, DELETE, and identification,
which is a POST but only reads), on connection failures, 429 and 502/503/504, with
exponential backoff and jitter, or after the delay the service asks for in `Retry-After`
or `RateLimit-Reset` (capped at `MAX_RETRY_DELAY`). Enrolment, review, creation, merges
and edits are sent once: repeating them after a lost answer could apply them twice.

Example:
    with WhaleIdClient("http://127.0.0.1:8000", api_key="...") as client:
        client.enrol(Path("HW-0042_1.jpg"), "HW-0042", species="humpback_whale")
        answer = client.identify(Path("IMG_1234.jpg"), top_k=5)
        print(answer.decision, answer.candidates[0].individual_id)
"""

from __future__ import annotations

import asyncio
import mimetypes
import random
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from indexer.results import EnrolResult
from indexer.store import ImageRow, Individual
from service.errors import ErrorBody
from service.schemas import (
    DeleteResult,
    HealthResponse,
    IdentifyResponse,
    IndividualDetail,
    IndividualPage,
    IndividualPatch,
    MergeRequest,
    MergeResult,
    NewIndividual,
    ReadyResponse,
    ReviewResult,
)

__all__ = [
    "MAX_RETRY_DELAY",
    "ApiError",
    "AsyncWhaleIdClient",
    "ServiceUnavailable",
    "WhaleIdClient",
]

MAX_RETRY_DELAY = 30.0
"""Longest wait, in seconds, before one retry, whatever the backoff or the service asks."""

PhotoSource = bytes | Path
"""A photo to upload: its file's bytes, or the path of the file."""

_T = TypeVar("_T")
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
# No answer came back: the request may never have reached the service, or the service
# died while handling it. Bad URLs and the like are not in this list: retrying cannot help.
_CONNECTION_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_JSON = {"Content-Type": "application/json"}


class ApiError(Exception):
    """The service answered with a 4xx or 5xx status.

    Attributes:
        status_code: the HTTP status.
        error: the service's machine-readable code, e.g. "not_found", "conflict",
            "bad_request", "corrupted_image"; for an answer without the service's error
            body, the status phrase ("bad_gateway").
        detail: what went wrong, for a person.
    """

    def __init__(self, status_code: int, error: str, detail: str) -> None:
        super().__init__(f"{status_code} {error}: {detail}")
        self.status_code = status_code
        self.error = error
        self.detail = detail


class ServiceUnavailable(ApiError):
    """No answer came back (connection refused or reset, timeout), after the retries for
    calls that may be retried, at once for the others.

    `status_code` is 503 and `error` "unavailable". For an enrolment, review or edit,
    the change may or may not have been applied: look it up before sending it again.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(503, "unavailable", detail)


class _Call(msgspec.Struct, frozen=True, kw_only=True):
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


# ---------------------------------------------------------------------- the requests


def _health() -> _Call:
    return _Call(method="GET", path="/health", retry=True)


def _ready() -> _Call:
    return _Call(method="GET", path="/ready", retry=True)


def _identify(content: bytes, name: str, top_k: int | None) -> _Call:
    return _Call(
        method="POST",
        path="/v1/identify",
        retry=True,
        params=_present(top_k=top_k),
        files=[_upload("file", name, content)],
    )


def _identify_batch(
    photos: Sequence[tuple[str, bytes]], archive: tuple[str, bytes] | None, top_k: int | None
) -> _Call:
    if not photos and archive is None:
        raise ValueError("identify_batch needs photos, an archive, or both")
    files = [_upload("files", name, content) for name, content in photos]
    if archive is not None:
        files.append(_upload("archive", *archive))
    return _Call(
        method="POST",
        path="/v1/identify/batch",
        retry=True,
        params=_present(top_k=top_k),
        files=files,
    )


def _enrol(content: bytes, name: str, individual_id: str, species: str | None) -> _Call:
    return _Call(
        method="POST",
        path="/v1/enrol",
        retry=False,
        data=_present(individual_id=individual_id, species=species),
        files=[_upload("file", name, content)],
    )


def _create_individual(individual_id: str, species: str | None, name: str | None) -> _Call:
    body = NewIndividual(id=individual_id, species=species, name=name)
    return _json_call("POST", "/v1/individuals", body)


def _list_individuals(species: str | None, limit: int, offset: int) -> _Call:
    return _Call(
        method="GET",
        path="/v1/individuals",
        retry=True,
        params=_present(species=species, limit=limit, offset=offset),
    )


def _individual(individual_id: str) -> _Call:
    return _Call(method="GET", path=_individual_path(individual_id), retry=True)


def _update_individual(
    individual_id: str, new_id: str | None, species: str | None, name: str | None
) -> _Call:
    body = IndividualPatch(id=new_id, species=species, name=name)
    return _json_call("PATCH", _individual_path(individual_id), body)


def _merge(target: str, source: str) -> _Call:
    return _json_call("POST", _individual_path(target) + "/merge", MergeRequest(source=source))


def _delete_individual(individual_id: str) -> _Call:
    return _Call(method="DELETE", path=_individual_path(individual_id), retry=True)


def _add_images(individual_id: str, photos: Sequence[tuple[str, bytes]]) -> _Call:
    return _Call(
        method="POST",
        path=_individual_path(individual_id) + "/images",
        retry=False,
        files=[_upload("files", name, content) for name, content in photos],
    )


def _image(image_id: int) -> _Call:
    return _Call(method="GET", path=f"/v1/images/{int(image_id)}", retry=True)


def _image_file(image_id: int) -> _Call:
    return _Call(method="GET", path=f"/v1/images/{int(image_id)}/file", retry=True)


def _thumbnail(image_id: int, size: int | None) -> _Call:
    return _Call(
        method="GET",
        path=f"/v1/images/{int(image_id)}/thumbnail",
        retry=True,
        params=_present(size=size),
    )


def _delete_image(image_id: int) -> _Call:
    return _Call(method="DELETE", path=f"/v1/images/{int(image_id)}", retry=True)


def _review(
    content: bytes,
    name: str,
    verdict: Literal["confirm", "no_match"],
    individual_id: str | None,
    species: str | None,
) -> _Call:
    return _Call(
        method="POST",
        path="/v1/review",
        retry=False,
        data=_present(verdict=verdict, individual_id=individual_id, species=species),
        files=[_upload("file", name, content)],
    )


def _export(format: Literal["csv", "dwc"], species: str | None) -> _Call:
    return _Call(
        method="GET",
        path="/v1/export",
        retry=True,
        params=_present(format=format, species=species),
    )


def _metrics() -> _Call:
    return _Call(method="GET", path="/metrics", retry=True)


def _json_call(method: str, path: str, body: msgspec.Struct) -> _Call:
    # Omitted fields go as null, which the service reads as "not given".
    return _Call(
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


# ---------------------------------------------------------------------- photos


def _name(photo: PhotoSource, name: str | None, default: str) -> str:
    if name is not None:
        return name
    return photo.name if isinstance(photo, Path) else default


def _read(photo: PhotoSource) -> bytes:
    return photo.read_bytes() if isinstance(photo, Path) else bytes(photo)


async def _aread(photo: PhotoSource) -> bytes:
    if isinstance(photo, Path):
        # File reads block; keep them off the event loop.
        return await asyncio.to_thread(photo.read_bytes)
    return bytes(photo)


def _batch_names(photos: Sequence[PhotoSource]) -> list[str]:
    return [_name(photo, None, f"photo-{i}") for i, photo in enumerate(photos)]


# ---------------------------------------------------------------------- answers


def _decode(response: httpx.Response, kind: type[_T]) -> _T:
    try:
        return msgspec.json.decode(response.content, type=kind)
    except msgspec.DecodeError as exc:
        raise ApiError(
            response.status_code, "invalid_response", f"unexpected answer: {exc}"
        ) from exc


def _api_error(status_code: int, content: bytes, reason: str) -> ApiError:
    """The error of a 4xx/5xx answer, from the service's `ErrorBody` when it sent one."""
    try:
        body = msgspec.json.decode(content, type=ErrorBody)
    except msgspec.DecodeError:
        # Not the service's own body: a proxy's page, or an answer from something else.
        text = content.decode("utf-8", "replace").strip()
        return ApiError(status_code, reason.lower().replace(" ", "_") or "error", text or reason)
    return ApiError(status_code, body.error, body.detail)


def _batch_line(line: str) -> IdentifyResponse:
    """One NDJSON line of a batch answer; the error line that may end it is raised."""
    try:
        return msgspec.json.decode(line, type=IdentifyResponse)
    except msgspec.DecodeError:
        pass
    try:
        body = msgspec.json.decode(line, type=ErrorBody)
    except msgspec.DecodeError:
        raise ApiError(200, "invalid_response", f"unexpected batch line: {line!r}") from None
    raise ApiError(body.status_code, body.error, body.detail)


def _wait(attempt: int, backoff: float, headers: httpx.Headers | None) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry)."""
    asked = _asked_delay(headers) if headers is not None else None
    if asked is not None:
        return min(max(asked, 0.0), MAX_RETRY_DELAY)
    # Jitter spreads out clients that failed together, so they do not retry together.
    delay = backoff * 2**attempt
    return min(random.uniform(delay / 2, delay), MAX_RETRY_DELAY)


def _asked_delay(headers: httpx.Headers) -> float | None:
    """The delay a 429/503 asks for: `Retry-After` (seconds or an HTTP date), else
    `RateLimit-Reset` (seconds, as the service's rate limit sends)."""
    for key in ("retry-after", "ratelimit-reset"):
        value = headers.get(key, "").strip()
        if not value:
            continue
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            continue
    return None


# Looked up at call time, so that tests can replace them and not wait.
def _sleep(seconds: float) -> None:
    time.sleep(seconds)


async def _async_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def _request(http: httpx.Client | httpx.AsyncClient, call: _Call) -> httpx.Request:
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


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": "whaleid-client"}
    if api_key is not None:
        headers["X-API-Key"] = api_key
    return headers


# ---------------------------------------------------------------------- clients


class WhaleIdClient:
    """Blocking client of a whaleid service.

    Args:
        base_url: the service's root, e.g. "http://127.0.0.1:8000".
        api_key: sent as `X-API-Key`, for services that require one.
        timeout: seconds to wait for connecting, and between bytes of the answer.
        retries: how many times a call that changes nothing is repeated after a
            connection failure, 429, 502, 503 or 504.
        backoff: seconds before the first retry, doubled for each further one (each
            wait is drawn between half and all of that, and at most `MAX_RETRY_DELAY`).
        transport: an httpx transport to send through instead of the network (tests).

    Every method raises `ApiError` when the service answers 4xx or 5xx (after the retries,
    for a retried call) and `ServiceUnavailable` when no answer comes back. A retried
    DELETE whose first attempt went through but whose answer was lost answers 404.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._retries = max(0, retries)
        self._backoff = backoff
        self._http = httpx.Client(
            base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    # ------------------------------------------------------------------ probes

    def health(self) -> HealthResponse:
        """Liveness: the process answers."""
        return _decode(self._send(_health()), HealthResponse)

    def ready(self) -> ReadyResponse:
        """Readiness, with the gallery's counts and the feature extractor."""
        return _decode(self._send(_ready()), ReadyResponse)

    def metrics(self) -> str:
        """The Prometheus metrics, as text."""
        return self._send(_metrics()).text

    # ------------------------------------------------------------------ identification

    def identify(
        self, photo: PhotoSource, *, name: str | None = None, top_k: int | None = None
    ) -> IdentifyResponse:
        """Identify the individual in one photo.

        Args:
            photo: the photo's bytes, or its file.
            name: the file name to send (answered back as `image`); default the file's
                name, or "photo" for bytes.
            top_k: candidates to return, 1-50; default the service's `engine.top_k`.

        Returns:
            The decision and candidates. An unusable photo is a normal answer with
            decision "rejected" and a `rejection_reason`.
        """
        call = _identify(_read(photo), _name(photo, name, "photo"), top_k)
        return _decode(self._send(call), IdentifyResponse)

    def identify_batch(
        self,
        photos: Sequence[PhotoSource] | None = None,
        *,
        archive: PhotoSource | None = None,
        top_k: int | None = None,
    ) -> Iterator[IdentifyResponse]:
        """Identify several photos and/or every photo of a ZIP, in one request.

        The answers are read from the streamed NDJSON as they arrive. The request is sent
        when iteration starts, so errors are raised from the first `next()`.

        Args:
            photos: photos to send as repeated `files` fields.
            archive: a ZIP of photos (bytes or a file).
            top_k: candidates per photo, 1-50.

        Yields:
            One answer per photo, photos first, then the archive's entries in order.

        Raises:
            ValueError: neither photos nor an archive were given.
            ApiError: also when the archive turns out to exceed the service's limits
                part-way (the stream's last line is then an error).
        """
        photos = list(photos or ())
        named = [(n, _read(p)) for n, p in zip(_batch_names(photos), photos, strict=True)]
        packed = None if archive is None else (_name(archive, None, "archive.zip"), _read(archive))
        response = self._send(_identify_batch(named, packed, top_k), stream=True)
        try:
            for line in response.iter_lines():
                if line.strip():
                    yield _batch_line(line)
        finally:
            response.close()

    # ------------------------------------------------------------------ catalogue

    def enrol(
        self,
        photo: PhotoSource,
        individual_id: str,
        *,
        species: str | None = None,
        name: str | None = None,
    ) -> EnrolResult:
        """Add a labelled photo to the gallery; searchable as soon as this returns.

        Args:
            photo: the photo's bytes, or its file.
            individual_id: who it shows; the individual is created if new.
            species: the individual's species, if known.
            name: the file name stored as the photo's `source_name` (shown as evidence
                in identification answers); default the file's name, or "photo".

        Returns:
            The stored image; `created` is False when the same photo was already there.
        """
        call = _enrol(_read(photo), _name(photo, name, "photo"), individual_id, species)
        return _decode(self._send(call), EnrolResult)

    def add_images(self, individual_id: str, photos: Sequence[PhotoSource]) -> list[EnrolResult]:
        """Enrol photos of an existing individual; one unusable photo stores none."""
        named = [(n, _read(p)) for n, p in zip(_batch_names(photos), photos, strict=True)]
        return _decode(self._send(_add_images(individual_id, named)), list[EnrolResult])

    def create_individual(
        self, individual_id: str, *, species: str | None = None, name: str | None = None
    ) -> Individual:
        """Add an individual with no photos yet (409 "conflict" if the id is taken)."""
        call = _create_individual(individual_id, species, name)
        return _decode(self._send(call), Individual)

    def list_individuals(
        self, *, species: str | None = None, limit: int = 100, offset: int = 0
    ) -> IndividualPage:
        """A page of individuals ordered by id (`limit` 1-500), optionally of one species."""
        return _decode(self._send(_list_individuals(species, limit, offset)), IndividualPage)

    def individual(self, individual_id: str) -> IndividualDetail:
        """An individual with its photos."""
        return _decode(self._send(_individual(individual_id)), IndividualDetail)

    def update_individual(
        self,
        individual_id: str,
        *,
        new_id: str | None = None,
        species: str | None = None,
        name: str | None = None,
    ) -> Individual:
        """Rename (`new_id`; the photos follow), set the species or the nickname; what is
        None stays as it is."""
        call = _update_individual(individual_id, new_id, species, name)
        return _decode(self._send(call), Individual)

    def merge(self, target: str, source: str) -> MergeResult:
        """Move every photo of `source` into `target` and delete `source`."""
        return _decode(self._send(_merge(target, source)), MergeResult)

    def delete_individual(self, individual_id: str) -> DeleteResult:
        """Delete an individual with all its photos."""
        return _decode(self._send(_delete_individual(individual_id)), DeleteResult)

    def image(self, image_id: int) -> ImageRow:
        """One stored photo's record."""
        return _decode(self._send(_image(image_id)), ImageRow)

    def image_file(self, image_id: int) -> bytes:
        """The stored photo's original file, byte for byte (404 "not_found" for a photo
        enrolled before photo files were kept)."""
        return self._send(_image_file(image_id)).content

    def thumbnail(self, image_id: int, size: int | None = None) -> bytes:
        """A JPEG thumbnail of the stored photo, long side `size` (16-1024; the
        service's default 256 when None)."""
        return self._send(_thumbnail(image_id, size)).content

    def delete_image(self, image_id: int) -> None:
        """Delete one photo; its individual stays."""
        self._send(_delete_image(image_id))

    def review(
        self,
        photo: PhotoSource,
        verdict: Literal["confirm", "no_match"],
        *,
        individual_id: str | None = None,
        species: str | None = None,
    ) -> ReviewResult:
        """Record a person's verdict on a query photo and enrol the photo accordingly.

        Args:
            photo: the query photo.
            verdict: "confirm" (it shows `individual_id`, which must exist) or "no_match"
                (it starts a new individual, `individual_id` or a made-up id).
            individual_id: see `verdict`.
            species: the species, if known.
        """
        call = _review(_read(photo), _name(photo, None, "photo"), verdict, individual_id, species)
        return _decode(self._send(call), ReviewResult)

    def export(self, format: Literal["csv", "dwc"] = "csv", species: str | None = None) -> str:
        """Every sighting as CSV ("csv") or as a Darwin Core occurrence table ("dwc")."""
        return self._send(_export(format, species)).text

    # ------------------------------------------------------------------ plumbing

    def _send(self, call: _Call, *, stream: bool = False) -> httpx.Response:
        """Send `call`, retrying it when allowed; an error answer is raised, a successful
        one returned (open, when `stream`: the caller closes it)."""
        attempts = 1 + (self._retries if call.retry else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            request = _request(self._http, call)
            try:
                response = self._http.send(request, stream=stream)
            except _CONNECTION_ERRORS as exc:
                if last:
                    raise ServiceUnavailable(f"{call.method} {call.path}: {exc!r}") from exc
                _sleep(_wait(attempt, self._backoff, None))
                continue
            if response.status_code in _RETRY_STATUSES and not last:
                response.close()
                _sleep(_wait(attempt, self._backoff, response.headers))
                continue
            if response.is_error:
                try:
                    content = response.read()
                finally:
                    response.close()
                raise _api_error(response.status_code, content, response.reason_phrase)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")


class AsyncWhaleIdClient:
    """Asyncio client of a whaleid service; the same methods as `WhaleIdClient`, as
    coroutines (`identify_batch` is an async iterator). See `WhaleIdClient` for the
    arguments and the errors.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._retries = max(0, retries)
        self._backoff = backoff
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def health(self) -> HealthResponse:
        """See `WhaleIdClient.health`."""
        return _decode(await self._send(_health()), HealthResponse)

    async def ready(self) -> ReadyResponse:
        """See `WhaleIdClient.ready`."""
        return _decode(await self._send(_ready()), ReadyResponse)

    async def metrics(self) -> str:
        """See `WhaleIdClient.metrics`."""
        return (await self._send(_metrics())).text

    async def identify(
        self, photo: PhotoSource, *, name: str | None = None, top_k: int | None = None
    ) -> IdentifyResponse:
        """See `WhaleIdClient.identify`."""
        call = _identify(await _aread(photo), _name(photo, name, "photo"), top_k)
        return _decode(await self._send(call), IdentifyResponse)

    async def identify_batch(
        self,
        photos: Sequence[PhotoSource] | None = None,
        *,
        archive: PhotoSource | None = None,
        top_k: int | None = None,
    ) -> AsyncIterator[IdentifyResponse]:
        """See `WhaleIdClient.identify_batch`."""
        photos = list(photos or ())
        named = [(n, await _aread(p)) for n, p in zip(_batch_names(photos), photos, strict=True)]
        packed = (
            None
            if archive is None
            else (_name(archive, None, "archive.zip"), await _aread(archive))
        )
        response = await self._send(_identify_batch(named, packed, top_k), stream=True)
        try:
            async for line in response.aiter_lines():
                if line.strip():
                    yield _batch_line(line)
        finally:
            await response.aclose()

    async def enrol(
        self,
        photo: PhotoSource,
        individual_id: str,
        *,
        species: str | None = None,
        name: str | None = None,
    ) -> EnrolResult:
        """See `WhaleIdClient.enrol`."""
        call = _enrol(await _aread(photo), _name(photo, name, "photo"), individual_id, species)
        return _decode(await self._send(call), EnrolResult)

    async def add_images(
        self, individual_id: str, photos: Sequence[PhotoSource]
    ) -> list[EnrolResult]:
        """See `WhaleIdClient.add_images`."""
        named = [(n, await _aread(p)) for n, p in zip(_batch_names(photos), photos, strict=True)]
        return _decode(await self._send(_add_images(individual_id, named)), list[EnrolResult])

    async def create_individual(
        self, individual_id: str, *, species: str | None = None, name: str | None = None
    ) -> Individual:
        """See `WhaleIdClient.create_individual`."""
        call = _create_individual(individual_id, species, name)
        return _decode(await self._send(call), Individual)

    async def list_individuals(
        self, *, species: str | None = None, limit: int = 100, offset: int = 0
    ) -> IndividualPage:
        """See `WhaleIdClient.list_individuals`."""
        call = _list_individuals(species, limit, offset)
        return _decode(await self._send(call), IndividualPage)

    async def individual(self, individual_id: str) -> IndividualDetail:
        """See `WhaleIdClient.individual`."""
        return _decode(await self._send(_individual(individual_id)), IndividualDetail)

    async def update_individual(
        self,
        individual_id: str,
        *,
        new_id: str | None = None,
        species: str | None = None,
        name: str | None = None,
    ) -> Individual:
        """See `WhaleIdClient.update_individual`."""
        call = _update_individual(individual_id, new_id, species, name)
        return _decode(await self._send(call), Individual)

    async def merge(self, target: str, source: str) -> MergeResult:
        """See `WhaleIdClient.merge`."""
        return _decode(await self._send(_merge(target, source)), MergeResult)

    async def delete_individual(self, individual_id: str) -> DeleteResult:
        """See `WhaleIdClient.delete_individual`."""
        return _decode(await self._send(_delete_individual(individual_id)), DeleteResult)

    async def image(self, image_id: int) -> ImageRow:
        """See `WhaleIdClient.image`."""
        return _decode(await self._send(_image(image_id)), ImageRow)

    async def image_file(self, image_id: int) -> bytes:
        """See `WhaleIdClient.image_file`."""
        return (await self._send(_image_file(image_id))).content

    async def thumbnail(self, image_id: int, size: int | None = None) -> bytes:
        """See `WhaleIdClient.thumbnail`."""
        return (await self._send(_thumbnail(image_id, size))).content

    async def delete_image(self, image_id: int) -> None:
        """See `WhaleIdClient.delete_image`."""
        await self._send(_delete_image(image_id))

    async def review(
        self,
        photo: PhotoSource,
        verdict: Literal["confirm", "no_match"],
        *,
        individual_id: str | None = None,
        species: str | None = None,
    ) -> ReviewResult:
        """See `WhaleIdClient.review`."""
        content = await _aread(photo)
        call = _review(content, _name(photo, None, "photo"), verdict, individual_id, species)
        return _decode(await self._send(call), ReviewResult)

    async def export(
        self, format: Literal["csv", "dwc"] = "csv", species: str | None = None
    ) -> str:
        """See `WhaleIdClient.export`."""
        return (await self._send(_export(format, species))).text

    async def _send(self, call: _Call, *, stream: bool = False) -> httpx.Response:
        """See `WhaleIdClient._send`."""
        attempts = 1 + (self._retries if call.retry else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            request = _request(self._http, call)
            try:
                response = await self._http.send(request, stream=stream)
            except _CONNECTION_ERRORS as exc:
                if last:
                    raise ServiceUnavailable(f"{call.method} {call.path}: {exc!r}") from exc
                await _async_sleep(_wait(attempt, self._backoff, None))
                continue
            if response.status_code in _RETRY_STATUSES and not last:
                await response.aclose()
                await _async_sleep(_wait(attempt, self._backoff, response.headers))
                continue
            if response.is_error:
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
                raise _api_error(response.status_code, content, response.reason_phrase)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")
