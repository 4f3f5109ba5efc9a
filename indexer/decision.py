"""From ranked evidence to a decision: group photos by individual, calibrate, fuse the
local and deep probabilities, and call the best a match or the photo a new individual."""

from __future__ import annotations

from collections.abc import Mapping, Set

import msgspec

from indexer.calibration import Calibration
from indexer.deep_search import DeepHit
from indexer.local_search import RankedImage

__all__ = ["Calibrations", "Decision", "Scored", "decide", "is_match"]

# Until a calibration is fitted, probability 0.5 at this much ranking score: a verified
# match weight of 300 (true matches on the dev sets mostly verify above 1000) times the
# inlier weight.
UNFITTED_HALF_SCORE = 300_000.0
# Until fitted: probability 0.5 at cosine 0.5. Same-individual ArcFace cosines are mostly
# above that, different individuals mostly below (Deng et al. 2019, fig. 4).
UNFITTED_HALF_COSINE = 0.5
# Probabilities are compared with the threshold at this many decimals: a calibration
# step at exactly the threshold comes out a rounding error above or below it.
_DECIDING_DIGITS = 9


class Calibrations(msgspec.Struct, frozen=True, kw_only=True):
    """Score -> probability maps of each kind of evidence."""

    local: Calibration = Calibration.unfitted(UNFITTED_HALF_SCORE)
    deep: Calibration = Calibration.unfitted(UNFITTED_HALF_COSINE)
    photos: int = 0
    """Searchable photos when they were fitted: the catalogue's growth since then says
    when to fit them again."""


class Scored(msgspec.Struct, frozen=True, kw_only=True):
    """One individual's evidence and probability."""

    individual_id: str
    probability: float
    local: RankedImage | None
    """Its best photo by local features; None when only the deep search found it."""
    deep: DeepHit | None


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    candidates: list[Scored]
    matched: bool


def decide(
    ranked: list[RankedImage],
    labels: Mapping[int, str],
    *,
    calibrations: Calibrations,
    deep_hits: Mapping[str, DeepHit] | None,
    searched_locally: Set[str],
    threshold: float,
    top_k: int,
) -> Decision:
    """Group ranked photos into individuals (each scored by its best photo) and decide.

    With `deep_hits` (the deep search's best hit per individual), each individual's
    probability is the mean of its calibrated local-feature probability and its
    calibrated embedding probability (WildFusion, Cermak et al. 2024: calibrate each
    score, then average). An individual with no photo holding local features (a
    centroid) has only the embedding probability; one the deep search did not reach is
    given the probability of the lowest cosine it read, an upper bound.

    The best candidate's probability is its calibrated one; each next candidate's is
    capped at what the candidates above it leave of 1, so that the list is a
    distribution over exclusive answers, the rest being "someone else or new".

    Args:
        ranked: photos, best first.
        labels: image id -> individual id of every searchable photo.
        calibrations: the fitted maps.
        deep_hits: the deep search's best hit per individual; None without a deep model.
        searched_locally: individuals with at least one photo the local search covers.
        threshold: the best candidate's probability at or below which the photo is new:
            a match must be more likely than the threshold, so at the default 0.5 a coin
            flip (a flat calibration step of as many right as wrong pairs) is not one.
        top_k: candidates kept.
    """
    best: dict[str, RankedImage] = {}
    for item in ranked:
        individual = labels.get(item.image_id)
        # A photo deleted since it was ranked is no longer evidence.
        if individual is not None and individual not in best:
            best[individual] = item
    probabilities = {name: calibrations.local.probability(i.score) for name, i in best.items()}
    hits = deep_hits or {}
    if deep_hits is not None:
        probabilities = _fused(probabilities, hits, calibrations.deep, searched_locally)

    # Ties of probability (a flat stretch of the calibration) are broken by the score
    # the probability is a function of, so the order never contradicts the evidence.
    def rank(name: str) -> tuple[float, float, float]:
        local, hit = best.get(name), hits.get(name)
        return (probabilities[name], local.score if local else 0.0, hit.cosine if hit else -1.0)

    order = sorted(probabilities, key=rank, reverse=True)[:top_k]
    candidates = []
    # The calibration says how often a best candidate with this evidence is right. A
    # photo shows one individual, so the candidates below share at most what the ones
    # above leave: two near-equal candidates cannot both be 0.9. What they leave is taken
    # from their running sum, not subtracted step by step: the subtractions' rounding let
    # the sum exceed 1 by an ulp (1.0000000000000002), while a + fl(1 - a) never does.
    given = 0.0
    for name in order:
        probability = min(probabilities[name], 1.0 - given)
        given += probability
        candidates.append(
            Scored(
                individual_id=name,
                probability=probability,
                local=best.get(name),
                deep=hits.get(name),
            )
        )
    matched = bool(candidates) and is_match(candidates[0].probability, threshold)
    return Decision(candidates=candidates, matched=matched)


def is_match(probability: float, threshold: float) -> bool:
    """Whether a best candidate this probable is a match: above the threshold, once
    rounded, so a coin flip at the default 0.5 is not one (see `decide`)."""
    return round(probability, _DECIDING_DIGITS) > threshold


def _fused(
    local: dict[str, float],
    deep_hits: Mapping[str, DeepHit],
    deep_calibration: Calibration,
    searched_locally: Set[str],
) -> dict[str, float]:
    """Mean of the calibrated local and deep probabilities of every individual either
    search found (see `decide`)."""
    floor = min((hit.cosine for hit in deep_hits.values()), default=-1.0)
    fused = {}
    for name in list(local) + [n for n in deep_hits if n not in local]:
        hit = deep_hits.get(name)
        deep = deep_calibration.probability(hit.cosine if hit else floor)
        if name in local:
            fused[name] = (local[name] + deep) / 2
        elif name in searched_locally:
            # Searched by local features and nothing matched: zero local evidence.
            fused[name] = (0.0 + deep) / 2
        else:
            fused[name] = deep
    return fused
