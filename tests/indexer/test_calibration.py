"""Isotonic calibration of raw scores."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.calibration import Calibration, fit_isotonic, harvest, new_share


def test_too_few_pairs_give_the_unfitted_fallback() -> None:
    calibration = fit_isotonic(np.array([5.0, 6.0]), np.array([1.0]), fallback_half_score=10.0)
    assert calibration.fitted is False
    assert calibration.probability(10.0) == pytest.approx(0.5)
    assert calibration.probability(0.0) == pytest.approx(0.0)


def test_separable_scores_map_to_near_certainty() -> None:
    rng = np.random.default_rng(1)
    positives = rng.uniform(50, 100, 200)
    negatives = rng.uniform(0, 40, 200)
    calibration = fit_isotonic(positives, negatives, 10.0)
    assert calibration.fitted is True
    assert calibration.positives == 200 and calibration.negatives == 200
    assert calibration.probability(80.0) > 0.95
    assert calibration.probability(10.0) < 0.05


def test_overlapping_scores_are_monotone_and_bounded() -> None:
    rng = np.random.default_rng(2)
    positives = rng.normal(60, 20, 300)
    negatives = rng.normal(40, 20, 300)
    calibration = fit_isotonic(positives, negatives, 10.0)
    grid = np.linspace(-50, 150, 400)
    probabilities = np.array([calibration.probability(s) for s in grid])
    assert np.all(np.diff(probabilities) >= -1e-12)
    assert probabilities.min() > 0.0 and probabilities.max() < 1.0
    assert calibration.probability(50.0) == pytest.approx(0.5, abs=0.15)


def test_survives_a_json_round_trip() -> None:
    import msgspec

    calibration = fit_isotonic(np.arange(20.0) + 20, np.arange(20.0), 10.0)
    decoded = msgspec.json.decode(msgspec.json.encode(calibration), type=Calibration)
    assert decoded == calibration


def test_smoothing_never_reverses_the_order() -> None:
    # A large pooled block and a small one above it: smoothing pulls the small block
    # further towards 0.5, which used to put P(10000) below P(150).
    calibration = fit_isotonic(
        np.array([100.0] * 19 + [200.0]), np.array([100.0] + [1.0] * 10), 50.0
    )
    grid = np.linspace(0.0, 20000.0, 2001)
    probabilities = [calibration.probability(float(s)) for s in grid]
    assert np.all(np.diff(probabilities) >= 0)
    assert calibration.probability(10000.0) >= calibration.probability(150.0)


def test_harvest_labels_each_best_candidate_and_a_new_individuals_best() -> None:
    harvested = harvest(
        [
            ("a", {"a": 3.0, "b": 5.0, "c": 1.0}),  # true but second: b is a wrong best
            ("b", {"a": 2.0}),  # true not found
            ("c", {"c": 9.0, "a": 4.0}),  # true first
            ("d", {"d": 1.0}),  # nothing wrong found
        ],
        -1.0,
        new=0.2,
    )
    assert harvested.positives.tolist() == [9.0, 1.0]
    assert harvested.positive_weights.tolist() == pytest.approx([0.8, 0.8])
    # Each query's best wrong score twice: as a wrong best candidate of a known
    # individual (when the true one did not rank first) and as a new individual's best.
    assert harvested.negatives.tolist() == [5.0, 5.0, 2.0, 2.0, 4.0, -1.0]
    assert harvested.negative_weights.tolist() == pytest.approx([0.8, 0.2, 0.8, 0.2, 0.2, 0.2])


def test_the_new_share_weights_how_often_a_low_score_is_right() -> None:
    # At score 1 half the best candidates are right: a catalogue expecting more new
    # individuals must trust that score less.
    queries = [("a", {"a": 1.0, "b": 0.5})] * 20 + [("a", {"b": 1.0, "a": 0.5})] * 20
    low = [harvest(queries, 0.0, new=share).fit(10.0).probability(1.0) for share in (0.05, 0.5)]
    assert low[0] > low[1]
    assert low[0] == pytest.approx((20 * 0.95 + 0.5) / (20 * 0.95 + 20 + 1), abs=1e-6)


def test_new_share_is_the_share_of_photos_that_started_an_individual() -> None:
    labels = {i: f"ind-{i % 20}" for i in range(100)}
    assert new_share(labels) == pytest.approx(0.2)
    assert new_share({1: "a", 2: "a", 3: "a", 4: "a"} | {i: "b" for i in range(5, 100)}) == 0.05
    assert new_share({}) == 0.5


def test_weights_count_as_repeated_samples() -> None:
    rng = np.random.default_rng(3)
    positives, negatives = rng.normal(60, 20, 50), rng.normal(40, 20, 50)
    doubled = fit_isotonic(np.repeat(positives, 2), np.repeat(negatives, 2), 10.0)
    weighted = fit_isotonic(positives, negatives, 10.0, (np.full(50, 2.0), np.full(50, 2.0)))
    assert weighted.scores == doubled.scores
    assert weighted.probabilities == pytest.approx(doubled.probabilities)


def test_the_curve_is_monotone_between_knots_a_subnormal_distance_apart() -> None:
    curve = Calibration(scores=[0.0, 1e-323, 2.0], probabilities=[0.1, 0.2, 0.9], fitted=True)

    values = [curve.probability(s) for s in (-1.0, 0.0, 5e-324, 1e-323, 1.0, 2.0, 3.0)]

    assert values == sorted(values)
    assert values[0] == 0.1 and values[2] == pytest.approx(0.15) and values[-1] == 0.9
    assert curve.probability(1.0) == pytest.approx(0.55)
