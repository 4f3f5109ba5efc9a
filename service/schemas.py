"""What the HTTP API accepts and answers, as msgspec Structs (the OpenAPI schema is
generated from them). New fields go last, with defaults, so older clients keep working."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar.datastructures import UploadFile

from indexer.results import Candidate, GalleryStats
from indexer.store import ImageRow, Individual

__all__ = [
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
]

WEIGHT_FREE = "weight-free (RootSIFT + spatial verification)"
"""How photos are identified while no deep model is loaded."""
FUSED = "ArcFace embedding shortlist + RootSIFT verification, calibrated and fused"
"""How photos are identified with the deep embedder loaded."""

RejectionReason = Literal[
    "not_a_marine_mammal", "low_confidence", "corrupted_image", "unsupported_format", "too_large"
]


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
    """Deep models loaded, as name-version; empty on the weight-free path."""
    identification: str = WEIGHT_FREE
    gate: str = "not applied: no gate model loaded"
    """The gate model and threshold when loaded."""


class GateResult(msgspec.Struct, frozen=True, kw_only=True):
    """The "is there a cetacean in this photo?" check."""

    applied: bool
    """False when no gate model is loaded: then nothing was checked."""
    score: float | None = None
    """Probability-like cetacean score in [0, 1] when applied."""
    detail: str = ""


GATE_NOT_APPLIED = GateResult(applied=False, detail="no gate model loaded")


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
    individual_id: str
    species: str | None = None


class ImagesForm(msgspec.Struct, kw_only=True):
    """Multipart body of POST /v1/individuals/{id}/images: one or more `files`."""

    files: list[UploadFile]


class ReviewForm(msgspec.Struct, kw_only=True):
    """Multipart body of POST /v1/review: a person's verdict on a query photo."""

    file: UploadFile
    verdict: Literal["confirm", "no_match"]
    """confirm: the photo shows `individual_id` (an existing individual, usually the
    candidate the service proposed). no_match: it shows none of the known individuals."""
    individual_id: str | None = None
    """For confirm, the individual; for no_match, the id to give the new individual
    (one is made up from the date and the photo's hash when omitted)."""
    species: str | None = None


class IdentifyResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The answer for one photo. A photo that cannot be used is a normal answer with
    decision "rejected" and a reason, not an HTTP error."""

    image: str
    """The uploaded file's name (for a ZIP entry, its path inside the archive)."""
    decision: Literal["match", "new_individual", "rejected"]
    rejection_reason: RejectionReason | None = None
    """Why the photo was rejected. low_confidence: too little texture to match (blank,
    blurred or tiny)."""
    detail: str | None = None
    """The rejection, for a person."""
    candidates: list[Candidate] = []
    """Best individuals first; empty when rejected or the gallery is empty."""
    timings_ms: dict[str, float] = {}
    extractor: ExtractorInfo
    index_version: str | None = None
    """The searchable state the answer was computed on; None when rejected before search."""
    calibrated: bool | None = None
    """Whether `probability` comes from a fitted calibration (False while the gallery is
    too small to fit one); None when rejected."""
    identification: str = WEIGHT_FREE
    bbox: list[int] | None = None
    """[x_min, y_min, x_max, y_max] of the animal in pixels; the whole photo until a
    detector exists; None when the photo could not be decoded."""
    gate: GateResult = GATE_NOT_APPLIED
    models: list[str] = []
    """Deep models that contributed to the answer; empty on the weight-free path."""


class NewIndividual(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """JSON body of POST /v1/individuals."""

    id: str
    species: str | None = None
    name: str | None = None


class IndividualPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """JSON body of PATCH /v1/individuals/{id}; omitted fields stay as they are."""

    id: str | None = None
    """A new catalogue id (rename); the photos follow."""
    species: str | None = None
    name: str | None = None


class MergeRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """JSON body of POST /v1/individuals/{id}/merge."""

    source: str
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
    is_cetacean: bool
    cetacean_score: float
    rejected: bool
    rejection_reason: str | None
    model_version: str
    mask: str | None = None
