"""Identification endpoints: one photo, a batch streamed as NDJSON, and the earlier
service's /v1/predict-* schema for its existing clients."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from http import HTTPStatus
from typing import Annotated

import msgspec
from litestar import post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Stream

from indexer.results import MAX_TOP_K
from service.archive import ArchiveEntry, ArchiveError, ArchiveLimits, read_archive
from service.errors import BadRequest, ErrorBody, PayloadTooLarge, error_status, errors
from service.runtime import Runtime, file_name, read_limited
from service.schemas import (
    BatchForm,
    IdentifyForm,
    IdentifyResponse,
    LegacyPrediction,
    RejectionReason,
)

__all__ = ["identify", "identify_batch", "predict_batch", "predict_single"]

NDJSON = "application/x-ndjson"
BATCH_TOTAL = "X-Batch-Total"
"""Response header of a batch: how many answers its stream will carry."""
# Room for multipart boundaries and part headers on top of the uploads themselves; the
# uploads' own sizes are checked exactly in the handlers.
MULTIPART_OVERHEAD = 64 * 1024

# What an archive entry's problem means for the photo in it.
_ENTRY_REASONS: dict[str, tuple[RejectionReason, str]] = {
    "too_large": ("too_large", "the entry inflates beyond the size limits"),
    "nested_archive": ("unsupported_format", "archives inside the archive are not opened"),
    "encrypted": ("unsupported_format", "the entry is encrypted"),
    "corrupted_image": ("corrupted_image", "the entry's data is damaged"),
}

TopK = Annotated[int | None, Parameter(ge=1, le=MAX_TOP_K, description="candidates to return")]


@post("/v1/identify", status_code=HTTPStatus.OK, opt={"read": True}, responses=errors(413))
async def identify(
    data: Annotated[IdentifyForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    runtime: NamedDependency[Runtime],
    top_k: TopK = None,
) -> IdentifyResponse:
    """Identify the individual in one photo (multipart field `file`)."""
    content = await runtime.read_photo(data.file)
    return await runtime.identify(file_name(data.file), content, top_k)


@post(
    "/v1/identify/batch",
    status_code=HTTPStatus.OK,
    opt={"read": True},
    responses=errors(413, 422),
    media_type=NDJSON,
    response_headers=[
        ResponseHeader(
            name=BATCH_TOTAL,
            documentation_only=True,
            required=True,
            description="How many answers the stream carries: one per photo sent, the"
            " archive's files counted from its directory before any is read (so a client"
            " can show progress as 'N of total')",
        )
    ],
)
async def identify_batch(
    data: Annotated[BatchForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    runtime: NamedDependency[Runtime],
    top_k: TopK = None,
) -> Stream:
    """Identify every photo of a ZIP (field `archive`) and/or of several `files`.

    The answer streams as NDJSON: one `IdentifyResponse` per line, in input order, each
    entry answered (unusable ones "rejected" with a reason, never dropped). Should the
    archive turn out to exceed the size limits part-way, a last line carries an error
    body (`status_code`, `error`, `detail`) instead. The `X-Batch-Total` header says how
    many answers to expect.
    """
    photos, total = await _batch_inputs(data, runtime)
    return Stream(
        _ndjson(photos, runtime, top_k), media_type=NDJSON, headers={BATCH_TOTAL: str(total)}
    )


@post("/v1/predict-single", status_code=HTTPStatus.OK, opt={"read": True}, responses=errors(413))
async def predict_single(
    data: Annotated[IdentifyForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    runtime: NamedDependency[Runtime],
) -> LegacyPrediction:
    """One photo (field `file`), answered in the earlier service's schema."""
    content = await runtime.read_photo(data.file)
    return _detection(await runtime.identify(file_name(data.file), content, 1))


@post(
    "/v1/predict-batch",
    status_code=HTTPStatus.OK,
    opt={"read": True},
    responses=errors(413, 422),
)
async def predict_batch(
    data: Annotated[IdentifyForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    runtime: NamedDependency[Runtime],
) -> list[LegacyPrediction]:
    """A ZIP of photos (field `file`), answered as a JSON list in the earlier service's
    schema."""
    photos, _ = await _batch_inputs(BatchForm(archive=data.file), runtime)
    results = []
    async for line in _answers(photos, runtime, 1):
        if isinstance(line, ErrorBody):
            raise PayloadTooLarge(line.detail)
        results.append(_detection(line))
    return results


# ---------------------------------------------------------------------- helpers


async def _batch_inputs(data: BatchForm, runtime: Runtime) -> tuple[Iterator[ArchiveEntry], int]:
    """The batch's photos in input order, and how many there are. An archive refused as
    a whole (not a ZIP, too many entries) raises here, before the answer starts, so it
    gets a 4xx status; its entries are inflated one at a time as the iterator is
    advanced."""
    settings = runtime.settings
    if data.archive is None and not data.files:
        raise BadRequest("send a ZIP in the field `archive` or photos in the field `files`")
    if len(data.files) > settings.max_batch_entries:
        raise PayloadTooLarge(
            f"{len(data.files)} files; at most {settings.max_batch_entries} per batch"
        )
    entries: list[ArchiveEntry] = []
    budget = settings.max_batch_bytes
    for upload in data.files:
        content = await read_limited(upload, budget, "the batch")
        budget -= len(content)
        name = file_name(upload)
        if len(content) > settings.max_upload_bytes:
            entries.append(ArchiveEntry(name=name, path=name, content=None, reason="too_large"))
        else:
            entries.append(ArchiveEntry(name=name, path=name, content=content))
    if data.archive is None:
        return iter(entries), len(entries)
    content = await read_limited(data.archive, budget, "the batch")
    limits = ArchiveLimits(
        max_entries=settings.max_batch_entries - len(entries),
        max_total_bytes=settings.max_batch_bytes,
        max_entry_bytes=settings.max_upload_bytes,
        max_ratio=settings.max_compression_ratio,
    )
    archived = read_archive(content, limits)
    return itertools.chain(entries, archived), len(entries) + len(archived)


async def _answers(
    photos: Iterator[ArchiveEntry], runtime: Runtime, top_k: int | None
) -> AsyncIterator[IdentifyResponse | ErrorBody]:
    while True:
        try:
            # Inflating an entry is CPU work too: it runs in the pool like the rest.
            entry = await runtime.run(lambda: next(photos, None))
        except ArchiveError as exc:
            status, code, detail = error_status(exc)
            yield ErrorBody(status_code=status, error=code, detail=detail)
            return
        if entry is None:
            return
        yield await runtime.run(lambda e=entry: _answer(e, runtime, top_k))


def _answer(entry: ArchiveEntry, runtime: Runtime, top_k: int | None) -> IdentifyResponse:
    if entry.content is None:
        reason, default = _ENTRY_REASONS.get(entry.reason or "", ("corrupted_image", "unreadable"))
        return runtime.rejected(entry.path, reason, entry.detail or default)
    return runtime.identify_now(entry.path, entry.content, top_k)


async def _ndjson(
    photos: Iterator[ArchiveEntry], runtime: Runtime, top_k: int | None
) -> AsyncIterator[bytes]:
    encoder = msgspec.json.Encoder()
    async for line in _answers(photos, runtime, top_k):
        yield encoder.encode(line) + b"\n"


def _detection(answer: IdentifyResponse) -> LegacyPrediction:
    best = answer.candidates[0] if answer.candidates else None
    matched = answer.decision == "match" and best is not None
    return LegacyPrediction(
        image_ind=answer.image,
        bbox=answer.bbox or [0, 0, 0, 0],
        class_animal=best.individual_id if matched and best else "",
        id_animal=(best.species or "unknown") if matched and best else "unknown",
        probability=best.probability if best else 0.0,
        # Only a gate that looked can say: without one (or for a file that is no photo)
        # nothing was checked, and -1 is a score no gate produces.
        is_cetacean=(answer.rejection_reason != "not_a_marine_mammal")
        if answer.gate.applied
        else None,
        cetacean_score=answer.gate.score if answer.gate.score is not None else -1.0,
        rejected=answer.decision == "rejected",
        rejection_reason=answer.rejection_reason,
        model_version=f"{answer.extractor.name}-{answer.extractor.version}"
        + ("" if answer.gate.applied else "; gate=none"),
    )
