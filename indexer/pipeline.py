"""The one identification pipeline: decode -> gate -> locate -> deep search -> local
search -> decision. The HTTP endpoints, `whaleid identify`, `whaleid evaluate` and the
benchmarks all call `Pipeline.identify` (or `identify_photo` for a photo already decoded).

Each stage is a callable on one `Query`, in the manner of wildlife-tools'
`SimilarityPipeline`: it reads what earlier stages left, adds its own result, and may
reject the photo, which ends the chain. The gate only casts doubt: a photo it doubts is
searched still, and rejected unless it matches a known individual. A stage whose model
is not installed is not in the chain, and every answer lists the stages that ran. The
deep search runs before the local search because its shortlist is verified by local
features.

The locator may find several animals in a whole frame: the local search and the decision
then run once per animal's box, and the answer holds one detection each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from embeddings.images import load_photo
from embeddings.keypoints import RootSiftExtractor
from embeddings.photo import Box, ImageError, Photo
from embeddings.protocol import GlobalExtractor, Locator
from indexer.decision import Calibrations, decide
from indexer.deep_search import DeepHit, DeepSearch
from indexer.follower import Follower
from indexer.local_search import LocalSearch, RankedImage, query_features
from indexer.results import (
    FUSED,
    GATE_NOT_APPLIED,
    LOW_CONFIDENCE,
    MAX_TOP_K,
    NO_LOCATOR,
    WEIGHT_FREE,
    Candidate,
    Detection,
    Evidence,
    ExtractorInfo,
    GateResult,
    Identification,
    RejectionReason,
)
from indexer.store import Store

__all__ = ["Gate", "LocateStage", "Pipeline", "Query", "Stage"]

NO_CETACEAN = "the gate found no whale or dolphin in the photo"
OVERRULED = "; its score was below the threshold, overruled by a match to a known individual"


class GateCheck(Protocol):
    score: float
    threshold: float
    passed: bool


class Gate(Protocol):
    """A cetacean / not-cetacean classifier (`embeddings.gate.ClipGate`,
    `embeddings.lite0.Lite0Gate`)."""

    name: str
    version: str
    threshold: float
    calibration: str
    """Where the threshold comes from."""

    def check(self, photo: Photo) -> GateCheck: ...


@dataclass
class Query:
    """One photo on its way through the stages."""

    photo: Photo
    exclude: frozenset[int]
    """Photos to leave out of every search, as if not enrolled (leave-one-out)."""
    gate: GateResult = GATE_NOT_APPLIED
    boxes: list[Box] = field(default_factory=list)
    """The animals found, hottest first; empty: the whole photo is searched."""
    deep_hits: dict[str, DeepHit] | None = None
    ranked: list[tuple[Box, list[RankedImage]]] = field(default_factory=list)
    """Each searched box with its ranked gallery photos."""
    doubted: bool = False
    """The gate found no cetacean: rejected unless a known individual matches."""
    skipped: set[str] = field(default_factory=set)
    """Stages that had nothing to do for this photo (not listed among those that ran)."""
    rejection: tuple[RejectionReason, str] | None = None

    @property
    def identification(self) -> str:
        """How this photo was identified: fused when the deep search ran for it."""
        return FUSED if self.deep_hits is not None else WEIGHT_FREE


class Stage(Protocol):
    name: str

    def __call__(self, query: Query) -> None: ...


class GateStage:
    name = "gate"

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.description = (
            f"applied: {gate.name}-{gate.version}, threshold {gate.threshold:.3f}"
            f" ({gate.calibration})"
        )

    def __call__(self, query: Query) -> None:
        check = self.gate.check(query.photo)
        query.gate = GateResult(
            applied=True,
            score=check.score,
            detail=f"{self.gate.name}-{self.gate.version}, threshold {check.threshold:.3f}",
        )
        # Not rejected here: a photo the gate doubts is still searched, and rejected only
        # if no known individual matches it (with a calibrated probability: an
        # uncalibrated one is no evidence). ImageNet has no humpback or right-whale
        # class, and a fluke seen from behind or a head from the air can score low while
        # its markings verify against the catalogue: a match is evidence of a whale too.
        query.doubted = not check.passed


class LocateStage:
    name = "locate"

    def __init__(self, locator: Locator, max_boxes: int) -> None:
        self.locator = locator
        self.max_boxes = max_boxes

    def __call__(self, query: Query) -> None:
        query.boxes = self.locator.locate(query.photo)[: self.max_boxes]


class DeepSearchStage:
    name = "deep search"

    def __init__(self, embedder: GlobalExtractor, deep: DeepSearch, follower: Follower) -> None:
        self.embedder = embedder
        self.deep = deep
        self.follower = follower

    def __call__(self, query: Query) -> None:
        if query.photo.long_side <= self.embedder.crop_side:
            query.skipped.add(self.name)  # a crop: its markings decide
            return
        vector = self.embedder.extract(query.photo).vector
        with self.follower.lock:
            query.deep_hits = self.deep.search(vector, exclude=query.exclude)


class LocalSearchStage:
    name = "local search"

    def __init__(self, extractor: RootSiftExtractor, local: LocalSearch) -> None:
        self.extractor = extractor
        self.local = local

    def __call__(self, query: Query) -> None:
        shortlisted = list((query.deep_hits or {}).values())[: self.local.params.shortlist]
        verify_also = [hit.image_id for hit in shortlisted if hit.image_id is not None]
        for box in query.boxes or [Box.whole(query.photo)]:
            detection = self.extractor.detect(query.photo, box)
            features = query_features(detection, self.local.params)
            if not self.local.enough(features):
                # With a deep model the embedding is still evidence; without, there is none.
                if query.deep_hits is not None:
                    query.ranked.append((box, []))
                continue
            ranked = self.local.rank(
                features,
                rolled=detection.describe_rolls,
                exclude=query.exclude,
                verify_also=verify_also,
            )
            query.ranked.append((box, ranked))
        if not query.ranked:
            query.rejection = ("low_confidence", LOW_CONFIDENCE)


class Pipeline:
    """Identify photos against the gallery's searches.

    Args:
        store: the database (species and file names of candidates).
        follower: keeps the searches current; caught up before every photo.
        stages: the installed search stages, in order.
        calibrations: the current score calibrations (they change with a refit).
        extractor: the local-feature extractor (named in every answer).
        models: name-version of the deep models in the chain.
        threshold: best probability below which a photo shows a new individual.
        top_k: candidates returned by default.
        max_pixels: larger photos are refused before decoding.
    """

    def __init__(
        self,
        *,
        store: Store,
        follower: Follower,
        stages: Sequence[Stage],
        calibrations: Callable[[], Calibrations],
        extractor: RootSiftExtractor,
        models: list[str],
        threshold: float,
        top_k: int,
        max_pixels: int | None = None,
    ) -> None:
        self.store = store
        self.follower = follower
        self.stages = list(stages)
        self.calibrations = calibrations
        self.extractor = ExtractorInfo(name=extractor.name, version=extractor.version)
        self.models = models
        self.threshold = threshold
        self.top_k = top_k
        self.max_pixels = max_pixels
        self.identification = _identification(
            [s.embedder for s in self.stages if isinstance(s, DeepSearchStage)]
        )
        """How photos are identified (each answer says how it was)."""

    @property
    def gate_description(self) -> str:
        """The gate and its threshold, or that none is applied."""
        gates = [s.description for s in self.stages if isinstance(s, GateStage)]
        return gates[0] if gates else GATE_NOT_APPLIED.detail

    @property
    def locator_description(self) -> str:
        """The locator, or that photos are searched whole."""
        for stage in self.stages:
            if isinstance(stage, LocateStage):
                locator = stage.locator
                return f"{locator.name}-{locator.version}, up to {stage.max_boxes} animals a photo"
        return NO_LOCATOR

    def identify(
        self,
        content: bytes,
        *,
        name: str = "",
        exclude: Iterable[int] = (),
        top_k: int | None = None,
    ) -> Identification:
        """Decode a photo file's bytes and identify it; an unusable file is answered
        "rejected" with a reason, never raised."""
        started = time.perf_counter()
        try:
            photo = load_photo(content, max_pixels=self.max_pixels)
        except ImageError as exc:
            return self.rejected(name, exc.reason, exc.message)
        decoded = {"decode": 1000 * (time.perf_counter() - started)}
        return self.identify_photo(photo, name=name, exclude=exclude, top_k=top_k, timings=decoded)

    def identify_photo(
        self,
        photo: Photo,
        *,
        name: str = "",
        exclude: Iterable[int] = (),
        top_k: int | None = None,
        timings: dict[str, float] | None = None,
    ) -> Identification:
        """Run the stages on a decoded photo.

        Args:
            photo: the photo.
            name: its name in the answer.
            exclude: photo ids to leave out of the searches (leave-one-out).
            top_k: candidates to return; `top_k` of the pipeline when None.
            timings: milliseconds already spent on this photo, by stage.
        """
        self.follower.catch_up()
        timings = dict(timings or {})
        ran = ["decode"]
        query = Query(photo=photo, exclude=frozenset(exclude))
        for stage in self.stages:
            started = time.perf_counter()
            stage(query)
            if stage.name not in query.skipped:
                timings[stage.name] = 1000 * (time.perf_counter() - started)
                ran.append(stage.name)
            if query.rejection is not None:
                return self._rejection(query, name, timings, ran)
        started = time.perf_counter()
        detections, calibrated = self._decide(query, top_k or self.top_k)
        timings["decision"] = 1000 * (time.perf_counter() - started)
        ran.append("decision")
        # The animal the catalogue is surest of speaks for the photo; the first (hottest)
        # one when no candidate is more probable.
        best = max(
            detections,
            key=lambda d: d.candidates[0].probability if d.candidates else -1.0,
        )
        gate = query.gate
        if query.doubted:
            if best.decision != "match" or not calibrated:
                query.rejection = ("not_a_marine_mammal", NO_CETACEAN)
                return self._rejection(query, name, timings, ran)
            gate = msgspec.structs.replace(gate, detail=gate.detail + OVERRULED)
        timings["total"] = sum(timings.values())
        return Identification(
            image=name,
            decision=best.decision,
            candidates=best.candidates,
            timings_ms=timings,
            extractor=self.extractor,
            index_version=self.index_version,
            calibrated=calibrated,
            identification=query.identification,
            bbox=best.bbox,
            gate=gate,
            models=self.models,
            stages=ran,
            detections=detections,
        )

    def _rejection(
        self, query: Query, name: str, timings: dict[str, float], ran: list[str]
    ) -> Identification:
        assert query.rejection is not None
        reason, detail = query.rejection
        photo = query.photo
        return Identification(
            image=name,
            decision="rejected",
            rejection_reason=reason,
            detail=detail,
            timings_ms={**timings, "total": sum(timings.values())},
            extractor=self.extractor,
            identification=query.identification,
            bbox=[0, 0, photo.width, photo.height],
            gate=query.gate,
            stages=ran,
        )

    def rejected(self, name: str, reason: RejectionReason, detail: str) -> Identification:
        """The answer for a photo that could not be used at all."""
        return Identification(
            image=name,
            decision="rejected",
            rejection_reason=reason,
            detail=detail,
            extractor=self.extractor,
            identification=self.identification,
            stages=["decode"],
        )

    @property
    def index_version(self) -> str:
        """Identifies the searchable state: extractor version, epoch and last feature,
        and the deep models' versions."""
        follower = self.follower
        version = f"{self.extractor.name}-{self.extractor.version}"
        version += f"/e{follower.epoch}/f{follower.max_feature_id}"
        return "+".join([version, *self.models])

    def _decide(self, query: Query, top_k: int) -> tuple[list[Detection], bool]:
        """One detection per searched box, and whether its probabilities are calibrated."""
        calibrations = self.calibrations()
        labels = self.follower.local.labels()
        searched_locally = set(labels.values())
        detections = []
        for box, ranked in query.ranked:
            decision = decide(
                ranked,
                labels,
                calibrations=calibrations,
                deep_hits=query.deep_hits,
                searched_locally=searched_locally,
                threshold=self.threshold,
                top_k=min(top_k, MAX_TOP_K),
            )
            candidates = []
            for scored in decision.candidates:
                individual = self.store.individual(scored.individual_id)
                candidates.append(
                    Candidate(
                        individual_id=scored.individual_id,
                        species=individual.species if individual else None,
                        probability=scored.probability,
                        score=scored.local.score if scored.local else 0.0,
                        similarity=None if scored.deep is None else scored.deep.cosine,
                        evidence=self._evidence(scored.local, scored.deep),
                    )
                )
            detections.append(
                Detection(
                    bbox=box.as_list(),
                    decision="match" if decision.matched else "new_individual",
                    candidates=candidates,
                )
            )
        fitted = calibrations.local.fitted and (query.deep_hits is None or calibrations.deep.fitted)
        return detections, fitted

    def _evidence(self, local: RankedImage | None, hit: DeepHit | None) -> Evidence:
        image_id = local.image_id if local else (hit.image_id if hit else None)
        if image_id is None:
            model = self.models[0] if self.models else "deep model"
            return Evidence(image_id=None, source_name=f"{model} centroid", inliers=0)
        stored = self.store.image(image_id)
        return Evidence(
            image_id=image_id,
            source_name=stored.source_name if stored else "",
            inliers=local.inliers if local else 0,
            pairs=local.pairs if local else [],
        )


def _identification(embedders: list[GlobalExtractor]) -> str:
    """How the pipeline identifies photos, given its deep embedder (if any)."""
    if not embedders:
        return WEIGHT_FREE
    if embedders[0].crop_side:
        return (
            f"{FUSED} for photos larger than {embedders[0].crop_side} px;"
            f" {WEIGHT_FREE} for crops no larger"
        )
    return FUSED
