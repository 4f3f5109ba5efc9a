"""An open data folder: the database, the searches derived from it, and the catalogue
and identification pipeline over them.

    with Gallery.open(data_dir) as gallery:
        gallery.catalogue.enrol(photo, "w_1234", species="humpback_whale")
        answer = gallery.pipeline.identify_photo(query_photo)

SQLite (`indexer.store`) holds every photo's label and features, and `<data_dir>/photos/`
the photo files (see `indexer.catalogue`). The descriptor index is
saved under `<data_dir>/index/` (`indexer.index_files`) so that a restart need not
rebuild it; opening resumes from the saved index and catches up with whatever was
committed since, by any process (`indexer.follower`). A missing, damaged or foreign
index is rebuilt from the database.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Self

from embeddings.keypoints import KeypointConfig, RootSiftExtractor
from embeddings.protocol import GlobalExtractor, Locator
from indexer.catalogue import Catalogue
from indexer.config import EngineConfig
from indexer.deep_search import DeepSearch
from indexer.descriptor_index import Fill
from indexer.follower import Follower
from indexer.index_files import IndexState, load_index, save_index
from indexer.local_search import LocalSearch, SearchParameters
from indexer.photo_files import PHOTOS_DIR, PhotoFiles
from indexer.pipeline import (
    DeepSearchStage,
    Gate,
    GateStage,
    LocalSearchStage,
    LocateStage,
    Pipeline,
    Stage,
)
from indexer.refit import Calibrator, photo_queries
from indexer.results import GalleryStats, Progress, Stages
from indexer.store import DATABASE_FILE, Store

__all__ = ["Gallery", "Progress"]

_log = logging.getLogger(__name__)
_INDEX_DIR = "index"


class Gallery:
    """Opens, saves and rebuilds a data folder's searches; see the module docstring."""

    def __init__(
        self,
        store: Store,
        index_dir: Path,
        extractor: RootSiftExtractor,
        *,
        engine: EngineConfig,
        search: SearchParameters,
        embedder: GlobalExtractor | None,
        gate: Gate | None,
        locator: Locator | None,
        max_pixels: int | None,
    ) -> None:
        self.store = store
        self.extractor = extractor
        self.embedder = embedder
        self.engine = engine
        self._index_dir = index_dir
        self.local = LocalSearch(search, upright=extractor.config.upright, scratch=index_dir)
        self.deep = (
            None
            if embedder is None
            else DeepSearch(store, embedder.name, embedder.version, embedder.dim)
        )
        self.follower = Follower(store, self._extractor_key, self.local, self.deep, self.save)
        self.photos = PhotoFiles(index_dir.parent / PHOTOS_DIR)
        self.calibrator = Calibrator(
            store,
            "+".join(
                [f"{extractor.name}-{extractor.version}"]
                + ([f"{embedder.name}-{embedder.version}"] if embedder else [])
            ),
            self.follower,
            self.deep,
            photo_queries(store, self.photos, extractor, search, locator),
        )
        self.catalogue = Catalogue(
            store,
            self.photos,
            extractor,
            embedder,
            self.follower.catch_up,
            min_features=search.min_query_features,
            locator=locator,
        )
        stages: list[Stage] = []
        models: list[str] = []
        if gate is not None:
            stages.append(GateStage(gate))
            models.append(f"{gate.name}-{gate.version}")
        if locator is not None:
            stages.append(LocateStage(locator, self.engine.max_detections))
            models.append(f"{locator.name}-{locator.version}")
        if embedder is not None and self.deep is not None:
            stages.append(DeepSearchStage(embedder, self.deep, self.follower))
            models.insert(0, f"{embedder.name}-{embedder.version}")
        stages.append(LocalSearchStage(extractor, self.local))
        self.pipeline = Pipeline(
            store=store,
            follower=self.follower,
            stages=stages,
            calibrations=self.calibrator.current,
            extractor=extractor,
            models=models,
            threshold=engine.new_individual_threshold,
            top_k=engine.top_k,
            max_pixels=max_pixels,
        )

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        features: KeypointConfig | None = None,
        engine: EngineConfig | None = None,
        search: SearchParameters | None = None,
        embedder: GlobalExtractor | None = None,
        gate: Gate | None = None,
        locator: Locator | None = None,
        max_pixels: int | None = None,
        rebuilding: Stages | None = None,
        calibrating: Progress | None = None,
        load_index: bool = True,
    ) -> Gallery:
        """Open (creating if needed) the gallery stored in `data_dir`.

        Args:
            data_dir: the data folder.
            features: local-feature extractor settings.
            engine: the user's identification settings.
            search: the local search's algorithm constants (tests and benchmarks).
            embedder: a deep embedder: photos are also searched by their embeddings,
                beside any imported centroids of that model, and the evidence fused.
            gate: a cetacean gate, applied before any search.
            locator: finds the animals in whole frames: each is identified on its own,
                and enrolled photos are described in the region of their animals.
            max_pixels: photos larger than this are refused before decoding.
            rebuilding: the stages of a rebuild, if one is needed (`Follower.rebuild`).
            calibrating: progress(done, total) of a calibration fit, if one is needed.
            load_index: False: the searches stay empty and follow nothing until
                `rebuild`, for a caller that rebuilds them anyway (`whaleid index
                rebuild`), which would otherwise first bring the saved index up to date,
                or build it, for nothing.
        """
        data_dir = Path(data_dir)
        store = Store.open(data_dir / DATABASE_FILE)
        try:
            gallery = cls(
                store,
                data_dir / _INDEX_DIR,
                RootSiftExtractor(features),
                engine=engine or EngineConfig(),
                search=search or SearchParameters(),
                embedder=embedder,
                gate=gate,
                locator=locator,
                max_pixels=max_pixels,
            )
            # Files whose row never committed (a crash between the two writes).
            with gallery.photos.removing():
                gallery.photos.sweep(store.image_shas())
            if load_index:
                gallery._load(rebuilding, calibrating)
        except BaseException:
            store.close()
            raise
        return gallery

    def close(self) -> None:
        """Save the index if it changed and close the database."""
        self.save()
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def save(self) -> None:
        """Write the index and its state file, if the searches moved since the last save."""
        with self.follower.lock:
            if not self.follower.changed:
                return
            state = IndexState(
                extractor=self.extractor.name,
                version=self.extractor.version,
                epoch=self.follower.epoch,
                max_feature_id=self.follower.max_feature_id,
                image_ids=sorted(self.local.labels()),
                index_file="",
            )
            save_index(self._index_dir, self.local.index, state, self.local.points())
            self.follower.changed = False

    def rebuild(
        self,
        rebuilding: Stages | None = None,
        fill: Fill | None = None,
        calibrating: Progress | None = None,
    ) -> None:
        """Rebuild the searches from the database and refit the calibrations (`rebuilding`
        and `fill`: see `Follower.rebuild`; `calibrating`: progress of the refit)."""
        with self.follower.lock:
            self.follower.rebuild(rebuilding, fill)
            self.calibrator.refit(calibrating)
            self.save()

    def lacking(self) -> bool:
        """Whether some stored photo lacks the features searched now: enrolled under
        other extractor settings (an upgrade that changed them, or a changed
        `[features]`), so not searched, or before the deep model was installed, so
        searched by its local features only. `catalogue.reextract` then `rebuild` give
        them their features from their stored files."""
        stats = self.stats()
        return stats.images < stats.stored_images or (
            self.deep is not None and stats.embeddings < stats.images
        )

    def stats(self) -> GalleryStats:
        self.follower.catch_up()
        labels = self.local.labels()
        return GalleryStats(
            individuals=len(set(labels.values())),
            images=len(labels),
            descriptors=self.local.descriptors,
            stored_images=self.store.count_images(),
            embeddings=0 if self.deep is None else self.deep.photos,
            centroids=0 if self.deep is None else self.deep.centroids,
        )

    @property
    def _extractor_key(self) -> tuple[str, str]:
        return self.extractor.name, self.extractor.version

    def _load(self, rebuilding: Stages | None, calibrating: Progress | None) -> None:
        """Resume from the saved index when there is one for these settings, else
        rebuild it; fit the calibrations if the database has none for this setup."""
        params = self.local.params
        loaded = load_index(
            self._index_dir,
            self.extractor.name,
            self.extractor.version,
            params.exact_search_max,
            params.nprobe,
        )
        if loaded is None:
            if self.store.count_images():  # a new catalogue has nothing to rebuild
                _log.warning("rebuilding the search index of %s from the database", self.store.path)
            self.follower.rebuild(rebuilding)
        else:
            index, state, points = loaded
            self.follower.resume(
                index,
                state.epoch,
                state.max_feature_id,
                set(state.image_ids),
                points,
                rebuilding,
            )
            if points is None:  # saved by an older version, or damaged: save them now
                self.follower.changed = True
        self.save()
        searchable = len(self.local.labels())
        stored = self.store.count_images()
        if searchable < stored:
            _log.warning(
                "%d of %d photos have no features of these extractor settings (%s-%s): they"
                " are not searched until `whaleid index rebuild` or `whaleid serve` describes"
                " them again from their stored files",
                stored - searchable,
                stored,
                *self._extractor_key,
            )
        if self.deep is not None and self.deep.photos < searchable:
            # Photos enrolled before this model was installed: searched by their local
            # features only, until given its embedding.
            _log.warning(
                "%d of %d photos have no embedding from %s: run `whaleid index rebuild` to add it",
                searchable - self.deep.photos,
                searchable,
                self.deep.model,
            )
        if not self.calibrator.stored:
            # A new catalogue, one fitted before calibrations were kept in the database,
            # or one that just got a deep model: fit them now rather than answer
            # uncalibrated.
            self.calibrator.refit(calibrating)
