"""Local-feature search: RootSIFT descriptors of every searchable photo in one FAISS index,
scored by LNBNN votes, the best re-ranked by RANSAC verification, and searched again under
roll hypotheses when nothing verifies upright.

The index mirrors the database's features of one extractor version; `indexer.follower`
keeps it in step with the database and `indexer.index_files` saves and loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import numpy as np

from embeddings.keypoints import DetectedKeypoints
from embeddings.protocol import LocalFeatures
from indexer.descriptor_index import CODES, DescriptorIndex, Fill
from indexer.point_files import PhotoPoints
from indexer.read_write_lock import ReadWriteLock
from indexer.results import Stages
from indexer.scoring import image_scores, lnbnn_votes, one_per_keypoint, verify

__all__ = [
    "LocalSearch",
    "RankedImage",
    "Rolled",
    "SearchParameters",
    "positions_of",
    "query_features",
]

# Extra neighbours fetched when photos are excluded from a search (leave-one-out), so
# that K+1 remain after dropping the excluded photo's own descriptors.
_EXCLUDE_SLACK = 4
# RANSAC tolerance as a fraction of the gallery photo's keypoint spread: the same
# tolerance for a 300 px crop and a 3600 px frame.
_RANSAC_TOLERANCE = 0.03
# Matched point pairs an answer carries per candidate: enough to draw, small to send.
MAX_PAIRS = 50


class SearchParameters(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Algorithm constants of the local search; chosen on the development sets (the
    measurements are in the commit history and reports/), not user settings."""

    neighbours: int = 4
    """K of LNBNN; K=8 was worse than 4 (../shared/notes/weight-free-baseline.md)."""
    shortlist: int = 20
    """Photos re-ranked by spatial verification; the right one must be among them."""
    inlier_weight: float = 1000.0
    """Ranks by verified evidence, LNBNN breaking ties (beat weights of 1-4 on flukes)."""
    exact_search_max: int = 10_000
    """Descriptors searched exactly; above, an IVF index. One thread, real RootSIFT: exact
    took 152 ms a query photo at 21 000 descriptors (20 photos), the IVF 25 ms."""
    nprobe: int = 16
    """IVF lists visited per query descriptor (recall against speed)."""
    codes: str = CODES
    """How the IVF lists hold each descriptor (see `indexer.descriptor_index.CODES`)."""
    roll_angles: tuple[float, ...] = (15.0, -15.0)
    """Roll hypotheses: upright descriptors tolerate about 8 degrees of camera roll."""
    roll_below_inliers: int = 10
    """Below this many inliers upright, try the roll hypotheses (true matches: 25-45)."""
    roll_keypoints: int = 500
    """Strongest keypoints of each level described and searched per roll hypothesis, of
    up to 1 500: every new individual's query pays for this fallback in full. Against all
    of them, paired leave-one-out top-1 over an index built once: flukes +0.003, right
    whales +0.006; in `whaleid evaluate` (enrolled photo by photo) flukes -0.004; rotated
    15 degrees, 300 queries each: -0.010 and -0.017 (750: -0.003 each, and no faster)."""
    query_keypoints: int = 1000
    """Strongest keypoints of each level a query crop is described and searched by, of
    up to 1 500 (enrolled photos keep all of theirs; see `query_features`): describing
    and searching take time in proportion to them. Paired leave-one-out top-1 over an
    index built once, against all of them: flukes -0.002, right whales -0.003; rotated 15
    degrees, 300 queries each: +0.007 and +0.003. At 20 000 replicated photos identify
    p50 202 -> 181 ms (800: 169 ms, but flukes -0.007)."""
    min_query_features: int = 10
    """Fewer keypoints than this: blank, blurred or tiny, too little to match."""


class RankedImage(msgspec.Struct, frozen=True, kw_only=True):
    """One gallery photo's scores for one query."""

    image_id: int
    score: float
    """`lnbnn + inlier_weight * verified`: what photos and individuals are ranked by."""
    lnbnn: float
    verified: float
    inliers: int
    pairs: list[tuple[float, float, float, float]] = []
    """Up to `MAX_PAIRS` RANSAC inliers, (query x, y, gallery x, y) in each photo's
    pixels as loaded, heaviest first."""


class _Entry(msgspec.Struct, frozen=True):
    individual_id: str
    points: np.ndarray  # (N, 2) float32 keypoint positions
    tolerance: float


Rolled = Callable[[Sequence[float], int], list[LocalFeatures]]
"""rolled(angles, strongest) -> the query's features described at each of these camera
rolls (degrees), in order, from at most `strongest` keypoints of each level (by SIFT
response); called only when the upright search verifies weakly."""


class LocalSearch:
    """The searchable local features of one extractor version. Thread-safe: searches run
    side by side, a change waits for them and holds them off."""

    def __init__(
        self, params: SearchParameters, upright: bool, scratch: Path | None = None
    ) -> None:
        """Args:
        params: the algorithm's constants.
        upright: whether the extractor describes keypoints upright (then rolls help).
        scratch: where a build writes its exact rows (`DescriptorIndex.build`).
        """
        self.params = params
        self._upright = upright
        self._scratch = scratch
        self._lock = ReadWriteLock()
        self._index = DescriptorIndex(128, params.exact_search_max, params.nprobe, params.codes)
        self._entries: dict[int, _Entry] = {}

    # ------------------------------------------------------------------ contents

    @property
    def index(self) -> DescriptorIndex:
        return self._index

    @property
    def descriptors(self) -> int:
        return self._index.size

    @property
    def photos(self) -> int:
        """How many photos are searchable."""
        return len(self._entries)

    def labels(self) -> dict[int, str]:
        """image id -> individual id of every searchable photo."""
        with self._lock.reading():
            return {image_id: e.individual_id for image_id, e in self._entries.items()}

    def build(
        self,
        photos: Iterable[tuple[int, str, LocalFeatures]],
        fill: Fill | None = None,
        stages: Stages | None = None,
    ) -> None:
        """Start over from (image id, individual, features) rows, with a new index of
        their descriptors (`fill` and `stages`: see `DescriptorIndex.build`). The rows are
        read once and need not all be in memory: only their keypoints are kept."""
        entries: dict[int, _Entry] = {}

        def described() -> Iterator[tuple[int, np.ndarray]]:
            for image_id, individual_id, features in photos:
                entries[image_id] = _entry(individual_id, features.keypoints)
                yield image_id, features.descriptors

        index = DescriptorIndex(
            128, self.params.exact_search_max, self.params.nprobe, self.params.codes
        )
        index.build(described(), fill=fill, scratch=self._scratch, stages=stages)
        with self._lock.writing():
            self._index = index
            self._entries = entries

    def resume(
        self,
        index: DescriptorIndex,
        photos: Iterable[tuple[int, str, np.ndarray, float]],
        indexed: Iterable[int] = (),
    ) -> None:
        """Start over from an index that holds the photos' descriptors already (a saved
        one), given each photo's positions: (image id, individual, (N, 2) keypoint
        positions, RANSAC tolerance), as `positions_of` or `points` give them.

        Args:
            index: the index.
            photos: the searchable photos' positions.
            indexed: the photos `index` holds; those not among `photos` (deleted since
                it was saved) are removed from it.
        """
        entries = {
            image_id: _Entry(individual_id, points, tolerance)
            for image_id, individual_id, points, tolerance in photos
        }
        for image_id in set(indexed) - entries.keys():
            index.remove(image_id)
        with self._lock.writing():
            self._index = index
            self._entries = entries

    def points(self) -> PhotoPoints:
        """The keypoint positions and RANSAC tolerance of every searchable photo, to be
        saved beside the index (`indexer.point_files`)."""
        with self._lock.reading():
            return {i: (e.points, e.tolerance) for i, e in self._entries.items()}

    @property
    def outgrown(self) -> bool:
        """Whether the index no longer suits its size: time to `replace` it (the
        descriptors live in the database, not here)."""
        return self._index.outgrown

    def add(self, image_id: int, individual_id: str, features: LocalFeatures) -> None:
        with self._lock.writing():
            self._entries[image_id] = _entry(individual_id, features.keypoints)
            self._index.add(image_id, features.descriptors)

    def remove(self, image_ids: Iterable[int]) -> None:
        with self._lock.writing():
            for image_id in image_ids:
                if self._entries.pop(image_id, None) is not None:
                    self._index.remove(image_id)

    def relabel(self, labels: dict[int, str]) -> None:
        """Give photos new individual ids (image id -> individual id)."""
        with self._lock.writing():
            for image_id, individual_id in labels.items():
                entry = self._entries.get(image_id)
                if entry is not None and entry.individual_id != individual_id:
                    self._entries[image_id] = msgspec.structs.replace(
                        entry, individual_id=individual_id
                    )

    # ------------------------------------------------------------------ search

    def enough(self, features: LocalFeatures) -> bool:
        """Whether a query holds enough keypoints for its matches to mean anything."""
        return len(features.descriptors) >= self.params.min_query_features

    def rank(
        self,
        features: LocalFeatures,
        *,
        rolled: Rolled | None = None,
        exclude: Iterable[int] = (),
        verify_also: Iterable[int] = (),
    ) -> list[RankedImage]:
        """Score gallery photos against query features, best first.

        Shortlisted photos (the best by LNBNN, and `verify_also`) are spatially verified,
        and every photo is ranked by `RankedImage.score`. When the best photo verifies
        fewer than `roll_below_inliers` inliers and `rolled` is given, the query is
        searched again as described at each of `roll_angles` (a rolled camera) from its
        `roll_keypoints` strongest keypoints, and each photo keeps its best score over the
        hypotheses.

        Args:
            features: the query's local features.
            rolled: the query described at other rolls; called only when needed, once
                for every roll.
            exclude: photo ids to leave out, as if not enrolled (leave-one-out).
            verify_also: photo ids to verify even if LNBNN does not shortlist them (the
                deep model's shortlist); only photos with votes can verify.
        """
        excluded = set(exclude)
        also = list(verify_also)
        ranked = self._rank_once(features, excluded, also)
        angles = self.params.roll_angles
        if rolled is None or not angles or not self._upright:
            return ranked
        if ranked and ranked[0].inliers >= self.params.roll_below_inliers:
            return ranked
        best = {item.image_id: item for item in ranked}
        # Every hypothesis described in one call (one scale-space pyramid), then each
        # searched in its own thread: FAISS releases the GIL, so a new individual's answer
        # (every hypothesis tried) waits for one search instead of all of them.
        with ThreadPoolExecutor(len(angles)) as pool:
            views = list(
                pool.map(
                    lambda view: self._rank_once(view, excluded, also),
                    rolled(angles, self.params.roll_keypoints),
                )
            )
        for view in views:
            for item in view:
                if item.image_id not in best or item.score > best[item.image_id].score:
                    best[item.image_id] = item
        return sorted(best.values(), key=lambda r: r.score, reverse=True)

    def _rank_once(
        self, features: LocalFeatures, excluded: set[int], verify_also: list[int]
    ) -> list[RankedImage]:
        k = self.params.neighbours
        with self._lock.reading():
            if self._index.size == 0 or len(features.descriptors) == 0:
                return []
            wanted = k + 1 + (_EXCLUDE_SLACK if excluded else 0)
            distances, image_ids, keypoints = self._index.search(
                features.descriptors, min(wanted, self._index.size)
            )
            entries = dict(self._entries)
        if excluded:
            distances, image_ids, keypoints = _drop(
                distances, image_ids, keypoints, excluded, k + 1
            )
        if distances.shape[1] < k + 1:
            return []
        votes = lnbnn_votes(distances, image_ids, keypoints, k)
        scores = image_scores(votes)
        shortlist = sorted(scores, key=scores.__getitem__, reverse=True)[: self.params.shortlist]
        shortlist += [i for i in verify_also if i in scores and i not in shortlist]
        query_points = features.keypoints[:, :2]
        verified: dict[int, tuple[float, int, list[tuple[float, float, float, float]]]] = {}
        for image_id in shortlist:
            entry = entries.get(image_id)
            if entry is None:
                continue
            rows = np.flatnonzero(votes.image_id == image_id)
            rows = rows[one_per_keypoint(votes.keypoint[rows], votes.weight[rows])]
            query_xy = query_points[votes.query_keypoint[rows]]
            gallery_xy = entry.points[votes.keypoint[rows]]
            weights = votes.weight[rows]
            inliers = verify(query_xy, gallery_xy, weights, entry.tolerance)
            heaviest = np.flatnonzero(inliers)[np.argsort(-weights[inliers], kind="stable")]
            pairs = np.hstack([query_xy, gallery_xy])[heaviest[:MAX_PAIRS]]
            verified[image_id] = (
                float(weights[inliers].sum()),
                int(inliers.sum()),
                [tuple(round(float(v), 1) for v in row) for row in pairs],
            )
        ranked = []
        for image_id, lnbnn in scores.items():
            if image_id not in entries:
                continue
            inlier_score, count, pairs = verified.get(image_id, (0.0, 0, []))
            ranked.append(
                RankedImage(
                    image_id=image_id,
                    score=lnbnn + self.params.inlier_weight * inlier_score,
                    lnbnn=lnbnn,
                    verified=inlier_score,
                    inliers=count,
                    pairs=pairs,
                )
            )
        ranked.sort(key=lambda r: r.score, reverse=True)
        return ranked


def query_features(detection: DetectedKeypoints, params: SearchParameters) -> LocalFeatures:
    """A query's upright features as the search takes them: a crop (`enlarged`) by its
    `query_keypoints` strongest keypoints of each level, a larger region by all of them.
    In a frame the water, glare and boats compete for the strongest keypoints and the
    animal's fainter ones are in the rest: capped there too, whole Happywhale frames
    lost 8 of 65 answers and top-1 0.769 -> 0.708 (paired, weight-free)."""
    return detection.describe(strongest=params.query_keypoints if detection.enlarged else None)


def positions_of(keypoints: np.ndarray) -> tuple[np.ndarray, float]:
    """(N, 2) float32 positions of (N, 4) keypoints, and the RANSAC tolerance they get."""
    points = np.ascontiguousarray(keypoints[:, :2], dtype=np.float32)
    spread = float(np.hypot(*np.ptp(points, axis=0))) if len(points) else 1.0
    return points, max(1.0, _RANSAC_TOLERANCE * spread)


def _entry(individual_id: str, keypoints: np.ndarray) -> _Entry:
    return _Entry(individual_id, *positions_of(keypoints))


def _drop(
    distances: np.ndarray,
    image_ids: np.ndarray,
    keypoints: np.ndarray,
    excluded: set[int],
    keep: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove neighbours from excluded photos, keeping the first `keep` of each row."""
    drop = np.isin(image_ids, list(excluded))
    # A stable sort on the drop flag moves kept neighbours left in their original order.
    order = np.argsort(drop, axis=1, kind="stable")[:, :keep]
    rows = np.arange(len(distances))[:, None]
    distances = distances[rows, order]
    image_ids = image_ids[rows, order]
    keypoints = keypoints[rows, order]
    dropped = drop[rows, order]
    distances = np.where(dropped, np.inf, distances)
    image_ids = np.where(dropped, -1, image_ids)
    return distances, image_ids, keypoints
