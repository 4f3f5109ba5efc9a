"""The asyncio client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Literal, Self

import httpx

from indexer.results import EnrolResult
from indexer.store import ImageRow, Individual
from service.client import _calls
from service.client._answers import api_error, batch_line, decode
from service.client._errors import ServiceUnavailable
from service.client._photos import PhotoSource, aread_photo, batch_names, photo_name
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

__all__ = ["AsyncWhaleIdClient"]


# Looked up at call time, so that tests can replace it and not wait.
async def _async_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


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
            base_url=base_url,
            headers=_calls.client_headers(api_key),
            timeout=timeout,
            transport=transport,
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
        return decode(await self._send(_calls.health()), HealthResponse)

    async def ready(self) -> ReadyResponse:
        """See `WhaleIdClient.ready`."""
        return decode(await self._send(_calls.ready()), ReadyResponse)

    async def metrics(self) -> str:
        """See `WhaleIdClient.metrics`."""
        return (await self._send(_calls.metrics())).text

    async def identify(
        self, photo: PhotoSource, *, name: str | None = None, top_k: int | None = None
    ) -> IdentifyResponse:
        """See `WhaleIdClient.identify`."""
        call = _calls.identify(await aread_photo(photo), photo_name(photo, name, "photo"), top_k)
        return decode(await self._send(call), IdentifyResponse)

    async def identify_batch(
        self,
        photos: Sequence[PhotoSource] | None = None,
        *,
        archive: PhotoSource | None = None,
        top_k: int | None = None,
    ) -> AsyncIterator[IdentifyResponse]:
        """See `WhaleIdClient.identify_batch`."""
        photos = list(photos or ())
        named = [
            (n, await aread_photo(p)) for n, p in zip(batch_names(photos), photos, strict=True)
        ]
        packed = (
            None
            if archive is None
            else (photo_name(archive, None, "archive.zip"), await aread_photo(archive))
        )
        response = await self._send(_calls.identify_batch(named, packed, top_k), stream=True)
        try:
            async for line in response.aiter_lines():
                if line.strip():
                    yield batch_line(line)
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
        call = _calls.enrol(
            await aread_photo(photo), photo_name(photo, name, "photo"), individual_id, species
        )
        return decode(await self._send(call), EnrolResult)

    async def add_images(
        self, individual_id: str, photos: Sequence[PhotoSource]
    ) -> list[EnrolResult]:
        """See `WhaleIdClient.add_images`."""
        named = [
            (n, await aread_photo(p)) for n, p in zip(batch_names(photos), photos, strict=True)
        ]
        return decode(await self._send(_calls.add_images(individual_id, named)), list[EnrolResult])

    async def create_individual(
        self, individual_id: str, *, species: str | None = None, name: str | None = None
    ) -> Individual:
        """See `WhaleIdClient.create_individual`."""
        call = _calls.create_individual(individual_id, species, name)
        return decode(await self._send(call), Individual)

    async def list_individuals(
        self,
        *,
        species: str | None = None,
        limit: int = 100,
        offset: int = 0,
        search: str | None = None,
    ) -> IndividualPage:
        """See `WhaleIdClient.list_individuals`."""
        call = _calls.list_individuals(species, limit, offset, search)
        return decode(await self._send(call), IndividualPage)

    async def individual(self, individual_id: str) -> IndividualDetail:
        """See `WhaleIdClient.individual`."""
        return decode(await self._send(_calls.individual(individual_id)), IndividualDetail)

    async def update_individual(
        self,
        individual_id: str,
        *,
        new_id: str | None = None,
        species: str | None = None,
        name: str | None = None,
    ) -> Individual:
        """See `WhaleIdClient.update_individual`."""
        call = _calls.update_individual(individual_id, new_id, species, name)
        return decode(await self._send(call), Individual)

    async def merge(self, target: str, source: str) -> MergeResult:
        """See `WhaleIdClient.merge`."""
        return decode(await self._send(_calls.merge(target, source)), MergeResult)

    async def delete_individual(self, individual_id: str) -> DeleteResult:
        """See `WhaleIdClient.delete_individual`."""
        return decode(await self._send(_calls.delete_individual(individual_id)), DeleteResult)

    async def image(self, image_id: int) -> ImageRow:
        """See `WhaleIdClient.image`."""
        return decode(await self._send(_calls.image(image_id)), ImageRow)

    async def image_file(self, image_id: int) -> bytes:
        """See `WhaleIdClient.image_file`."""
        return (await self._send(_calls.image_file(image_id))).content

    async def thumbnail(self, image_id: int, size: int | None = None) -> bytes:
        """See `WhaleIdClient.thumbnail`."""
        return (await self._send(_calls.thumbnail(image_id, size))).content

    async def delete_image(self, image_id: int) -> None:
        """See `WhaleIdClient.delete_image`."""
        await self._send(_calls.delete_image(image_id))

    async def review(
        self,
        photo: PhotoSource,
        verdict: Literal["confirm", "no_match"],
        *,
        individual_id: str | None = None,
        species: str | None = None,
    ) -> ReviewResult:
        """See `WhaleIdClient.review`."""
        content = await aread_photo(photo)
        call = _calls.review(
            content, photo_name(photo, None, "photo"), verdict, individual_id, species
        )
        return decode(await self._send(call), ReviewResult)

    async def export(
        self, format: Literal["csv", "dwc"] = "csv", species: str | None = None
    ) -> str:
        """See `WhaleIdClient.export`."""
        return (await self._send(_calls.export(format, species))).text

    async def _send(self, call: _calls.Call, *, stream: bool = False) -> httpx.Response:
        """See `WhaleIdClient._send`."""
        attempts = 1 + (self._retries if call.retry else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            request = _calls.request(self._http, call)
            try:
                response = await self._http.send(request, stream=stream)
            except CONNECTION_ERRORS as exc:
                if last:
                    raise ServiceUnavailable(f"{call.method} {call.path}: {exc!r}") from exc
                await _async_sleep(wait(attempt, self._backoff, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                await response.aclose()
                await _async_sleep(wait(attempt, self._backoff, response.headers))
                continue
            if response.is_error:
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
                raise api_error(response.status_code, content, response.reason_phrase)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")
