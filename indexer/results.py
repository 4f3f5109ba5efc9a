"""Answers of the identification engine, as they cross into the service and the CLI."""

from __future__ import annotations

from typing import Literal

import msgspec

Decision = Literal["match", "new_individual", "low_confidence"]
"""low_confidence: the photo has too few features to be matched at all."""


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """Why a candidate ranks where it does: its best gallery image."""

    image_id: int | None
    """None when the evidence is a deep model's centroid, not a photo."""
    source_name: str
    inliers: int


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


class Identification(msgspec.Struct, frozen=True, kw_only=True):
    candidates: list[Candidate]
    decision: Decision
    extractor: str
    index_version: str
    calibrated: bool
    """False until the gallery has enough labelled photos to fit probabilities."""
    timings_ms: dict[str, float]
    models: list[str] = []
    """Deep models (name-version) that contributed; empty on the weight-free path."""


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
    `Gallery.reextract` (`whaleid index rebuild`) extracts the others' features from
    their stored files; photos enrolled before files were kept must be enrolled again."""


class Unextracted(msgspec.Struct, frozen=True, kw_only=True):
    """A stored photo `Gallery.reextract` could not give features."""

    image_id: int
    individual_id: str
    source_name: str
    reason: str
    """"no_file" (enrolled before photo files were kept: enrol the file again), or why
    the stored file could not be decoded."""


class Reextraction(msgspec.Struct, frozen=True, kw_only=True):
    """What `Gallery.reextract` did."""

    extracted: int
    """Photos given features (or embeddings) from their stored files."""
    current: int
    """Photos that already had every kind of features searched."""
    unextracted: list[Unextracted] = []
    """Photos left unsearchable, with the reason; never silently dropped."""
