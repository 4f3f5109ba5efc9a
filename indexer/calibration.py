"""Raw match score -> probability that the query shows that individual.

Fitted at rebuild time on the gallery's own labelled photos: each sampled photo is
queried against the rest of the gallery, and its best-scoring true individual and best
wrong individual give one positive and one negative score. Isotonic regression (pool
adjacent violators) turns scores into frequencies of being right without assuming a
shape, and stays monotone: a higher score never means a lower probability.
"""

from __future__ import annotations

import msgspec
import numpy as np

__all__ = ["Calibration", "fit_isotonic"]

_MIN_PAIRS = 10
"""Fewer labelled scores than this of either class leave the gallery uncalibrated."""


class Calibration(msgspec.Struct, frozen=True, kw_only=True):
    """A monotone step-then-linear map from score to probability.

    Attributes:
        scores: ascending knots of the fitted curve.
        probabilities: probability at each knot (non-decreasing).
        fitted: False for the fallback used before a gallery has enough labelled photos.
        positives: positive scores the fit saw.
        negatives: negative scores the fit saw.
    """

    scores: list[float]
    probabilities: list[float]
    fitted: bool
    positives: int = 0
    negatives: int = 0

    def probability(self, score: float) -> float:
        return float(np.interp(score, self.scores, self.probabilities))

    @classmethod
    def unfitted(cls, half_score: float) -> Calibration:
        """A conservative placeholder: 0 at score 0, 0.5 at `half_score`, 0.9 at 4x it.

        Used until the gallery has labelled pairs to fit on; answers say so.
        """
        return cls(
            scores=[0.0, half_score, 4.0 * half_score],
            probabilities=[0.0, 0.5, 0.9],
            fitted=False,
        )


def fit_isotonic(
    positive: np.ndarray, negative: np.ndarray, fallback_half_score: float
) -> Calibration:
    """Fit P(correct | score) by isotonic regression.

    Args:
        positive: (P,) scores of true individuals.
        negative: (Q,) scores of wrong individuals.
        fallback_half_score: used by `Calibration.unfitted` when either class has fewer
            than 10 scores.
    """
    if len(positive) < _MIN_PAIRS or len(negative) < _MIN_PAIRS:
        return Calibration.unfitted(fallback_half_score)
    scores = np.concatenate([positive, negative]).astype(np.float64)
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    order = np.argsort(scores, kind="stable")
    scores, labels = scores[order], labels[order]
    # Pool adjacent violators over blocks of (sum of labels, count, lowest score).
    sums: list[float] = []
    counts: list[float] = []
    starts: list[float] = []
    for score, label in zip(scores, labels, strict=True):
        sums.append(label)
        counts.append(1.0)
        starts.append(score)
        while len(sums) > 1 and sums[-2] / counts[-2] >= sums[-1] / counts[-1]:
            merged_sum, merged_count = sums.pop(), counts.pop()
            sums[-1] += merged_sum
            counts[-1] += merged_count
            starts.pop()
    # Laplace smoothing keeps the ends off exactly 0 and 1: a few dozen pairs do not
    # justify certainty.
    levels = [(s + 0.5) / (c + 1.0) for s, c in zip(sums, counts, strict=True)]
    knots = [float(scores[0]), *starts[1:]]
    return Calibration(
        scores=[float(k) for k in knots],
        probabilities=[float(p) for p in levels],
        fitted=True,
        positives=int(len(positive)),
        negatives=int(len(negative)),
    )
