"""Raw match score -> probability that the query shows that individual.

Fitted on the catalogue's own labelled photos: each sampled photo is queried against
the rest of the catalogue (`harvest`), and the best candidate's score, right or wrong, is
one labelled sample. Isotonic regression (pool adjacent violators) turns scores into
frequencies of being right without assuming a shape, and stays monotone: a higher score
never means a lower probability.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

import msgspec
import numpy as np

__all__ = ["Calibration", "Harvest", "calibration_queries", "fit_isotonic", "harvest", "new_share"]

_MIN_PAIRS = 10
"""Fewer labelled scores than this of either class leave the gallery uncalibrated."""
_NEW_SHARE_RANGE = (0.05, 0.5)
"""Bounds on the share of queries assumed to show an individual the catalogue lacks: a
catalogue's history is a rough estimate of it, and neither "never" nor "mostly" is safe."""


class Calibration(msgspec.Struct, frozen=True, kw_only=True):
    """A monotone piecewise-linear map from score to probability.

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
        # Not np.interp: its slope overflows between knots a subnormal distance apart
        # (inf, or a level above the next knot's); a share of the span does not.
        knots, levels = self.scores, self.probabilities
        i = int(np.searchsorted(knots, score, side="right")) - 1
        if i < 0:
            return levels[0]
        if i >= len(knots) - 1:
            return levels[-1]
        share = min(1.0, max(0.0, (score - knots[i]) / (knots[i + 1] - knots[i])))
        return levels[i] + share * (levels[i + 1] - levels[i])

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
    positive: np.ndarray,
    negative: np.ndarray,
    fallback_half_score: float,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
) -> Calibration:
    """Fit P(correct | score) by isotonic regression.

    Args:
        positive: (P,) scores of true individuals.
        negative: (Q,) scores of wrong individuals.
        fallback_half_score: used by `Calibration.unfitted` when either class has fewer
            than 10 scores.
        weights: how much each positive and each negative counts (1 each by default).
    """
    if len(positive) < _MIN_PAIRS or len(negative) < _MIN_PAIRS:
        return Calibration.unfitted(fallback_half_score)
    scores = np.concatenate([positive, negative]).astype(np.float64)
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    counts = np.ones(len(scores)) if weights is None else np.concatenate(weights)
    # Equal scores must share one probability, so they start as one block.
    unique, inverse = np.unique(scores, return_inverse=True)
    label_sums = np.bincount(inverse, weights=labels * counts)
    label_counts = np.bincount(inverse, weights=counts)
    # Pool adjacent violators over blocks of (sum of labels, count, lowest, highest score).
    sums: list[float] = []
    counts: list[float] = []
    starts: list[float] = []
    ends: list[float] = []
    for score, label_sum, count in zip(unique, label_sums, label_counts, strict=True):
        sums.append(float(label_sum))
        counts.append(float(count))
        starts.append(float(score))
        ends.append(float(score))
        while len(sums) > 1 and sums[-2] / counts[-2] >= sums[-1] / counts[-1]:
            merged_sum, merged_count, merged_end = sums.pop(), counts.pop(), ends.pop()
            sums[-1] += merged_sum
            counts[-1] += merged_count
            ends[-1] = merged_end
            starts.pop()
    # Laplace smoothing keeps the ends off exactly 0 and 1: a few dozen pairs do not
    # justify certainty. It pulls small blocks harder towards 0.5 than large ones, which
    # can reverse the pooled order, so the running maximum restores monotonicity.
    levels = np.maximum.accumulate(
        [(s + 0.5) / (c + 1.0) for s, c in zip(sums, counts, strict=True)]
    ).tolist()
    # Each block is flat from its lowest to its highest score; between blocks, where no
    # data fell, the curve is linear.
    knots: list[float] = []
    probabilities: list[float] = []
    for start, end, level in zip(starts, ends, levels, strict=True):
        knots += [float(start), float(end)] if end > start else [float(start)]
        probabilities += [level, level] if end > start else [level]
    return Calibration(
        scores=knots,
        probabilities=[float(p) for p in probabilities],
        fitted=True,
        positives=len(positive),
        negatives=len(negative),
    )


def calibration_queries(
    labels: Mapping[int, str], limit: int, queryable: Callable[[int], bool] = lambda _: True
) -> list[int]:
    """The entries to query, leave-one-out, when fitting: those whose individual has
    another entry to be found, `limit` at most (a fixed random sample, so refits of one
    gallery agree).

    Args:
        labels: entry id -> individual id, for every entry that can be found.
        limit: most queries.
        queryable: which entries can be queries (a centroid has no photo to query with).
    """
    counts = Counter(labels.values())
    ids = sorted(i for i, label in labels.items() if counts[label] > 1 and queryable(i))
    if len(ids) > limit:
        ids = sorted(np.random.default_rng(0).choice(ids, limit, replace=False).tolist())
    return ids


class Harvest(NamedTuple):
    """Labelled scores for a fit, each with the weight it counts with."""

    positives: np.ndarray
    negatives: np.ndarray
    positive_weights: np.ndarray
    negative_weights: np.ndarray

    def fit(self, fallback_half_score: float) -> Calibration:
        weights = (self.positive_weights, self.negative_weights)
        return fit_isotonic(self.positives, self.negatives, fallback_half_score, weights)


def new_share(labels: Mapping[int, str]) -> float:
    """The share of queries to assume show an individual the catalogue lacks: the share
    of its photos that started an individual when enrolled, within `_NEW_SHARE_RANGE`."""
    if not labels:
        return _NEW_SHARE_RANGE[1]
    share = len(set(labels.values())) / len(labels)
    return float(np.clip(share, *_NEW_SHARE_RANGE))


def harvest(
    queries: Iterable[tuple[str, Mapping[str, float]]], missing: float, new: float
) -> Harvest:
    """Labelled scores for a fit, from leave-one-out queries.

    The probability shown is read above all for the best candidate, so each query gives
    the sample identification would give: its best candidate's score, right or wrong.
    Its individual is in the catalogue, though, and a survey photo's may not be; for
    that case each query also gives its best wrong score as a wrong best candidate. The
    two samples count `1 - new` and `new`, so the fit sees known and new individuals in
    the proportion the catalogue expects.

    Args:
        queries: (true individual, individual -> score) of each query searched with its
            own entry left out.
        missing: the score of a query with no wrong individual found.
        new: the share of queries expected to show an individual the catalogue lacks
            (`new_share`).
    """
    positives: list[float] = []
    negatives: list[float] = []
    negative_weights: list[float] = []
    for truth, scores in queries:
        wrong = max((v for k, v in scores.items() if k != truth), default=missing)
        true = scores.get(truth)
        if true is not None and true > wrong:
            positives.append(true)
        else:
            negatives.append(wrong)
            negative_weights.append(1.0 - new)
        negatives.append(wrong)
        negative_weights.append(new)
    return Harvest(
        np.asarray(positives, dtype=np.float64),
        np.asarray(negatives, dtype=np.float64),
        np.full(len(positives), 1.0 - new),
        np.asarray(negative_weights, dtype=np.float64),
    )
