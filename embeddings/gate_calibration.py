"""Choosing the gate's threshold on labelled photos, and the gate's metrics."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np

from embeddings.images import load_photo_file
from embeddings.photo import ImageError, Photo

__all__ = [
    "GateMetrics",
    "ScoredManifest",
    "choose_threshold",
    "gate_metrics",
    "roc_auc",
    "score_manifest",
    "shows_cetacean",
]


class ScoredManifest(msgspec.Struct, frozen=True, kw_only=True):
    scores: np.ndarray
    """(N,) gate scores of the readable photos."""
    cetacean: np.ndarray
    """(N,) bool labels: False where the species starts with `not_cetacean`."""
    unreadable: list[str]
    """Manifest paths of photos that could not be read (left out of the arrays)."""


def shows_cetacean(species: str | None) -> bool:
    """False for a manifest species starting with `not_cetacean`: a photo without any
    cetacean (../shared/data/README.md)."""
    return not (species or "").startswith("not_cetacean")


def score_manifest(score: Callable[[Photo], float], manifest: Path) -> ScoredManifest:
    """Score every photo of a labelled manifest (`path` relative to the manifest's
    folder, `species`; a species starting with `not_cetacean` marks a photo without any
    cetacean, as in `../shared/data/gate`)."""
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    scores, labels, unreadable = [], [], []
    for row in rows:
        try:
            photo = load_photo_file(manifest.parent / row["path"])
        except (ImageError, OSError):
            unreadable.append(row["path"])
            continue
        scores.append(score(photo))
        labels.append(shows_cetacean(row.get("species")))
    return ScoredManifest(
        scores=np.array(scores, dtype=np.float64),
        cetacean=np.array(labels, dtype=bool),
        unreadable=unreadable,
    )


class GateMetrics(msgspec.Struct, frozen=True, kw_only=True):
    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    tpr: float
    """Cetacean photos let through."""
    tnr: float
    """Other photos rejected."""
    precision: float
    f1: float
    roc_auc: float


def gate_metrics(scores: np.ndarray, cetacean: np.ndarray, threshold: float) -> GateMetrics:
    """Confusion counts and rates of `score >= threshold` against the labels."""
    passed = scores >= threshold
    tp = int((passed & cetacean).sum())
    fp = int((passed & ~cetacean).sum())
    tn = int((~passed & ~cetacean).sum())
    fn = int((~passed & cetacean).sum())
    tpr = tp / max(1, tp + fn)
    precision = tp / max(1, tp + fp)
    return GateMetrics(
        threshold=float(threshold),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        tpr=tpr,
        tnr=tn / max(1, tn + fp),
        precision=precision,
        f1=2 * precision * tpr / max(1e-12, precision + tpr),
        roc_auc=roc_auc(scores, cetacean),
    )


def choose_threshold(scores: np.ndarray, cetacean: np.ndarray) -> float:
    """The threshold of highest balanced accuracy (Youden's J = TPR + TNR - 1).

    Balanced rather than plain accuracy, so an unbalanced calibration set does not
    push the gate towards its majority class. Among equally good thresholds the lowest
    is taken: a cetacean photo wrongly rejected is lost to the catalogue, a scene
    wrongly passed only costs a search that finds no match. Candidates are midpoints
    between adjacent distinct scores (and below the lowest)."""
    if cetacean.all() or not cetacean.any():
        raise ValueError("need both cetacean and non-cetacean photos to choose a threshold")
    distinct = np.unique(scores)
    candidates = np.concatenate([[distinct[0] - 1e-6], (distinct[:-1] + distinct[1:]) / 2])
    best, best_j = float(candidates[0]), -np.inf
    for threshold in candidates:
        passed = scores >= threshold
        j = passed[cetacean].mean() + (~passed[~cetacean]).mean() - 1
        if j > best_j + 1e-12:
            best, best_j = float(threshold), j
    return best


def roc_auc(scores: np.ndarray, cetacean: np.ndarray) -> float:
    """Probability that a random cetacean photo outscores a random other one (ties
    count half): the Mann-Whitney U statistic over both counts."""
    pos, neg = scores[cetacean], scores[~cetacean]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))
