"""Keeps the in-memory searches in step with the database, whoever wrote it.

The database is the truth and any process may write it (the server, `whaleid enrol` beside
it, another server). Every write that a search must follow moves `Store.marker()`: feature
rows are added with increasing ids, and removals and relabellings bump the epoch. Before
answering, a reader calls `catch_up`, which costs one small query when nothing changed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

from embeddings.protocol import GlobalEmbedding, LocalFeatures
from indexer.deep_search import DeepSearch
from indexer.descriptor_index import DescriptorIndex, Fill
from indexer.local_search import LocalSearch, positions_of
from indexer.point_files import PhotoPoints
from indexer.results import BuildStage, Stages
from indexer.store import Store

__all__ = ["Follower"]

_log = logging.getLogger(__name__)


class Follower:
    """Applies committed database changes to the local (and deep) search.

    Args:
        store: the database.
        extractor: (name, version) of the local features searched.
        local: the local-feature search.
        deep: the deep-embedding search, if a model is loaded.
        rebuilt: called after a rebuild that `catch_up` starts on its own (an index
            outgrown): the gallery saves it, which also moves the exact descriptors that
            re-score its candidates out of memory and into the saved files.
    """

    def __init__(
        self,
        store: Store,
        extractor: tuple[str, str],
        local: LocalSearch,
        deep: DeepSearch | None,
        rebuilt: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self._rebuilt = rebuilt
        self.extractor = extractor
        self.local = local
        self.deep = deep
        self.lock = threading.RLock()
        """Held while the searches change; the pipeline holds it to read them."""
        self.epoch = -1
        """The database's epoch the searches were built or resumed at; -1 before."""
        self.max_feature_id = 0
        """Largest local feature id the local search has seen."""
        self._max_deep_id = 0
        self._marker: tuple[int, int, int] | None = None
        self.calibration_id = 0
        """Largest calibration id committed: a newer one than the pipeline's is reloaded."""
        self.changed = False
        """Whether the searches moved since the index files were last saved."""

    def rebuild(self, stages: Stages | None = None, fill: Fill | None = None) -> None:
        """Build every search from the database, telling `stages` of each `BuildStage`
        (`fill`: see `DescriptorIndex.build`)."""
        with self.lock:
            marker = self.store.marker()
            epoch, _, self.calibration_id = marker
            labels = self.store.image_labels()
            total = self.store.count_features(*self.extractor)
            reading = stages(BuildStage.READING) if stages is not None else None
            max_id = 0

            def searchable() -> Iterator[tuple[int, str, LocalFeatures]]:
                # Streamed from the database into the build: a large catalogue's
                # descriptors (12 GB at 100 000 photos) are never all in memory.
                nonlocal max_id
                for done, row in enumerate(self.store.iter_features(*self.extractor), start=1):
                    if isinstance(row.features, LocalFeatures) and row.image_id in labels:
                        yield row.image_id, labels[row.image_id], row.features
                    max_id = max(max_id, row.id)
                    if reading is not None:
                        reading(done, total)

            self.local.build(searchable(), fill, stages)
            self._rebuild_deep()
            self.epoch, self.max_feature_id, self._marker = epoch, max_id, marker
            self.changed = True

    def resume(
        self,
        saved: DescriptorIndex,
        epoch: int,
        max_feature_id: int,
        image_ids: set[int],
        points: PhotoPoints | None = None,
        stages: Stages | None = None,
    ) -> None:
        """Start from a saved local index that held `image_ids` up to `max_feature_id` at
        `epoch`, then catch up with everything committed since; or rebuild, when what was
        committed since would outgrow it.

        Args:
            saved: the saved `DescriptorIndex`.
            epoch: the epoch it was saved at.
            max_feature_id: the largest feature id it holds.
            image_ids: the photos it holds.
            points: their keypoint positions saved beside it; None: read from the
                database.
            stages: the stages of the rebuild, if there is one (`rebuild`).
        """
        with self.lock:
            labels = self.store.image_labels()
            if points is None:
                # Keypoints only: the saved index holds the descriptors, eight times their
                # size.
                points = {
                    image_id: positions_of(keypoints)
                    for image_id, keypoints in self.store.iter_keypoints(
                        *self.extractor, up_to_id=max_feature_id
                    )
                }
            photos = (
                (image_id, labels[image_id], positions, tolerance)
                for image_id, (positions, tolerance) in points.items()
                if image_id in labels
            )
            self.local.resume(saved, photos, indexed=image_ids)
            self._rebuild_deep()
            self.epoch, self.max_feature_id = epoch, max_feature_id
            self.catch_up(force=True, stages=stages)

    def catch_up(self, *, force: bool = False, stages: Stages | None = None) -> None:
        """Apply whatever was committed since the last call; rebuild instead when the
        index has outgrown its kind, or would once the new photos were added
        (`stages`: of that rebuild)."""
        if self.epoch < 0:
            return  # nothing built or resumed yet to keep in step (opened to be rebuilt)
        marker = self.store.marker()
        if marker == self._marker and not force:
            return
        with self.lock:
            epoch, _, self.calibration_id = marker
            if epoch != self.epoch:
                labels = self.store.image_labels()
                held = self.local.labels()
                self.local.remove(i for i in held if i not in labels)
                self.local.relabel({i: labels[i] for i in held if i in labels})
                self._rebuild_deep()
                self.epoch = epoch
                self.changed = True
            outgrown = self._outgrown_by_pending()
            if not outgrown:
                self._add_local()
                if self.deep is not None:
                    self._add_deep()
                outgrown = self.local.outgrown
            if outgrown:
                # Said, because the writer that crossed the size waits for it (about a
                # minute at 1 000 photos on 2 cores).
                _log.warning(
                    "the search index has outgrown its kind at %d photos: rebuilding it from"
                    " the database",
                    self.store.count_features(*self.extractor),
                )
                self.rebuild(stages)
                if self._rebuilt is not None:
                    self._rebuilt()
            self._marker = marker

    def _outgrown_by_pending(self) -> bool:
        """Whether the photos committed since the last catch-up would outgrow the index:
        adding them one by one would then be work the rebuild that follows does again.
        Their descriptors are counted, not estimated: an estimate past the next size step
        rebuilt an index that was not outgrown, to the same index, and then again once it
        was."""
        pending = self.store.count_descriptors(*self.extractor, after_id=self.max_feature_id)
        return pending > 0 and self.local.index.outgrown_at(self.local.descriptors + pending)

    def _add_local(self) -> None:
        for row in self.store.iter_features(*self.extractor, after_id=self.max_feature_id):
            image = self.store.image(row.image_id)
            if image is not None and isinstance(row.features, LocalFeatures):
                self.local.add(row.image_id, image.individual_id, row.features)
                self.changed = True
            self.max_feature_id = row.id
            if self.local.outgrown:
                return  # the rebuild that follows reads the rest from the database

    def _add_deep(self) -> None:
        assert self.deep is not None
        for row in self.store.iter_features(
            self.deep.model, self.deep.version, after_id=self._max_deep_id
        ):
            image = self.store.image(row.image_id)
            if image is not None and isinstance(row.features, GlobalEmbedding):
                self.deep.add(row.image_id, image.individual_id, row.features.vector)
            self._max_deep_id = row.id

    def _rebuild_deep(self) -> None:
        if self.deep is not None:
            self.deep.build()
            self._max_deep_id = self.store.max_feature_id(self.deep.model, self.deep.version)
