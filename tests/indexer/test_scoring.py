"""LNBNN votes, per-photo scores and spatial verification on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.scoring import image_scores, lnbnn_votes, one_per_keypoint, verify


def test_no_neighbours_give_no_votes() -> None:
    empty = np.zeros((0, 5))
    votes = lnbnn_votes(empty.astype(np.float32), empty.astype(np.int64), empty.astype(np.int64), 4)
    assert len(votes.weight) == 0
    assert image_scores(votes) == {}


def test_weights_are_distance_below_the_normaliser() -> None:
    distances = np.array([[1.0, 2.0, 3.0]], np.float32)
    ids = np.array([[10, 11, 12]], np.int64)
    keypoints = np.array([[0, 5, 7]], np.int64)
    votes = lnbnn_votes(distances, ids, keypoints, k=2)
    assert votes.image_id.tolist() == [10, 11]
    assert votes.keypoint.tolist() == [0, 5]
    assert votes.weight.tolist() == pytest.approx([2.0, 1.0])
    assert image_scores(votes) == pytest.approx({10: 2.0, 11: 1.0})


def test_one_vote_per_photo_per_query_descriptor() -> None:
    distances = np.array([[1.0, 1.5, 2.0, 4.0]], np.float32)
    ids = np.array([[10, 10, 11, 12]], np.int64)
    votes = lnbnn_votes(distances, ids, np.zeros_like(ids), k=3)
    assert votes.image_id.tolist() == [10, 11]
    assert votes.weight.tolist() == pytest.approx([3.0, 2.0])


def test_missing_neighbours_do_not_vote() -> None:
    distances = np.array([[1.0, np.inf, np.inf]], np.float32)
    ids = np.array([[10, -1, -1]], np.int64)
    votes = lnbnn_votes(distances, ids, np.zeros_like(ids), k=2)
    assert len(votes.weight) == 0


def test_too_few_columns_is_an_error() -> None:
    with pytest.raises(ValueError, match="need 5 neighbours"):
        lnbnn_votes(
            np.zeros((3, 4), np.float32), np.zeros((3, 4), np.int64), np.zeros((3, 4), np.int64), 4
        )


def test_verify_counts_points_of_one_similarity_transform() -> None:
    rng = np.random.default_rng(0)
    query = rng.uniform(0, 300, (40, 2)).astype(np.float32)
    angle = np.deg2rad(12)
    rotation = 1.3 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    gallery = (query @ rotation.T + [25, -10]).astype(np.float32)
    gallery[30:] = rng.uniform(0, 300, (10, 2))  # 10 wrong matches
    weights = np.ones(40, np.float32)
    weights[:30] = 2.0
    inliers = verify(query, gallery, weights, tolerance=3.0)
    assert inliers.tolist() == [True] * 30 + [False] * 10
    assert weights[inliers].sum() == pytest.approx(60.0)


@pytest.mark.parametrize("count", [0, 1, 2])
def test_verify_needs_three_matches(count: int) -> None:
    points = np.zeros((count, 2), np.float32)
    inliers = verify(points, points, np.ones(count, np.float32), 3.0)
    assert inliers.shape == (count,) and not inliers.any()


def test_one_per_keypoint_keeps_each_gallery_keypoints_heaviest_vote() -> None:
    keypoint = np.array([5, 3, 5, 3, 9], np.int64)
    weight = np.array([0.1, 0.7, 0.4, 0.2, 0.3], np.float32)
    kept = one_per_keypoint(keypoint, weight)
    assert sorted(kept.tolist()) == [1, 2, 4]


def test_verify_refuses_a_transform_that_collapses_matches_onto_one_point() -> None:
    # Many query points voting for one generic gallery point: a similarity of scale ~0
    # fits them all within tolerance, but it is no match.
    rng = np.random.default_rng(0)
    query = rng.uniform(0, 300, (40, 2)).astype(np.float32)
    gallery = np.repeat(np.array([[150.0, 150.0]], np.float32), 40, axis=0)
    gallery += rng.normal(0, 0.5, gallery.shape).astype(np.float32)
    assert not verify(query, gallery, np.ones(40, np.float32), tolerance=3.0).any()


def test_verify_accepts_a_large_but_plausible_scale_change() -> None:
    rng = np.random.default_rng(1)
    query = rng.uniform(0, 75, (30, 2)).astype(np.float32)
    gallery = 4.0 * query + np.float32(10.0)
    assert verify(query, gallery, np.ones(30, np.float32), tolerance=3.0).all()
