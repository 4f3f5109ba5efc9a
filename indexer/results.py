"""Answers of the identification engine: what the HTTP API, the CLI's `--json` and the
evaluation all receive from `indexer.pipeline`. New fields go last, with defaults."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Literal

import msgspec

Progress = Callable[[int, int], None]
"""progress(done, total), called as long work advances; a total of 0 says, as the work
begins, that it goes on with no progress of its own."""
Stages = Callable[[str], Progress]
"""stages(stage) -> the progress of that stage of long work, asked for as the stage
begins (an index build's are `BuildStage`)."""


class BuildStage(StrEnum):
    """The stages of an index build, in order; a small index is not trained."""

    READING = "reading the photos' features"
    TRAINING = "training the index's lists (minutes for thousands of photos; no progress shown)"
    ADDING = "adding the descriptors to the index"


MAX_TOP_K = 50
"""Most candidates one answer may ask for."""

Decision = Literal["match", "new_individual", "rejected"]

RejectionReason = Literal[
    "not_a_marine_mammal", "low_confidence", "corrupted_image", "unsupported_format", "too_large"
]

LOW_CONFIDENCE = "too little texture to match: the photo is blank, blurred or too small"

WEIGHT_FREE = "weight-free (RootSIFT + spatial verification)"
"""How photos are identified while no deep model is loaded."""
FUSED = "deep embedding shortlist + RootSIFT verification, calibrated and fused"
"""How photos are identified with the deep embedder loaded."""


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """Why a candidate ranks where it does: its best gallery image."""

    image_id: int | None
    """None when the evidence is a deep model's centroid, not a photo."""
    source_name: str
    inliers: int
    pairs: list[tuple[float, float, float, float]] = []
    """Matched points that verified (RANSAC inliers), heaviest first, at most 50: query
    x, y and gallery x, y, each in its photo's pixels (EXIF orientation applied)."""


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    individual_id: str
    species: str | None
    probability: float
    """Calibrated probability that the query shows this individual."""
    score: float
    """Raw local-feature matcher score (comparable only within one extractor and
    gallery); 0 when only the deep model found the individual."""
    evidence: Evidence
    similarity: float | None = None
    """Cosine similarity of the deep embeddings; None without a deep model."""


class Detection(msgspec.Struct, frozen=True, kw_only=True):
    """One animal in the photo, identified on its own."""

    bbox: list[int]
    """[x_min, y_min, x_max, y_max] of the animal in the photo's pixels (EXIF orientation
    applied); the whole photo when no locator ran or the photo is a crop already."""
    decision: Literal["match", "new_individual"]
    candidates: list[Candidate] = []


class ExtractorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The feature extractor answers are computed with."""

    name: str
    version: str
    """Changes with every extractor setting; features of other versions are not mixed."""


class GateResult(msgspec.Struct, frozen=True, kw_only=True):
    """The "is there a cetacean in this photo?" check."""

    applied: bool
    """False when no gate model is loaded: then nothing was checked."""
    score: float | None = None
    """Probability-like cetacean score in [0, 1] when applied."""
    detail: str = ""


GATE_NOT_APPLIED = GateResult(applied=False, detail="no gate model loaded")
NO_LOCATOR = "none: every photo is searched whole"
"""What /ready says of the locator while none is loaded."""


class Identification(msgspec.Struct, frozen=True, kw_only=True):
    """The answer for one photo. A photo that cannot be used is a normal answer with
    decision "rejected" and a reason, not an error."""

    image: str
    """The photo's name (a file name; for a ZIP entry, its path inside the archive)."""
    decision: Decision
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
    """[x_min, y_min, x_max, y_max] of the animal the answer is about, in pixels; the
    whole photo when no locator ran or the photo is a crop already; None when the photo
    could not be decoded."""
    gate: GateResult = GATE_NOT_APPLIED
    models: list[str] = []
    """Deep models that contributed to the answer; empty on the weight-free path."""
    stages: list[str] = []
    """The pipeline stages that ran, in order (decode, gate, locate, deep search, local
    search, decision); a stage whose model is not installed is absent."""
    detections: list[Detection] = []
    """Every animal the locator found (up to `engine.max_detections`), hottest first,
    each identified on its own box; one covering the whole photo without a locator.
    `decision`, `candidates` and `bbox` above repeat the detection whose best candidate
    is most probable. Empty when rejected."""


class EnrolResult(msgspec.Struct, frozen=True, kw_only=True):
    image_id: int
    individual_id: str
    created: bool
    """False when the same photo (same content hash) was already stored."""


class GalleryStats(msgspec.Struct, frozen=True, kw_only=True):
    individuals: int
    """Individuals with at least one searchable photo."""
    images: int
    """Searchable photos: those with features of the current extractor settings."""
    descriptors: int
    embeddings: int = 0
    """Photos searchable by a deep model's embedding."""
    centroids: int = 0
    """Individuals' deep-model centroids (imported ArcFace class weights)."""
    stored_images: int = 0
    """Photos in the database. More than `images` after the extractor settings changed:
    `Catalogue.reextract` (`whaleid index rebuild`) extracts the others' features from
    their stored files; photos enrolled before files were kept must be enrolled again."""


class Unextracted(msgspec.Struct, frozen=True, kw_only=True):
    """A stored photo `Catalogue.reextract` could not give features."""

    image_id: int
    individual_id: str
    source_name: str
    reason: str
    """"no_file" (enrolled before photo files were kept: enrol the file again), or why
    the stored file could not be decoded."""


class Reextraction(msgspec.Struct, frozen=True, kw_only=True):
    """What `Catalogue.reextract` did."""

    extracted: int
    """Photos given features (or embeddings) from their stored files."""
    current: int
    """Photos that already had every kind of features searched."""
    unextracted: list[Unextracted] = []
    """Photos left unsearchable, with the reason; never silently dropped."""
