"""Fitting the score calibrations on the gallery itself: a sample of labelled photos is
queried against the rest of the gallery (leave-one-out), and each query's best true and
best wrong score are the positives and negatives of the fit (`calibration.harvest`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import msgspec

from embeddings.protocol import LocalFeatures
from indexer.calibration import Calibration, calibration_queries, fit_isotonic, harvest
from indexer.decision import UNFITTED_HALF_COSINE, UNFITTED_HALF_SCORE, Calibrations
from indexer.deep_search import CENTROID_BASE, DeepSearch
from indexer.follower import Follower
from indexer.local_search import LocalSearch
from indexer.results import Progress
from indexer.store import Store

__all__ = ["Calibrator", "calibration_due", "fit_calibrations", "fit_deep"]

CALIBRATION_QUERIES = 300
"""Leave-one-out queries per fit: a few hundred pairs give a smooth isotonic curve, and
each costs one search."""
# Fewer new photos than this never trigger a refit: ten more pairs barely move the curve.
_REFIT_MIN_NEW = 10


def fit_calibrations(
    store: Store,
    extractor: tuple[str, str],
    local: LocalSearch,
    deep: DeepSearch | None,
    progress: Progress | None = None,
) -> Calibrations:
    """Fit the local (and deep) calibration on the searches' current contents.

    Only upright features are stored, so these queries are never searched under roll
    hypotheses.

    Args:
        progress: progress(done, total) over the leave-one-out queries.
    """
    photos = len(local.labels())
    queries = _local_queries(store, extractor, local, progress)
    local_fit = fit_isotonic(*harvest(queries, missing=0.0), UNFITTED_HALF_SCORE)
    if deep is None:
        return Calibrations(local=local_fit, photos=photos)
    return Calibrations(local=local_fit, deep=fit_deep(deep), photos=photos)


def calibration_due(calibrations: Calibrations, photos: int) -> bool:
    """Whether the catalogue grew enough since the calibrations were fitted to fit them
    again: by a quarter, and by at least `_REFIT_MIN_NEW` photos."""
    grown = photos - calibrations.photos
    return grown >= max(_REFIT_MIN_NEW, calibrations.photos // 4)


def fit_deep(deep: DeepSearch) -> Calibration:
    """Fit the deep calibration alone (cosine -> probability)."""
    return fit_isotonic(*harvest(_deep_queries(deep), missing=-1.0), UNFITTED_HALF_COSINE)


def _local_queries(
    store: Store, extractor: tuple[str, str], local: LocalSearch, progress: Progress | None
) -> Iterator[tuple[str, Mapping[str, float]]]:
    labels = local.labels()
    queries = calibration_queries(labels, CALIBRATION_QUERIES)
    for done, image_id in enumerate(queries, start=1):
        if progress is not None:
            progress(done, len(queries))
        row = store.feature(image_id, *extractor)
        if row is None or not isinstance(row.features, LocalFeatures):
            continue
        best: dict[str, float] = {}
        for item in local.rank(row.features, exclude=[image_id]):
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
    """

    def __init__(self, store: Store, key: str, follower: Follower, deep: DeepSearch | None) -> None:
        self.store = store
        self.key = key
        self.follower = follower
        self.deep = deep
        self._current = Calibrations()
        self._id = 0

    @property
    def stored(self) -> bool:
        """Whether the database holds calibrations of this setup."""
        return self.store.calibration(self.key) is not None

    def current(self) -> Calibrations:
        """The latest calibrations committed by any process (reloaded when a newer one
        was committed since this process last looked)."""
        if self.follower.calibration_id != self._id:
            saved = self.store.calibration(self.key)
            if saved is not None:
                self._id = saved[0]
                self._current = msgspec.json.decode(saved[1], type=Calibrations)
        return self._current

    def refit(self, progress: Progress | None = None) -> None:
        """Fit on the catalogue as it is now and commit the result."""
        local = self.follower.local
        fitted = fit_calibrations(self.store, self.follower.extractor, local, self.deep, progress)
        self._id = self.store.save_calibration(self.key, msgspec.json.encode(fitted))
        self._current = fitted

    def refit_if_due(self, progress: Progress | None = None) -> bool:
        """Refit if the catalogue grew enough since the last fit (`calibration_due`).

        Returns:
            Whether it refitted.
        """
        self.follower.catch_up()
        if not calibration_due(self.current(), len(self.follower.local.labels())):
            return False
        self.refit(progress)
        return True
