"""Fitting the score calibrations on the gallery itself: a sample of labelled photos is
queried against the rest of the gallery (leave-one-out) as identification queries them,
roll hypotheses included when the photo's file is kept, and the scores they reach are the
labelled samples of the fit (`calibration.harvest`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import msgspec

from embeddings.images import load_photo
from embeddings.keypoints import RootSiftExtractor
from embeddings.photo import ImageError
from embeddings.protocol import LocalFeatures, Locator
from indexer.calibration import Calibration, calibration_queries, harvest, new_share
from indexer.decision import UNFITTED_HALF_COSINE, UNFITTED_HALF_SCORE, Calibrations
from indexer.deep_search import CENTROID_BASE, DeepSearch
from indexer.follower import Follower
from indexer.local_search import LocalSearch, Rolled, SearchParameters, query_features
from indexer.photo_files import PhotoFiles
from indexer.results import Progress
from indexer.store import Store

__all__ = ["Calibrator", "calibration_due", "fit_calibrations", "fit_deep", "photo_queries"]

CALIBRATION_QUERIES = 300
"""Leave-one-out queries per fit: a few hundred pairs give a smooth isotonic curve, and
each costs one search."""
# Fewer new photos than this never trigger a refit: ten more pairs barely move the curve.
_REFIT_MIN_NEW = 10
# A catalogue that keeps changing (photos enrolled one by one, each within a check of the
# last) is refitted anyway at this many checks in a row: five minutes at the service's.
_MOVING_CHECKS = 10
# Stored photos were accepted when enrolled: decoded under a generous limit.
_STORED_MAX_PIXELS = 200_000_000


QueryOf = Callable[[int], tuple[LocalFeatures, Rolled | None] | None]
"""image id -> its features as a query, and its roll hypotheses when its file is kept."""


def fit_calibrations(
    query_of: QueryOf,
    local: LocalSearch,
    deep: DeepSearch | None,
    progress: Progress | None = None,
) -> Calibrations:
    """Fit the local (and deep) calibration on the searches' current contents.

    Args:
        query_of: how to query with an enrolled photo (`photo_queries`).
        progress: progress(done, total) over the leave-one-out queries.
    """
    labels = local.labels()
    new = new_share(labels)
    queries = _local_queries(query_of, local, progress)
    local_fit = harvest(queries, missing=0.0, new=new).fit(UNFITTED_HALF_SCORE)
    if deep is None:
        return Calibrations(local=local_fit, photos=len(labels))
    return Calibrations(local=local_fit, deep=fit_deep(deep, new), photos=len(labels))


def calibration_due(calibrations: Calibrations, photos: int) -> bool:
    """Whether the catalogue grew enough since the calibrations were fitted to fit them
    again: by a quarter, and by at least `_REFIT_MIN_NEW` photos."""
    grown = photos - calibrations.photos
    return grown >= max(_REFIT_MIN_NEW, calibrations.photos // 4)


def fit_deep(deep: DeepSearch, new: float) -> Calibration:
    """Fit the deep calibration alone (cosine -> probability).

    Args:
        new: the share of queries expected to show a new individual (`new_share`).
    """
    return harvest(_deep_queries(deep), missing=-1.0, new=new).fit(UNFITTED_HALF_COSINE)


def photo_queries(
    store: Store,
    photos: PhotoFiles,
    extractor: RootSiftExtractor,
    params: SearchParameters,
    locator: Locator | None = None,
) -> QueryOf:
    """Query with the photo's stored file, searched as identification searches it (roll
    hypotheses included: without them the fit misses the weak queries they rescue; the
    animals' region when a locator finds them; described by `query_features`); with its
    stored upright features when it has no file."""

    def query_of(image_id: int) -> tuple[LocalFeatures, Rolled | None] | None:
        row = store.image(image_id)
        if row is not None and photos.has(row.sha256):
            try:
                photo = load_photo(photos.read(row.sha256), max_pixels=_STORED_MAX_PIXELS)
            except ImageError:
                photo = None
            if photo is not None:
                region = None if locator is None else locator.region(photo)
                detection = extractor.detect(photo, region)
                return query_features(detection, params), detection.describe_rolls
        stored = store.feature(image_id, extractor.name, extractor.version)
        if stored is None or not isinstance(stored.features, LocalFeatures):
            return None
        return stored.features, None

    return query_of


def _local_queries(
    query_of: QueryOf, local: LocalSearch, progress: Progress | None
) -> Iterator[tuple[str, Mapping[str, float]]]:
    labels = local.labels()
    queries = calibration_queries(labels, CALIBRATION_QUERIES)
    for done, image_id in enumerate(queries, start=1):
        if progress is not None:
            progress(done, len(queries))
        query = query_of(image_id)
        if query is None:
            continue
        features, rolled = query
        best: dict[str, float] = {}
        for item in local.rank(features, rolled=rolled, exclude=[image_id]):
            individual = labels.get(item.image_id)
            if individual is not None and individual not in best:
                best[individual] = item.score
        yield labels[image_id], best


def _deep_queries(deep: DeepSearch) -> Iterator[tuple[str, Mapping[str, float]]]:
    labels = deep.labels()
    photos = calibration_queries(labels, CALIBRATION_QUERIES, lambda i: i < CENTROID_BASE)
    for image_id in photos:
        vector = deep.vector(image_id)
        if vector is None:
            continue
        hits = deep.search(vector, exclude=[image_id])
        yield labels[image_id], {name: hit.cosine for name, hit in hits.items()}


class Calibrator:
    """The calibrations of one extractor and model setup: the latest any process
    committed to the database, refitted here when the catalogue has grown enough.

    Args:
        store: the database, where the calibrations are kept.
        key: the setup ("rootsift-<version>[+<model>-<version>]"); other settings' fits
            are never used.
        follower: tells when another process committed newer calibrations.
        deep: the deep search, if a model is loaded.
        query_of: how to query with an enrolled photo (`photo_queries`).
    """

    def __init__(
        self,
        store: Store,
        key: str,
        follower: Follower,
        deep: DeepSearch | None,
        query_of: QueryOf,
    ) -> None:
        self.store = store
        self.key = key
        self.follower = follower
        self.deep = deep
        self.query_of = query_of
        self._current = Calibrations()
        self._id = 0
        self._last_seen: tuple[int, int] | None = None
        """The catalogue's state at the last `refit_if_settled`: (epoch, feature id)."""
        self._moving = 0
        """How many `refit_if_settled` calls in a row found the catalogue changed."""

    @property
    def stored(self) -> bool:
        """Whether the database holds calibrations of this setup."""
        return self.store.calibration(self.key) is not None

    def current(self) -> Calibrations:
        """The latest calibrations committed by any process (reloaded when a newer one
        was committed since this process last looked)."""
        if self.follower.calibration_id != self._id:
            self._adopt()
        return self._current

    def _adopt(self) -> None:
        """Take the latest calibrations committed to the database, if any."""
        saved = self.store.calibration(self.key)
        if saved is not None:
            self._id = saved[0]
            self._current = msgspec.json.decode(saved[1], type=Calibrations)

    def refit(self, progress: Progress | None = None) -> bool:
        """Fit on the catalogue as it is now and commit the result, unless another
        process committed a fit while this one ran: the first committed is kept, so all
        answer from one curve (two fits of one catalogue differ, each searching its own
        process's index).

        Returns:
            Whether this fit was committed.
        """
        saved = self.store.calibration(self.key)
        replacing = 0 if saved is None else saved[0]
        fitted = fit_calibrations(self.query_of, self.follower.local, self.deep, progress)
        new_id = self.store.save_calibration(
            self.key, msgspec.json.encode(fitted), replacing=replacing
        )
        if new_id is None:
            self._adopt()
            return False
        self._id, self._current = new_id, fitted
        return True

    def refit_if_settled(self, progress: Progress | None = None) -> bool:
        """`refit_if_due`, once the catalogue has held still since the previous call (or
        has kept changing for `_MOVING_CHECKS` calls).

        For a process that checks now and then (the service, every half minute): it leaves
        the fit of an enrolment in progress to that enrolment's end, where the enrolling
        process fits (`whaleid enrol` does). The fit is then made at the size the
        enrolment ends at, whenever the checks came; a check that fitted halfway left the
        end of the enrolment not due, and the probabilities depended on its timing.

        Returns:
            Whether it committed a new fit.
        """
        self.follower.catch_up()
        state = (self.follower.epoch, self.follower.max_feature_id)
        self._moving = 0 if state == self._last_seen else self._moving + 1
        self._last_seen = state
        if 0 < self._moving < _MOVING_CHECKS:
            return False
        self._moving = 0
        return self.refit_if_due(progress)

    def refit_if_due(self, progress: Progress | None = None) -> bool:
        """Refit if the catalogue grew enough since the last fit (`calibration_due`).

        Returns:
            Whether it committed a new fit.
        """
        self.follower.catch_up()
        if not calibration_due(self.current(), len(self.follower.local.labels())):
            return False
        return self.refit(progress)
