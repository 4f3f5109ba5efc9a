"""The leave-one-out evaluation protocol of `../shared/data/README.md`.

Closed set: every photo whose individual has at least two photos is queried against all
the other photos (its own photo left out of the search, which is the same as enrolling
all the others). Open set: every photo of a random 20 % of individuals is additionally
kept out of the gallery, and a query of theirs is right when the answer is
`new_individual`.

Every query runs through `indexer.pipeline` with its own photo excluded, exactly as the
service would answer it: the gate (a rejected query counts as a miss), the locator, the
deep search and the local search of whichever models are given. The gallery lives in a
temporary folder and is thrown away.

Distractors are photos of other animals enrolled beside the labelled ones, each as its
own individual, and never queried. Leave-one-out on whole frames without them flatters:
a frame can match its own encounter's other frames on sea state, light and boats, and
distractors from other encounters give that shortcut something to pick wrongly.
"""

from __future__ import annotations

import resource
import tempfile
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np

from embeddings.gate_calibration import shows_cetacean
from embeddings.images import load_photo_file
from embeddings.keypoints import KeypointConfig
from embeddings.photo import ImageError
from embeddings.protocol import GlobalExtractor, Locator
from indexer.catalogue import PhotoElsewhere
from indexer.config import EngineConfig
from indexer.decision import is_match
from indexer.gallery import Gallery, Progress
from indexer.pipeline import Gate
from service.photo_sources import ManifestEntry

__all__ = [
    "EvaluationReport",
    "ReliabilityBin",
    "SpeciesScores",
    "ThresholdPoint",
    "evaluate",
]


class SpeciesScores(msgspec.Struct, frozen=True, kw_only=True):
    n_queries: int
    top1: float
    top5: float
    map5: float


class ReliabilityBin(msgspec.Struct, frozen=True, kw_only=True):
    """Queries whose best candidate's probability fell in [low, high)."""

    low: float
    high: float
    queries: int
    predicted: float
    """Mean probability of the best candidate."""
    observed: float
    """Share of them whose best candidate was the right individual."""


class ThresholdPoint(msgspec.Struct, frozen=True, kw_only=True):
    """Open-set quality if `new_individual_threshold` were `threshold`."""

    threshold: float
    precision: float
    recall: float


class EvaluationReport(msgspec.Struct, frozen=True, kw_only=True):
    """Scores of one evaluation run. Times are per query, feature extraction included."""

    n_images: int
    n_individuals: int
    n_queries: int
    top1: float
    top5: float
    map5: float
    query_ms_p50: float
    query_ms_p95: float
    stage_ms_p50: dict[str, float]
    """Median time of each pipeline stage per query."""
    peak_rss_mib: float
    open_set: bool
    extractor: str
    features: KeypointConfig
    engine: EngineConfig
    unreadable: list[str]
    per_species: dict[str, SpeciesScores]
    calibrated: bool
    new_individual_precision: float | None = None
    new_individual_recall: float | None = None
    n_new_queries: int = 0
    known_match_rate: float | None = None
    """Open set: share of known-individual queries answered `match` with the right
    individual first."""
    new_individual_curve: list[ThresholdPoint] = []
    """Open set: `new_individual` precision and recall over thresholds, for choosing
    `engine.new_individual_threshold`."""
    stages: list[str] = []
    """The pipeline stages the queries ran through."""
    n_distractors: int = 0
    """Photos of other animals enrolled beside the labelled ones and never queried."""
    known_called_new: float | None = None
    """Share of queries of enrolled individuals answered `new_individual`."""
    reliability: list[ReliabilityBin] = []
    """The best candidate's probability against how often it was right, by bins of 0.1:
    a calibrated probability has `observed` close to `predicted`."""
    rejected: dict[str, int] = {}
    """Queries the pipeline rejected, by reason (they count as misses)."""


class _Query(msgspec.Struct, frozen=True):
    entry: ManifestEntry
    image_id: int | None
    """Set for gallery photos (left out of their own search); None for held-out ones."""


def evaluate(
    entries: Sequence[ManifestEntry],
    *,
    features: KeypointConfig | None = None,
    engine: EngineConfig | None = None,
    open_set: bool = False,
    seed: int = 0,
    holdout_fraction: float = 0.2,
    embedder: GlobalExtractor | None = None,
    gate: Gate | None = None,
    locator: Locator | None = None,
    distractors: Sequence[ManifestEntry] = (),
    progress: Progress | None = None,
) -> EvaluationReport:
    """Run the protocol on labelled manifest entries (unlabelled ones are ignored).

    Args:
        entries: photos with their individual ids.
        features: extractor settings.
        engine: search settings.
        open_set: also hold out a random `holdout_fraction` of individuals.
        seed: seed of the held-out draw.
        embedder: a deep embedder, searched and fused as in the service.
        gate: a cetacean gate, applied to every query as in the service.
        locator: an animal locator, as in the service.
        distractors: photos enrolled, each as its own individual, and never queried;
            unreadable ones, those too plain to enrol and those whose species starts
            with `not_cetacean` (no animal: ../shared/data/README.md) are skipped.
        progress: progress(done, total) over enrolment and queries together.
    """
    labelled = [e for e in entries if e.individual_id]
    individuals = sorted({e.individual_id for e in labelled})
    held_out: set[str] = set()
    if open_set:
        rng = np.random.default_rng(seed)
        count = max(1, round(holdout_fraction * len(individuals)))
        held_out = set(rng.choice(individuals, count, replace=False).tolist())
    animals = [e for e in distractors if shows_cetacean(e.species)]
    total = 2 * len(labelled) + len(animals)
    done = 0
    unreadable: list[str] = []
    queries: list[_Query] = []
    with tempfile.TemporaryDirectory(prefix="whaleid-eval-") as tmp:
        gallery = Gallery.open(
            Path(tmp),
            features=features,
            engine=engine,
            embedder=embedder,
            gate=gate,
            locator=locator,
        )
        try:
            enrolled_distractors = _enrol_distractors(gallery, animals, progress, total)
            done += len(animals)
            for entry in labelled:
                done += 1
                try:
                    # With its file, as a user enrols it: the calibration fit queries the
                    # stored photos as identification does (roll hypotheses included).
                    photo = load_photo_file(entry.path)
                except ImageError as error:
                    unreadable.append(f"{entry.path}: {error.reason}")
                    continue
                image_id = None
                if entry.individual_id not in held_out:
                    image_id = gallery.catalogue.enrol(
                        photo,
                        entry.individual_id,
                        species=entry.species,
                        source_name=entry.path.name,
                    ).image_id
                queries.append(_Query(entry, image_id))
                if progress is not None:
                    progress(done, total)
            # The normal workflow: enrolment, then the refit it makes due (no rebuild).
            gallery.calibrator.refit_if_due()
            return _score(
                gallery,
                queries,
                held_out,
                progress,
                done,
                done + len(queries),
                n_images=len(labelled),
                n_individuals=len(individuals),
                unreadable=unreadable,
                n_distractors=enrolled_distractors,
            )
        finally:
            gallery.close()


def _enrol_distractors(
    gallery: Gallery, entries: Sequence[ManifestEntry], progress: Progress | None, total: int
) -> int:
    """Enrol each photo as its own individual; returns how many were enrolled."""
    enrolled = 0
    for done, entry in enumerate(entries, start=1):
        try:
            photo = load_photo_file(entry.path)
            gallery.catalogue.enrol(
                photo,
                f"distractor-{done}",
                species=entry.species,
                source_name=entry.path.name,
            )
            enrolled += 1
        except (ImageError, PhotoElsewhere):
            pass  # unreadable, too plain to enrol, or a copy: a distractor less
        if progress is not None:
            progress(done, total)
    return enrolled


def _score(
    gallery: Gallery,
    queries: list[_Query],
    held_out: set[str],
    progress: Progress | None,
    done: int,
    total: int,
    *,
    n_images: int,
    n_individuals: int,
    unreadable: list[str],
    n_distractors: int,
) -> EvaluationReport:
    enrolled: dict[str, set[int]] = {}
    for query in queries:
        if query.image_id is not None:
            enrolled.setdefault(query.entry.individual_id, set()).add(query.image_id)
    ranks: list[int] = []
    species_ranks: dict[str, list[int]] = {}
    times: list[float] = []
    stage_times: dict[str, list[float]] = {}
    new_true = new_false = new_missed = known_right = known_total = 0
    rejected: dict[str, int] = {}
    stages: list[str] = []
    top_probability: list[tuple[float, bool]] = []
    top_right: list[tuple[float, bool]] = []
    for query in queries:
        done += 1
        if progress is not None:
            progress(done, total)
        truth = query.entry.individual_id
        is_new = truth in held_out
        if not is_new and len(enrolled.get(truth, ())) < 2:
            continue
        exclude = [query.image_id] if query.image_id is not None else []
        answer = gallery.pipeline.identify_photo(
            load_photo_file(query.entry.path), exclude=exclude, top_k=5
        )
        stages = answer.stages
        if answer.rejection_reason is not None:
            rejected[answer.rejection_reason] = rejected.get(answer.rejection_reason, 0) + 1
        timings = answer.timings_ms
        times.append(timings["total"])
        for name, ms in timings.items():
            stage_times.setdefault(name, []).append(ms)
        said_new = answer.decision == "new_individual"
        best = answer.candidates[0] if answer.candidates else None
        top_probability.append((best.probability if best else 0.0, is_new))
        if best is not None:
            top_right.append((best.probability, best.individual_id == truth))
        if is_new:
            new_true += said_new
            new_missed += not said_new
            continue
        new_false += said_new
        names = [c.individual_id for c in answer.candidates]
        rank = names.index(truth) + 1 if truth in names else 0
        ranks.append(rank)
        species_ranks.setdefault(query.entry.species or "unknown", []).append(rank)
        known_total += 1
        known_right += (not said_new) and rank == 1
    scores = _rank_scores(ranks)
    open_set = bool(held_out)
    return EvaluationReport(
        n_images=n_images,
        n_individuals=n_individuals,
        n_queries=len(ranks),
        top1=scores.top1,
        top5=scores.top5,
        map5=scores.map5,
        query_ms_p50=_percentile(times, 50),
        query_ms_p95=_percentile(times, 95),
        stage_ms_p50={name: _percentile(t, 50) for name, t in stage_times.items()},
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        open_set=open_set,
        extractor=f"{gallery.extractor.name}-{gallery.extractor.version}",
        features=gallery.extractor.config,
        engine=gallery.engine,
        unreadable=unreadable,
        per_species={name: _rank_scores(r) for name, r in sorted(species_ranks.items())},
        calibrated=gallery.calibrator.current().local.fitted,
        new_individual_precision=(
            new_true / (new_true + new_false) if open_set and new_true + new_false else None
        ),
        new_individual_recall=(
            new_true / (new_true + new_missed) if open_set and new_true + new_missed else None
        ),
        n_new_queries=new_true + new_missed,
        known_match_rate=known_right / known_total if open_set and known_total else None,
        new_individual_curve=_curve(top_probability) if open_set else [],
        stages=stages,
        rejected=rejected,
        known_called_new=new_false / len(ranks) if ranks else None,
        reliability=_reliability(top_right),
        n_distractors=n_distractors,
    )


def _reliability(top_right: list[tuple[float, bool]]) -> list[ReliabilityBin]:
    """Bins of 0.1 of the best candidate's probability (the last one closed)."""
    if not top_right:
        return []
    probabilities = np.array([p for p, _ in top_right])
    right = np.array([r for _, r in top_right], dtype=bool)
    index = np.minimum((probabilities * 10).astype(int), 9)
    return [
        ReliabilityBin(
            low=b / 10,
            high=(b + 1) / 10,
            queries=int((index == b).sum()),
            predicted=float(probabilities[index == b].mean()),
            observed=float(right[index == b].mean()),
        )
        for b in range(10)
        if (index == b).any()
    ]


def _curve(top_probability: list[tuple[float, bool]]) -> list[ThresholdPoint]:
    """Precision and recall of `new_individual` (best probability not above the
    threshold)."""
    probabilities = np.array([p for p, _ in top_probability])
    is_new = np.array([n for _, n in top_probability], dtype=bool)
    points = []
    for threshold in np.round(np.linspace(0.05, 0.95, 19), 2):
        said_new = np.array([not is_match(p, threshold) for p in probabilities], dtype=bool)
        hits = int((said_new & is_new).sum())
        points.append(
            ThresholdPoint(
                threshold=float(threshold),
                precision=hits / int(said_new.sum()) if said_new.any() else 1.0,
                recall=hits / int(is_new.sum()) if is_new.any() else 0.0,
            )
        )
    return points


def _rank_scores(ranks: list[int]) -> SpeciesScores:
    """top-1, top-5 and MAP@5 from 1-based ranks (0 = not in the answer)."""
    r = np.asarray(ranks, dtype=float)
    if len(r) == 0:
        return SpeciesScores(n_queries=0, top1=0.0, top5=0.0, map5=0.0)
    found = (r >= 1) & (r <= 5)
    return SpeciesScores(
        n_queries=len(r),
        top1=float(np.mean(r == 1)),
        top5=float(np.mean(found)),
        map5=float(np.mean(np.where(found, 1.0 / np.maximum(r, 1.0), 0.0))),
    )


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0
