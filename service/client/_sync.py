"""The blocking client."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Literal, Self

import httpx

from indexer.results import EnrolResult
from indexer.store import ImageRow, Individual
from service.client import _calls
from service.client._answers import api_error, batch_line, decode
from service.client._errors import ServiceUnavailable
from service.client._photos import PhotoSource, batch_names, photo_name, read_photo
from service.client._retry import CONNECTION_ERRORS, RETRY_STATUSES, wait
from service.schemas import (
    DeleteResult,
    HealthResponse,
    IdentifyResponse,
    IndividualDetail,
    IndividualPage,
    MergeResult,
    ReadyResponse,
    ReviewResult,
)

__all__ = ["WhaleIdClient"]


# Looked up at call time, so that tests can replace it and not wait.
def _sleep(seconds: float) -> None:
    time.sleep(seconds)


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
            base_url=base_url,
            headers=_calls.client_headers(api_key),
            timeout=timeout,
            transport=transport,
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
        return decode(self._send(_calls.health()), HealthResponse)

    def ready(self) -> ReadyResponse:
        """Readiness, with the gallery's counts and the feature extractor."""
        return decode(self._send(_calls.ready()), ReadyResponse)

    def metrics(self) -> str:
        """The Prometheus metrics, as text."""
        return self._send(_calls.metrics()).text

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
        call = _calls.identify(read_photo(photo), photo_name(photo, name, "photo"), top_k)
        return decode(self._send(call), IdentifyResponse)

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
        named = [(n, read_photo(p)) for n, p in zip(batch_names(photos), photos, strict=True)]
        packed = (
            None
            if archive is None
            else (photo_name(archive, None, "archive.zip"), read_photo(archive))
        )
        response = self._send(_calls.identify_batch(named, packed, top_k), stream=True)
        try:
            for line in response.iter_lines():
                if line.strip():
                    yield batch_line(line)
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
        call = _calls.enrol(
            read_photo(photo), photo_name(photo, name, "photo"), individual_id, species
        )
        return decode(self._send(call), EnrolResult)

    def add_images(self, individual_id: str, photos: Sequence[PhotoSource]) -> list[EnrolResult]:
        """Enrol photos of an existing individual; one unusable photo stores none."""
        named = [(n, read_photo(p)) for n, p in zip(batch_names(photos), photos, strict=True)]
        return decode(self._send(_calls.add_images(individual_id, named)), list[EnrolResult])

    def create_individual(
        self, individual_id: str, *, species: str | None = None, name: str | None = None
    ) -> Individual:
        """Add an individual with no photos yet (409 "conflict" if the id is taken)."""
        call = _calls.create_individual(individual_id, species, name)
        return decode(self._send(call), Individual)

    def list_individuals(
        self,
        *,
        species: str | None = None,
        limit: int = 100,
        offset: int = 0,
        search: str | None = None,
    ) -> IndividualPage:
        """A page of individuals ordered by id (`limit` 1-500), optionally of one species,
        optionally those whose id or name contains `search`."""
        call = _calls.list_individuals(species, limit, offset, search)
        return decode(self._send(call), IndividualPage)

    def individual(self, individual_id: str) -> IndividualDetail:
        """An individual with its photos."""
        return decode(self._send(_calls.individual(individual_id)), IndividualDetail)

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
        call = _calls.update_individual(individual_id, new_id, species, name)
        return decode(self._send(call), Individual)

    def merge(self, target: str, source: str) -> MergeResult:
        """Move every photo of `source` into `target` and delete `source`."""
        return decode(self._send(_calls.merge(target, source)), MergeResult)

    def delete_individual(self, individual_id: str) -> DeleteResult:
        """Delete an individual with all its photos."""
        return decode(self._send(_calls.delete_individual(individual_id)), DeleteResult)

    def image(self, image_id: int) -> ImageRow:
        """One stored photo's record."""
        return decode(self._send(_calls.image(image_id)), ImageRow)

    def image_file(self, image_id: int) -> bytes:
        """The stored photo's original file, byte for byte (404 "not_found" for a photo
        enrolled before photo files were kept)."""
        return self._send(_calls.image_file(image_id)).content

    def thumbnail(self, image_id: int, size: int | None = None) -> bytes:
        """A JPEG thumbnail of the stored photo, long side `size` (16-1024; the
        service's default 256 when None)."""
        return self._send(_calls.thumbnail(image_id, size)).content

    def delete_image(self, image_id: int) -> None:
        """Delete one photo; its individual stays."""
        self._send(_calls.delete_image(image_id))

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
        call = _calls.review(
            read_photo(photo), photo_name(photo, None, "photo"), verdict, individual_id, species
        )
        return decode(self._send(call), ReviewResult)

    def export(self, format: Literal["csv", "dwc"] = "csv", species: str | None = None) -> str:
        """Every sighting as CSV ("csv") or as a Darwin Core occurrence table ("dwc")."""
        return self._send(_calls.export(format, species)).text

    # ------------------------------------------------------------------ plumbing

    def _send(self, call: _calls.Call, *, stream: bool = False) -> httpx.Response:
        """Send `call`, retrying it when allowed; an error answer is raised, a successful
        one returned (open, when `stream`: the caller closes it)."""
        attempts = 1 + (self._retries if call.retry else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            request = _calls.request(self._http, call)
            try:
                response = self._http.send(request, stream=stream)
            except CONNECTION_ERRORS as exc:
                if last:
                    raise ServiceUnavailable(f"{call.method} {call.path}: {exc!r}") from exc
                _sleep(wait(attempt, self._backoff, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                response.close()
                _sleep(wait(attempt, self._backoff, response.headers))
                continue
            if response.is_error:
                try:
                    content = response.read()
                finally:
                    response.close()
                raise api_error(response.status_code, content, response.reason_phrase)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")
