"""The HTTP service: a Litestar app over one `Gallery`.

Everything is wired in `create_app`: routes, the error handler, dependencies and the
lifespan that opens the gallery. Handlers only turn HTTP into gallery calls. Decoding,
feature extraction and search are CPU-bound and run in a thread pool bounded by
`Settings.workers`, so the event loop keeps answering (/health, /ready) while photos
are processed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal, TypeVar

import anyio.to_thread
import msgspec
from anyio import CapacityLimiter
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import Body, Parameter

from embeddings.images import load_photo
from embeddings.photo import ImageError, ImageErrorReason
from indexer.gallery import Gallery
from indexer.results import Candidate, EnrolResult, GalleryStats
from indexer.store import Conflict, NotFound, StoreError
from service.config import Settings

__all__ = [
    "WEIGHT_FREE",
    "BadRequest",
    "EnrolForm",
    "ErrorBody",
    "ExtractorInfo",
    "IdentifyForm",
    "IdentifyResponse",
    "PayloadTooLarge",
    "ReadyResponse",
    "ServiceError",
    "create_app",
    "handle_error",
]

WEIGHT_FREE = "weight-free (RootSIFT + spatial verification)"
"""How photos are identified; no deep model is loaded in this version."""

MAX_TOP_K = 50
# Room for the multipart boundaries, part headers and the small text fields on top of
# the photo itself; the photo's own size is checked exactly in the handler.
_MULTIPART_OVERHEAD = 64 * 1024

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


# ---------------------------------------------------------------------- errors


class ServiceError(Exception):
    """A request the service refuses; subclasses set the HTTP status and error code."""

    status_code: int = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal_error"


class BadRequest(ServiceError):
    """A malformed request: a missing or empty field, a value out of range."""

    status_code = HTTPStatus.BAD_REQUEST
    code = "bad_request"


class PayloadTooLarge(ServiceError):
    """An upload above `Settings.max_upload_bytes`."""

    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


# Litestar's own refusals get the same codes as ours (HTTP's phrase for 413 is the
# older "Request Entity Too Large").
_HTTP_CODES = {HTTPStatus.REQUEST_ENTITY_TOO_LARGE: PayloadTooLarge.code}


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body of every 4xx and 5xx answer."""

    status_code: int
    error: str
    """Machine-readable code, e.g. "bad_request", "payload_too_large", "corrupted_image"."""
    detail: str
    """What went wrong, for a person."""


def _error_status(exc: Exception) -> tuple[int, str, str]:
    """(status, code, detail) for any exception; the one place statuses are chosen."""
    if isinstance(exc, ServiceError):
        return int(exc.status_code), exc.code, str(exc)
    if isinstance(exc, ImageError):
        # Enrolment needs a usable photo; identification answers 200 "rejected" instead.
        return HTTPStatus.UNPROCESSABLE_ENTITY, exc.reason, exc.message
    if isinstance(exc, NotFound):
        return HTTPStatus.NOT_FOUND, "not_found", str(exc)
    if isinstance(exc, Conflict):
        return HTTPStatus.CONFLICT, "conflict", str(exc)
    if isinstance(exc, ValidationException):
        problems = "; ".join(
            f"{item.get('key', '?')}: {item.get('message', '')}"
            for item in (exc.extra if isinstance(exc.extra, list) else [])
            if isinstance(item, dict)
        )
        detail = f"{exc.detail}: {problems}" if problems else str(exc.detail)
        return exc.status_code, "bad_request", detail
    if isinstance(exc, HTTPException):
        status = HTTPStatus(exc.status_code)
        code = _HTTP_CODES.get(status, status.phrase.lower().replace(" ", "_"))
        return status, code, str(exc.detail)
    if isinstance(exc, StoreError):
        _log.error("database error: %s", exc)
        return HTTPStatus.INTERNAL_SERVER_ERROR, "database_error", "the database failed"
    _log.exception("unhandled error", exc_info=exc)
    return HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal server error"


def handle_error(request: Request, exc: Exception) -> Response[ErrorBody]:
    """The app's only exception handler: every error becomes an `ErrorBody`."""
    status, code, detail = _error_status(exc)
    return Response(
        ErrorBody(status_code=int(status), error=code, detail=detail), status_code=int(status)
    )


# ---------------------------------------------------------------------- schemas


class ExtractorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The feature extractor answers are computed with."""

    name: str
    version: str
    """Changes with every extractor setting; features of other versions are not mixed."""


class HealthResponse(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["ok"] = "ok"


class ReadyResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The service is up, with what it serves from."""

    status: Literal["ready"] = "ready"
    database: str
    """Path of the SQLite embedding database."""
    counts: GalleryStats
    extractor: ExtractorInfo
    models: list[str] = []
    """Deep models loaded; none in this version."""
    identification: str = WEIGHT_FREE


class IdentifyForm(msgspec.Struct, kw_only=True):
    """Multipart body of POST /v1/identify."""

    file: UploadFile


class EnrolForm(msgspec.Struct, kw_only=True):
    """Multipart body of POST /v1/enrol."""

    file: UploadFile
    individual_id: str
    species: str | None = None


class IdentifyResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The answer for one photo. A photo that cannot be used is a normal answer with
    decision "rejected" and a reason, not an HTTP error."""

    image: str
    """The uploaded file's name."""
    decision: Literal["match", "new_individual", "rejected"]
    rejection_reason: ImageErrorReason | None = None
    """Why the photo was rejected: corrupted_image, unsupported_format or too_large."""
    detail: str | None = None
    """The rejection, for a person."""
    candidates: list[Candidate] = []
    """Best individuals first; empty when rejected or the gallery is empty."""
    timings_ms: dict[str, float] = {}
    extractor: ExtractorInfo
    index_version: str | None = None
    """The searchable state the answer was computed on; None when rejected."""
    calibrated: bool | None = None
    """Whether `probability` comes from a fitted calibration (False while the gallery is
    too small to fit one); None when rejected."""
    identification: str = WEIGHT_FREE


# ---------------------------------------------------------------------- handlers


@get("/health", sync_to_thread=False)
def health() -> HealthResponse:
    """Liveness: the process answers."""
    return HealthResponse()


@get("/ready")
async def ready(
    gallery: NamedDependency[Gallery], extractor: NamedDependency[ExtractorInfo]
) -> ReadyResponse:
    """Readiness: the gallery is open; what it holds and how photos are identified."""
    # anyio's default pool, not the workers' limiter: a probe must not queue behind a
    # burst of identifications, or the orchestrator would restart a busy, healthy pod.
    stats = await anyio.to_thread.run_sync(gallery.stats)
    return ReadyResponse(
        database=str(Path(gallery.store.path).absolute()), counts=stats, extractor=extractor
    )


@post("/v1/identify", status_code=HTTPStatus.OK)
async def identify(
    data: Annotated[IdentifyForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    gallery: NamedDependency[Gallery],
    settings: NamedDependency[Settings],
    limiter: NamedDependency[CapacityLimiter],
    extractor: NamedDependency[ExtractorInfo],
    top_k: Annotated[int | None, Parameter(ge=1, le=MAX_TOP_K)] = None,
) -> IdentifyResponse:
    """Identify the individual in one photo (multipart field `file`)."""
    name = _file_name(data.file)
    content = await _read_upload(data.file, settings.max_upload_bytes)
    started = time.perf_counter()
    try:
        photo = await _in_pool(
            limiter, partial(load_photo, content, max_pixels=settings.max_image_pixels)
        )
    except ImageError as exc:
        return IdentifyResponse(
            image=name,
            decision="rejected",
            rejection_reason=exc.reason,
            detail=exc.message,
            timings_ms={"decode": _ms_since(started)},
            extractor=extractor,
        )
    decoded = time.perf_counter()
    answer = await _in_pool(limiter, partial(gallery.identify, photo, top_k=top_k))
    timings = {"decode": (decoded - started) * 1000, **answer.timings_ms}
    timings["total"] = _ms_since(started)
    return IdentifyResponse(
        image=name,
        decision=answer.decision,
        candidates=answer.candidates,
        timings_ms=timings,
        extractor=extractor,
        index_version=answer.index_version,
        calibrated=answer.calibrated,
    )


@post("/v1/enrol")
async def enrol(
    data: Annotated[EnrolForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    gallery: NamedDependency[Gallery],
    settings: NamedDependency[Settings],
    limiter: NamedDependency[CapacityLimiter],
) -> Response[EnrolResult]:
    """Add a labelled photo to the gallery: 201 when stored, 200 when already there."""
    individual_id = data.individual_id.strip()
    if not individual_id:
        raise BadRequest("individual_id: must not be empty")
    species = (data.species or "").strip() or None
    content = await _read_upload(data.file, settings.max_upload_bytes)
    photo = await _in_pool(
        limiter, partial(load_photo, content, max_pixels=settings.max_image_pixels)
    )
    result = await _in_pool(
        limiter,
        partial(
            gallery.enrol, photo, individual_id, species=species, source_name=_file_name(data.file)
        ),
    )
    status = HTTPStatus.CREATED if result.created else HTTPStatus.OK
    return Response(result, status_code=int(status))


# ---------------------------------------------------------------------- helpers


async def _in_pool(limiter: CapacityLimiter, func: Callable[[], _T]) -> _T:
    """Run CPU-bound work in a worker thread, at most `Settings.workers` at once."""
    return await anyio.to_thread.run_sync(func, limiter=limiter)


async def _read_upload(upload: UploadFile, limit: int) -> bytes:
    # Litestar already refused bodies above limit + overhead; this is the exact check.
    content = await upload.read(limit + 1)
    if len(content) > limit:
        raise PayloadTooLarge(f"the photo is larger than the limit of {limit} bytes")
    return content


def _file_name(upload: UploadFile) -> str:
    """The upload's base name; some clients send a full (even Windows) path."""
    name = PurePosixPath((upload.filename or "").replace("\\", "/")).name
    return name or "upload"


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


# ---------------------------------------------------------------------- wiring


@asynccontextmanager
async def _gallery_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Open the gallery for the app's lifetime; closing it saves the derived index."""
    settings: Settings = app.state.settings
    gallery = await anyio.to_thread.run_sync(
        partial(
            Gallery.open,
            Path(settings.data_dir),
            features=settings.features,
            engine=settings.engine,
        )
    )
    app.state.gallery = gallery
    app.state.extractor = ExtractorInfo(
        name=gallery.extractor.name, version=gallery.extractor.version
    )
    # Created here, inside the event loop the requests run on.
    app.state.limiter = CapacityLimiter(settings.workers)
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(gallery.close)


def _provide_gallery(state: State) -> Gallery:
    return state.gallery


def _provide_settings(state: State) -> Settings:
    return state.settings


def _provide_limiter(state: State) -> CapacityLimiter:
    return state.limiter


def _provide_extractor(state: State) -> ExtractorInfo:
    return state.extractor


def create_app(settings: Settings) -> Litestar:
    """Build the service.

    Args:
        settings: the configuration; the gallery in `settings.data_dir` is opened when
            the app starts and closed when it stops.

    Returns:
        The app, ready for uvicorn or Litestar's TestClient.
    """
    return Litestar(
        route_handlers=[health, ready, identify, enrol],
        dependencies={
            "gallery": Provide(_provide_gallery, sync_to_thread=False),
            "settings": Provide(_provide_settings, sync_to_thread=False),
            "limiter": Provide(_provide_limiter, sync_to_thread=False),
            "extractor": Provide(_provide_extractor, sync_to_thread=False),
        },
        exception_handlers={Exception: handle_error},
        lifespan=[_gallery_lifespan],
        state=State({"settings": settings}),
        request_max_body_size=settings.max_upload_bytes + _MULTIPART_OVERHEAD,
    )
