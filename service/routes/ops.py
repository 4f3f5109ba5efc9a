"""Probes, metrics and the sightings export."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromQuery
from litestar.response import Stream

from indexer.sightings import darwin_core_csv, iter_sightings, sightings_csv
from service.errors import errors
from service.metrics import CONTENT_TYPE
from service.routes.catalogue import IMAGE_FILE_PATH
from service.runtime import Runtime
from service.schemas import HealthResponse, ReadyResponse, StartingResponse

__all__ = ["export", "health", "metrics", "ready"]

# Rows are handed from the worker thread to the event loop in chunks, not one by one.
_EXPORT_CHUNK_ROWS = 500
# /ready waits this long for an opening catalogue: within a probe's usual 1 s timeout.
_READY_WAIT_S = 0.8


@get("/health", sync_to_thread=False, opt={"public": True})
def health() -> HealthResponse:
    """Liveness: the process answers."""
    return HealthResponse()


@get(
    "/ready",
    opt={"public": True},
    responses={
        503: ResponseSpec(
            data_container=StartingResponse,
            description="The catalogue is still opening (its index is being rebuilt), or"
            " could not be opened",
        )
    },
)
async def ready(
    runtime: NamedDependency[Runtime],
) -> Response[ReadyResponse | StartingResponse]:
    """Readiness: the database and index are open; what they hold and how photos are
    identified. While the index is rebuilt at start-up: 503, with how far it got."""
    with anyio.move_on_after(_READY_WAIT_S):
        await runtime.wait_closable()
    if not runtime.is_open:
        opening = runtime.opening
        body = StartingResponse(
            status="failed" if opening.error else "starting",
            detail=runtime.status(),
            done=opening.done,
            total=opening.total,
        )
        return Response(body, status_code=503, headers={"Retry-After": "5"})
    # anyio's default pool, not the workers' limiter: a probe must not queue behind a
    # burst of identifications, or the orchestrator would restart a busy, healthy pod.
    stats = await anyio.to_thread.run_sync(runtime.gallery.stats)
    return Response(
        ReadyResponse(
            database=str(Path(runtime.gallery.store.path).absolute()),
            counts=stats,
            extractor=runtime.pipeline.extractor,
            models=runtime.pipeline.models,
            identification=runtime.pipeline.identification,
            gate=runtime.pipeline.gate_description,
            locator=runtime.pipeline.locator_description,
        )
    )


@get("/metrics", opt={"public": True}, media_type=CONTENT_TYPE)
async def metrics(runtime: NamedDependency[Runtime]) -> Response[str]:
    """Prometheus metrics: requests and latency by route, rejections by reason, gallery
    size."""
    if not runtime.is_open:  # still opening: the request counters only
        return Response(runtime.metrics.render({}), media_type=CONTENT_TYPE)
    stats = await anyio.to_thread.run_sync(runtime.gallery.stats)
    text = runtime.metrics.render(
        {
            "whaleid_gallery_individuals": (
                "Individuals with searchable photos",
                stats.individuals,
            ),
            "whaleid_gallery_images": ("Searchable photos", stats.images),
            "whaleid_gallery_descriptors": ("Local descriptors in the index", stats.descriptors),
            "whaleid_gallery_centroids": ("Deep-model centroids in the index", stats.centroids),
        }
    )
    return Response(text, media_type=CONTENT_TYPE)


@get("/v1/export", responses=errors(), media_type="text/csv")
async def export(
    request: Request,
    runtime: NamedDependency[Runtime],
    format: FromQuery[Literal["csv", "dwc"]] = "csv",
    species: FromQuery[str | None] = None,
) -> Stream:
    """Every sighting (stored photo) as CSV, or as a Darwin Core occurrence table
    (`format=dwc`) for GBIF/OBIS; optionally of one species. Streamed, so a large
    catalogue never sits whole in memory. Darwin Core's associatedMedia is the URL of
    the stored photo file under the address this request was sent to."""
    await runtime.wait_open()
    sightings = iter_sightings(runtime.catalogue.store, species)
    if format == "dwc":
        media_url = str(request.base_url).rstrip("/") + IMAGE_FILE_PATH
        rows = darwin_core_csv(sightings, media_url=media_url)
    else:
        rows = sightings_csv(sightings)
    filename = "occurrences.csv" if format == "dwc" else "sightings.csv"
    return Stream(
        _in_chunks(rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _in_chunks(rows: Iterator[str]) -> AsyncIterator[str]:
    # Reading the database happens in a worker thread, chunk by chunk.
    while chunk := await anyio.to_thread.run_sync(partial(_take, rows, _EXPORT_CHUNK_ROWS)):
        yield chunk


def _take(rows: Iterator[str], count: int) -> str:
    return "".join(row for row, _ in zip(rows, range(count)))
