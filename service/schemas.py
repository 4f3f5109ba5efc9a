"""What the HTTP API accepts and answers, as msgspec Structs (the OpenAPI schema is
generated from them). New fields go last, with defaults, so older clients keep working."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar.datastructures import UploadFile

from indexer.results import (
    FUSED,
    GATE_NOT_APPLIED,
    NO_LOCATOR,
    WEIGHT_FREE,
    ExtractorInfo,
    GalleryStats,
    GateResult,
    Identification,
    RejectionReason,
)
from indexer.store import ImageRow, Individual

__all__ = [
    "FUSED",
    "GATE_NOT_APPLIED",
    "WEIGHT_FREE",
    "BatchForm",
    "DeleteResult",
    "EnrolForm",
    "ExtractorInfo",
    "GateResult",
    "HealthResponse",
    "IdentifyForm",
    "IdentifyResponse",
    "ImagesForm",
    "IndividualDetail",
    "IndividualPage",
    "IndividualPatch",
    "LegacyPrediction",
    "MergeRequest",
    "MergeResult",
    "NewIndividual",
    "ReadyResponse",
    "RejectionReason",
    "ReviewForm",
    "ReviewResult",
    "StartingResponse",
]


_CONTROL = r"\x00-\x1f\x7f-\x9f"
ID_PATTERN = rf"^\s*(?!\.\.?\s*$)[^/%\s{_CONTROL}](?:[^/%{_CONTROL}]*[^/%\s{_CONTROL}])?\s*$"
"""What `indexer.store` accepts as an individual id, as the OpenAPI schema states it;
spaces around it are allowed here because the routes strip them."""
IndividualId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=128,
        pattern=ID_PATTERN,
        description="An individual's catalogue id: at most 128 characters, no '/' or '%', no"
        " control characters, not '.' or '..' (one segment of these paths); spaces at"
        " either end are dropped, and spellings that differ only in Unicode"
        " normalisation are one id",
    ),
]


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
    """Deep models loaded, as name-version; empty on the weight-free path."""
    identification: str = WEIGHT_FREE
    gate: str = "not applied: no gate model loaded"
    """The gate model and threshold when loaded."""
    locator: str = NO_LOCATOR
    """The animal locator, when one is loaded."""


class StartingResponse(msgspec.Struct, frozen=True, kw_only=True):
    """/ready while the catalogue is not open yet (503)."""

    status: Literal["starting", "failed"]
    """failed: it could not be opened (the detail says why); the service stays unready."""
    detail: str
    done: int = 0
    """Photos (or calibration queries) processed in the current phase."""
    total: int = 0


class IdentifyForm(msgspec.Struct, kw_only=True):
    """Multipart body of POST /v1/identify."""

    file: UploadFile


class BatchForm(msgspec.Struct, kw_only=True):
    """Multipart body of POST /v1/identify/batch: a ZIP (`archive`) and/or photos
    (`files`, repeated)."""

    archive: UploadFile | None = None
    files: list[UploadFile] = []


class EnrolForm(msgspec.Struct, kw_only=True):
    """Multipart body of POST /v1/enrol."""

    file: UploadFile
    individual_id: IndividualId
    species: str | None = None
    move: bool = False
    """A photo already stored under another individual moves to this one; without it
    that is a 409 naming where the photo is."""


class ImagesForm(msgspec.Struct, kw_only=True):
    """Multipart body of POST /v1/individuals/{id}/images: one or more `files`."""

    files: Annotated[list[UploadFile], msgspec.Meta(min_length=1)]


class ReviewForm(msgspec.Struct, kw_only=True):
    """Multipart body of POST /v1/review: a person's verdict on a query photo."""

    file: UploadFile
    verdict: Literal["confirm", "no_match"]
    """confirm: the photo shows `individual_id` (an existing individual, usually the
    candidate the service proposed). no_match: it shows none of the known individuals."""
    individual_id: IndividualId | None = None
    """For confirm, the individual; for no_match, the id to give the new individual
    (one is made up from the date and the photo's hash when omitted)."""
    species: str | None = None
    move: bool = False
    """The photo is already stored under another individual: move it (else 409)."""


IdentifyResponse = Identification
"""The answer for one photo: the identification pipeline's answer, as it is."""


class NewIndividual(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """JSON body of POST /v1/individuals."""

    id: IndividualId
    species: str | None = None
    name: str | None = None


class IndividualPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """JSON body of PATCH /v1/individuals/{id}; omitted fields stay as they are."""

    id: IndividualId | None = None
    """A new catalogue id (rename); the photos follow."""
    species: str | None = None
    name: str | None = None


class MergeRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """JSON body of POST /v1/individuals/{id}/merge."""

    source: IndividualId
    """The individual whose photos move into the one in the path; it is then deleted."""


class MergeResult(msgspec.Struct, frozen=True, kw_only=True):
    individual: Individual
    moved_images: int


class DeleteResult(msgspec.Struct, frozen=True, kw_only=True):
    deleted_images: int


class IndividualPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Individual]
    limit: int
    offset: int
    next_offset: int | None
    """Offset of the next page; None on the last page."""


class IndividualDetail(msgspec.Struct, frozen=True, kw_only=True):
    """An individual with its photos, each a sighting (EXIF date and GPS when known)."""

    individual: Individual
    images: list[ImageRow]


class ReviewResult(msgspec.Struct, frozen=True, kw_only=True):
    verdict: Literal["confirm", "no_match"]
    individual_id: str
    image_id: int
    created_individual: bool
    """True when `no_match` started a new individual."""
    created_image: bool
    """False when the same photo was already in the catalogue."""


class LegacyPrediction(msgspec.Struct, frozen=True, kw_only=True):
    """One answer in the schema of the service this one replaces (/v1/predict-*)."""

    image_ind: str
    bbox: list[int]
    class_animal: str
    """The individual's id ("" when rejected or no individual matched)."""
    id_animal: str
    """The species ("unknown" when not known)."""
    probability: float
    is_cetacean: bool | None
    """What the cetacean gate found; null when no gate looked (none is installed, or the
    file is not a photo)."""
    cetacean_score: float
    rejected: bool
    rejection_reason: str | None
    model_version: str
    mask: str | None = None
