"""What the app's lifespan opens and every handler shares: the gallery, the bounded
worker pool that CPU-bound work runs in, and the metrics.

One `Runtime` per app, created in the lifespan and injected into handlers; nothing here
is module-level state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import PurePosixPath
from typing import TypeVar

import anyio.to_thread
import msgspec
from anyio import CapacityLimiter
from litestar.datastructures import UploadFile

from embeddings.images import load_photo
from embeddings.photo import ImageError
from embeddings.registry import LoadedModels
from indexer.gallery import Gallery
from service.config import Settings
from service.errors import PayloadTooLarge
from service.metrics import Metrics
from service.schemas import (
    FUSED,
    GATE_NOT_APPLIED,
    WEIGHT_FREE,
    ExtractorInfo,
    GateResult,
    IdentifyResponse,
    RejectionReason,
)

__all__ = ["Runtime", "file_name", "read_limited"]

_T = TypeVar("_T")
_LOW_CONFIDENCE = "too little texture to match: the photo is blank, blurred or too small"
_NO_CETACEAN = "the gate found no whale or dolphin in the photo"


class Runtime:
    """The service's open resources.

    Args:
        settings: the configuration.
        gallery: the open gallery; the runtime does not own it (the lifespan closes it).
        metrics: where requests and rejections are counted.
    """

    def __init__(
        self,
        settings: Settings,
        gallery: Gallery,
        metrics: Metrics,
        models: LoadedModels | None = None,
    ) -> None:
        self.settings = settings
        self.gallery = gallery
        self.metrics = metrics
        self.models = models or LoadedModels()
        self.identification = WEIGHT_FREE if gallery.embedder is None else FUSED
        gate = self.models.gate
        self.gate_description = (
            f"applied: {gate.name}-{gate.version}, threshold {gate.threshold:.3f}"
            f" ({gate.calibration})"
            if gate
            else GATE_NOT_APPLIED.detail
        )
        self.extractor = ExtractorInfo(
            name=gallery.extractor.name, version=gallery.extractor.version
        )
        # Must be created inside the event loop the requests run on (the lifespan's).
        self.limiter = CapacityLimiter(settings.workers)

    async def run(self, func: Callable[[], _T]) -> _T:
        """Run CPU-bound work in a worker thread, at most `Settings.workers` at once, so
        the event loop keeps answering probes while photos are processed."""
        return await anyio.to_thread.run_sync(func, limiter=self.limiter)

    async def identify(self, name: str, content: bytes, top_k: int | None) -> IdentifyResponse:
        """Decode and identify one photo in the worker pool."""
        return await self.run(partial(self.identify_now, name, content, top_k))

    def identify_now(self, name: str, content: bytes, top_k: int | None) -> IdentifyResponse:
        """Decode and identify one photo in the calling thread.

        Unusable photos are answered "rejected" with a reason, never raised.
        """
        started = time.perf_counter()
        try:
            photo = load_photo(content, max_pixels=self.settings.max_image_pixels)
        except ImageError as exc:
            return self.rejected(name, exc.reason, exc.message, started)
        decoded = time.perf_counter()
        timings = {"decode": (decoded - started) * 1000}
        gate = GATE_NOT_APPLIED
        if self.models.gate is not None:
            check = self.models.gate.check(photo)
            timings["gate"] = (time.perf_counter() - decoded) * 1000
            gate = GateResult(
                applied=True,
                score=check.score,
                detail=f"{self.models.gate.name}-{self.models.gate.version},"
                f" threshold {check.threshold:.3f}",
            )
            if not check.passed:
                rejected = self.rejected(name, "not_a_marine_mammal", _NO_CETACEAN, started)
                return msgspec.structs.replace(
                    rejected,
                    gate=gate,
                    timings_ms=timings,
                    bbox=[0, 0, photo.width, photo.height],
                    identification=self.identification,
                )
        answer = self.gallery.identify(photo, top_k=top_k)
        timings.update(answer.timings_ms)
        timings["total"] = (time.perf_counter() - started) * 1000
        low_confidence = answer.decision == "low_confidence"
        if low_confidence:
            self.metrics.count_rejection("low_confidence")
        return IdentifyResponse(
            image=name,
            decision="rejected" if low_confidence else answer.decision,
            rejection_reason="low_confidence" if low_confidence else None,
            detail=_LOW_CONFIDENCE if low_confidence else None,
            candidates=answer.candidates,
            timings_ms=timings,
            extractor=self.extractor,
            index_version=answer.index_version,
            calibrated=answer.calibrated,
            bbox=[0, 0, photo.width, photo.height],
            gate=gate,
            models=answer.models,
            identification=self.identification,
        )

    def rejected(
        self, name: str, reason: RejectionReason, detail: str, started: float | None = None
    ) -> IdentifyResponse:
        """The answer for a photo that could not be used, counted in the metrics."""
        self.metrics.count_rejection(reason)
        timings = {} if started is None else {"decode": (time.perf_counter() - started) * 1000}
        return IdentifyResponse(
            image=name,
            decision="rejected",
            rejection_reason=reason,
            detail=detail,
            timings_ms=timings,
            extractor=self.extractor,
        )

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
