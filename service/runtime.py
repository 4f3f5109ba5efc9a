"""What the app's lifespan opens and every handler shares: the gallery (its catalogue and
identification pipeline), the bounded worker pool that CPU-bound work runs in, and the
metrics.

One `Runtime` per app, created in the lifespan and injected into handlers; nothing here
is module-level state.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import PurePosixPath
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from litestar.datastructures import UploadFile

from indexer.gallery import Gallery
from indexer.results import Identification, RejectionReason
from service.config import Settings
from service.errors import PayloadTooLarge
from service.metrics import Metrics

__all__ = ["Runtime", "file_name", "read_limited"]

_T = TypeVar("_T")


class Runtime:
    """The service's open resources.

    Args:
        settings: the configuration.
        gallery: the open gallery; the runtime does not own it (the lifespan closes it).
        metrics: where requests and rejections are counted.
    """

    def __init__(self, settings: Settings, gallery: Gallery, metrics: Metrics) -> None:
        self.settings = settings
        self.gallery = gallery
        self.pipeline = gallery.pipeline
        self.catalogue = gallery.catalogue
        self.metrics = metrics
        # Must be created inside the event loop the requests run on (the lifespan's).
        self.limiter = CapacityLimiter(settings.workers)

    async def run(self, func: Callable[[], _T]) -> _T:
        """Run CPU-bound work in a worker thread, at most `Settings.workers` at once, so
        the event loop keeps answering probes while photos are processed."""
        return await anyio.to_thread.run_sync(func, limiter=self.limiter)

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
