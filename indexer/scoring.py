"""Scores from descriptor neighbours: LNBNN votes and spatial verification.

LNBNN (local naive Bayes nearest neighbour; McCann & Lowe, CVPR 2012, as used by
HotSpotter) weighs each match by how much closer it is than the (K+1)-th neighbour, so
descriptors common to every photo (water ripples, glare, padding) vote almost nothing.
"""

from __future__ import annotations

import cv2
import msgspec
import numpy as np

__all__ = ["Votes", "image_scores", "lnbnn_votes", "one_per_keypoint", "verify"]

SCALE_RANGE = (1 / 32, 32.0)
"""Plausible scale of a query photo relative to a gallery photo of the same animal. A
transform outside it is degenerate: RANSAC can collapse many query points onto one
gallery point (scale near 0) and count them all as inliers."""


class Votes(msgspec.Struct, frozen=True, kw_only=True):
    """Weighted correspondences between one query and the gallery, one row each.

    Attributes:
        query_keypoint: (P,) int64 row of the query keypoint.
        image_id: (P,) int64 gallery photo.
        keypoint: (P,) int64 keypoint number within that photo.
        weight: (P,) float32 LNBNN weight, > 0.
    """

    query_keypoint: np.ndarray
    image_id: np.ndarray
    keypoint: np.ndarray
    weight: np.ndarray


def lnbnn_votes(
    distances: np.ndarray, image_ids: np.ndarray, keypoints: np.ndarray, k: int
) -> Votes:
    """Turn K+1 nearest neighbours per query descriptor into LNBNN votes.

    Each query descriptor votes at most once per gallery photo (its nearest descriptor in
    that photo): repeated structure in one photo must not outvote a distinct match.

    Args:
        distances: (M, K+1) float32 ascending; column K is the normaliser.
        image_ids: (M, K+1) int64, -1 where missing.
        keypoints: (M, K+1) int64.
        k: K, the number of voting neighbours.
    """
    if distances.shape[1] < k + 1:
        raise ValueError(f"need {k + 1} neighbours per descriptor, got {distances.shape[1]}")
    normaliser = distances[:, k : k + 1]
    # Missing neighbours are +inf; inf - inf is NaN and is filtered out below.
    with np.errstate(invalid="ignore"):
        weight = normaliser - distances[:, :k]
    ids = image_ids[:, :k]
    valid = (ids >= 0) & np.isfinite(weight) & (weight > 0)
    for j in range(1, k):
        valid[:, j] &= ~(ids[:, :j] == ids[:, j : j + 1]).any(axis=1)
    rows, cols = np.nonzero(valid)
    return Votes(
        query_keypoint=rows.astype(np.int64),
        image_id=ids[rows, cols],
        keypoint=keypoints[rows, cols],
        weight=weight[rows, cols].astype(np.float32),
    )


def image_scores(votes: Votes) -> dict[int, float]:
    """Sum of vote weights per gallery photo."""
    if len(votes.image_id) == 0:
        return {}
    unique, inverse = np.unique(votes.image_id, return_inverse=True)
    totals = np.bincount(inverse, weights=votes.weight)
    return dict(zip(unique.tolist(), totals.tolist(), strict=True))


def one_per_keypoint(keypoint: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Indices of the votes that keep each gallery keypoint's heaviest vote only.

    `lnbnn_votes` already lets each query descriptor vote once per photo; this makes the
    correspondences one-to-one. Without it a generic gallery keypoint (a glint, a blob)
    that many query descriptors land on lets RANSAC collapse them all onto it: on
    right-whale crops rotated by 15 degrees, such collapsed transforms (scale ~0, one to
    three gallery keypoints) outscored the true match with 28-56 "inliers".

    Args:
        keypoint: (P,) int64 gallery keypoint of each vote (votes of one gallery photo).
        weight: (P,) float32 their weights.
    """
    order = np.lexsort((-weight, keypoint))
    ordered = keypoint[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return order[first]


def verify(
    query_points: np.ndarray,
    gallery_points: np.ndarray,
    weights: np.ndarray,
    tolerance: float,
) -> np.ndarray:
    """RANSAC check that matches agree on one similarity transform (rotation, scale,
    translation); flukes and fins are near-planar, and a full homography overfits a
    handful of chance matches. A transform whose scale is outside `SCALE_RANGE` counts
    as no match. Pass one-to-one correspondences (`one_per_keypoint`).

    Args:
        query_points: (P, 2) float32 query keypoint positions.
        gallery_points: (P, 2) float32 matched gallery keypoint positions.
        weights: (P,) float32 LNBNN weights of the matches.
        tolerance: reprojection error allowed, in gallery pixels.

    Returns:
        (P,) bool: which matches are inliers; none below 3 matches.
    """
    none = np.zeros(len(weights), dtype=bool)
    if len(weights) < 3:
        return none
    transform, inliers = cv2.estimateAffinePartial2D(
        query_points,
        gallery_points,
        method=cv2.RANSAC,
        ransacReprojThreshold=tolerance,
        maxIters=500,
        confidence=0.99,
    )
    if inliers is None or not SCALE_RANGE[0] <= np.hypot(*transform[:, 0]) <= SCALE_RANGE[1]:
        return none
    return inliers.ravel().astype(bool)
