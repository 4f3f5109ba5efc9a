"""The decision: candidates grouped by individual, probabilities that never rise along
the list and sum to at most 1, and the open-set call on the best one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.calibration import Calibration, fit_isotonic
from indexer.decision import Calibrations, decide
from indexer.deep_search import DeepHit
from indexer.local_search import RankedImage

scores = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
cosines = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)


@st.composite
def cases(draw):  # type: ignore[no-untyped-def]
    n_photos = draw(st.integers(0, 30))
    labels = {i: f"ind-{draw(st.integers(0, 9))}" for i in range(1, n_photos + 1)}
    ranked = sorted(
        (
            RankedImage(image_id=i, score=s, lnbnn=s, verified=0.0, inliers=0)
            for i, s in zip(labels, draw(st.lists(scores, min_size=n_photos, max_size=n_photos)))
        ),
        key=lambda r: r.score,
        reverse=True,
    )
    local = fit_isotonic(
        np.array(draw(st.lists(scores, min_size=10, max_size=40))),
        np.array(draw(st.lists(scores, min_size=10, max_size=40))),
        300_000.0,
    )
    deep_hits = None
    if draw(st.booleans()):
        names = draw(st.lists(st.sampled_from([f"ind-{i}" for i in range(14)]), unique=True))
        deep_hits = {name: DeepHit(draw(cosines), None) for name in names}
    deep = fit_isotonic(
        np.array(draw(st.lists(cosines, min_size=10, max_size=40))),
        np.array(draw(st.lists(cosines, min_size=10, max_size=40))),
        0.5,
    )
    return ranked, labels, Calibrations(local=local, deep=deep), deep_hits


@settings(max_examples=300, deadline=None)
@given(cases(), st.integers(1, 50), st.floats(0.0, 1.0))
def test_probabilities_never_rise_along_the_candidates(case, top_k, threshold) -> None:  # type: ignore[no-untyped-def]
    ranked, labels, calibrations, deep_hits = case
    decision = decide(
        ranked,
        labels,
        calibrations=calibrations,
        deep_hits=deep_hits,
        searched_locally=set(labels.values()),
        threshold=threshold,
        top_k=top_k,
    )
    probabilities = [c.probability for c in decision.candidates]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) <= 1.0
    assert all(0.0 <= p <= 1.0 for p in probabilities), (probabilities, calibrations)
    assert len({c.individual_id for c in decision.candidates}) == len(decision.candidates)
    assert len(decision.candidates) <= top_k
    assert decision.matched == bool(probabilities and round(probabilities[0], 9) > threshold)
    if deep_hits is None:
        # Local evidence alone: each individual is scored by its best photo, and the
        # order never contradicts the scores.
        local_scores = [c.local.score for c in decision.candidates if c.local]
        assert local_scores == sorted(local_scores, reverse=True)


def test_the_best_candidate_keeps_its_calibrated_probability_and_the_next_what_is_left() -> None:
    calibration = Calibration(scores=[0.0, 1000.0], probabilities=[0.0, 0.9], fitted=True)
    ranked = [
        RankedImage(image_id=1, score=1000.0, lnbnn=1000.0, verified=0.0, inliers=24),
        RankedImage(image_id=2, score=990.0, lnbnn=990.0, verified=0.0, inliers=20),
        RankedImage(image_id=3, score=10.0, lnbnn=10.0, verified=0.0, inliers=0),
    ]
    decision = decide(
        ranked,
        {1: "a", 2: "b", 3: "c"},
        calibrations=Calibrations(local=calibration),
        deep_hits=None,
        searched_locally={"a", "b", "c"},
        threshold=0.5,
        top_k=3,
    )
    best, second, third = decision.candidates
    assert calibration.probability(990.0) > 0.5  # alone, each would be a confident match
    assert best.probability == 0.9
    assert second.probability == pytest.approx(0.1)
    assert third.probability == pytest.approx(0.0, abs=1e-12)
    assert decision.matched


@pytest.mark.parametrize(
    ("level", "matched"),
    [(0.5000000000000001, False), (0.5, False), (0.4999999999999999, False), (0.51, True)],
)
def test_a_best_candidate_at_the_threshold_is_not_a_match(level: float, matched: bool) -> None:
    # A flat calibration step of as many right as wrong pairs sits at 0.5, give or take
    # rounding (0.5000000000000001 in a 45-photo catalogue): a coin flip, not a match.
    calibration = Calibration(
        scores=[0.0, 1000.0, 2000.0, 3000.0],
        probabilities=[0.0, level, level, 0.9],
        fitted=True,
    )
    ranked = [RankedImage(image_id=1, score=1500.0, lnbnn=1500.0, verified=0.0, inliers=9)]
    decision = decide(
        ranked,
        {1: "a"},
        calibrations=Calibrations(local=calibration),
        deep_hits=None,
        searched_locally={"a"},
        threshold=0.5,
        top_k=3,
    )
    assert decision.candidates[0].probability == level
    assert decision.matched is matched
