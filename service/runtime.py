"""What the app's lifespan opens and every handler shares: the gallery (its catalogue and
identification pipeline), the bounded worker pool that CPU-bound work runs in, and the
metrics.

One `Runtime` per app, created in the lifespan and injected into handlers; nothing here
is module-level state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import PurePosixPath
from typing import TypeVar

import anyio
import anyio.to_thread
import msgspec
from anyio import CapacityLimiter
from litestar.datastructures import UploadFile

from indexer.catalogue import Catalogue
from indexer.gallery import Gallery
from indexer.pipeline import Pipeline
from indexer.results import Identification, Progress, RejectionReason, Stages
from service.config import Settings
from service.errors import PayloadTooLarge, Unavailable
from service.metrics import Metrics

__all__ = ["Opening", "Runtime", "file_name", "read_limited"]

_T = TypeVar("_T")
_log = logging.getLogger(__name__)
# Threads for catalogue reads (pages, records, photo files); they are short.
_READ_THREADS = 4
# A request that needs the gallery waits this long for it to open (a small catalogue
# opens in well under a second), then gets 503 with Retry-After.
_WAIT_FOR_GALLERY_S = 10.0
_RETRY_AFTER_S = 5
# How often the catalogue's growth is checked for a calibration refit (a cheap check);
# a refit waits until the catalogue has held still for one interval.
_REFIT_CHECK_S = 30.0


_REBUILDING = "rebuilding the search index"
_CALIBRATING = "calibrating"
_DESCRIBING = "describing stored photos for the current extractor settings"


class Opening(msgspec.Struct, kw_only=True):
    """How far opening the gallery has got: shown by /ready until it is open."""

    phase: str = "opening the catalogue"
    done: int = 0
    total: int = 0
    error: str | None = None
    """Why the gallery could not be opened; the service then stays unready."""


class Runtime:
    """The service's open resources.

    The gallery is opened in the background (`open`), so the process answers /health at
    once even when the index must be rebuilt; until it is open, /ready says how far it
    got and requests that need it wait up to `_WAIT_FOR_GALLERY_S`, then get 503.

    Args:
        settings: the configuration.
        metrics: where requests and rejections are counted.
    """

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.opening = Opening()
        self._gallery: Gallery | None = None
        self._opened = anyio.Event()
        # Must be created inside the event loop the requests run on (the lifespan's).
        self.limiter = CapacityLimiter(settings.workers)
        # Reads of the catalogue never queue behind photos being identified.
        self.read_limiter = CapacityLimiter(_READ_THREADS)

    async def open(self, open_gallery: Callable[[Stages, Progress, Progress], Gallery]) -> None:
        """Open the gallery in a worker thread; progress and failure go to `opening`.

        Args:
            open_gallery: open_gallery(rebuilding, calibrating, describing) opens it,
                reporting to each the progress of that phase (to `rebuilding`, of each
                stage of the rebuild).
        """

        def phase(name: str) -> Progress:
            def progress(done: int, total: int) -> None:
                self.opening.phase = name
                self.opening.done, self.opening.total = done, total

            return progress

        try:
            self._gallery = await anyio.to_thread.run_sync(
                open_gallery,
                lambda stage: phase(f"{_REBUILDING}: {stage}"),
                phase(_CALIBRATING),
                phase(_DESCRIBING),
            )
        except Exception as exc:  # noqa: BLE001 - reported by /ready, and logged
            self.opening.error = f"{type(exc).__name__}: {exc}"
            _log.error("the catalogue could not be opened: %s", self.opening.error)
        finally:
            self._opened.set()

    async def keep_calibrated(self) -> None:
        """Refit the probability calibrations whenever the catalogue has grown enough
        (by enrolment here or from any other process) and holds still, off the request
        pools."""
        await self._opened.wait()
        while self._gallery is not None:
            await anyio.to_thread.run_sync(self._gallery.calibrator.refit_if_settled)
            await anyio.sleep(_REFIT_CHECK_S)

    async def wait_closable(self) -> None:
        """Wait until an opening in progress has ended (a thread cannot be cancelled)."""
        await self._opened.wait()

    def close(self) -> None:
        if self._gallery is not None:
            self._gallery.close()

    @property
    def is_open(self) -> bool:
        return self._gallery is not None

    async def wait_open(self) -> None:
        """Wait a little for the gallery; `Unavailable` (503) if it is still not open."""
        with anyio.move_on_after(_WAIT_FOR_GALLERY_S):
            await self._opened.wait()
        if self._gallery is None:
            raise Unavailable(self.status(), retry_after=_RETRY_AFTER_S)

    def status(self) -> str:
        """What keeps the gallery from being open, for a person."""
        opening = self.opening
        if opening.error is not None:
            return f"the catalogue could not be opened: {opening.error}"
        if opening.total:
            return f"{opening.phase}: {opening.done} of {opening.total}"
        return opening.phase

    @property
    def gallery(self) -> Gallery:
        if self._gallery is None:
            raise Unavailable(self.status(), retry_after=_RETRY_AFTER_S)
        return self._gallery

    @property
    def pipeline(self) -> Pipeline:
        return self.gallery.pipeline

    @property
    def catalogue(self) -> Catalogue:
        return self.gallery.catalogue

    async def run(self, func: Callable[[], _T]) -> _T:
        """Run CPU-bound work in a worker thread, at most `Settings.workers` at once, so
        the event loop keeps answering probes while photos are processed."""
        await self.wait_open()
        return await anyio.to_thread.run_sync(func, limiter=self.limiter)

    async def read(self, func: Callable[[], _T]) -> _T:
        """Run a catalogue read in its own small pool: reads never wait behind
        identifications."""
        await self.wait_open()
        return await anyio.to_thread.run_sync(func, limiter=self.read_limiter)

    async def identify(self, name: str, content: bytes, top_k: int | None) -> Identification:
        """Decode and identify one photo in the worker pool."""
        return await self.run(partial(self.identify_now, name, content, top_k))

    def identify_now(self, name: str, content: bytes, top_k: int | None) -> Identification:
        """Decode and identify one photo in the calling thread (the pipeline's answer);
        unusable photos are answered "rejected" with a reason, never raised."""
        answer = self.pipeline.identify(content, name=name, top_k=top_k)
        if answer.rejection_reason is not None:
            self.metrics.count_rejection(answer.rejection_reason)
        return answer

    def rejected(self, name: str, reason: RejectionReason, detail: str) -> Identification:
        """The answer for a photo that never reached the pipeline, counted."""
        self.metrics.count_rejection(reason)
        return self.pipeline.rejected(name, reason, detail)

    async def read_photo(self, upload: UploadFile) -> bytes:
        """An uploaded photo's bytes, refused above `Settings.max_upload_bytes`."""
        return await read_limited(upload, self.settings.max_upload_bytes, "the photo")


async def read_limited(upload: UploadFile, limit: int, what: str) -> bytes:
    """An upload's bytes; `PayloadTooLarge` naming `what` above `limit` bytes.

    Litestar already refused bodies far above the limits; this is the exact check.
    """
    content = await upload.read(limit + 1)
    if len(content) > limit:
        raise PayloadTooLarge(f"{what} is larger than the limit of {limit} bytes")
    return content


def file_name(upload: UploadFile) -> str:
    """The upload's base name; some clients send a full (even Windows) path."""
    name = PurePosixPath((upload.filename or "").replace("\\", "/")).name
    return name or "upload"
