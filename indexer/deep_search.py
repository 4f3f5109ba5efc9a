"""Cosine search over deep embeddings: enrolled photos' embeddings and ArcFace centroids.

One `VectorIndex` holds both kinds of entry, so an individual known only to the deep model
(a Happywhale centroid) and one enrolled here with photos are found by the same search.
Photo entries use the image id; centroid entries `CENTROID_BASE + centroid id`, far above
any image id SQLite will hand out.

It is rebuilt from the database when the gallery opens, so no file of its own can go
stale. Up to `engine.deep_exact_max` entries (13 837 centroids and tens of thousands of
photos) that takes well under a second; above it the index is compressed and trained
first (PQ; reports/scalability.md times the build at a million), so a
gallery of millions of photos would want this index saved beside the descriptor index.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from embeddings.protocol import GlobalEmbedding
from indexer.calibration import Calibration, calibration_queries, fit_isotonic
from indexer.config import EngineConfig
from indexer.store import Store
from indexer.vector_index import VectorIndex

__all__ = ["CENTROID_BASE", "DeepHit", "DeepSearch"]

CENTROID_BASE = 1 << 62
# Until fitted: probability 0.5 at cosine 0.5. Same-individual ArcFace cosines are
# mostly above that, different individuals mostly below (Deng et al. 2019, fig. 4).
_UNFITTED_HALF_COSINE = 0.5


class DeepHit:
    """An individual's best deep match: cosine, and the photo (None for a centroid)."""

    __slots__ = ("cosine", "image_id")

    def __init__(self, cosine: float, image_id: int | None) -> None:
        self.cosine = cosine
        self.image_id = image_id


class DeepSearch:
    """Deep-embedding search for one embedder name and version.

    Not thread-safe on its own: the gallery calls it under its lock.
    """

    def __init__(
        self, store: Store, model: str, version: str, dim: int, engine: EngineConfig
    ) -> None:
        self.store = store
        self.model = model
        self.version = version
        self._dim = dim
        self._engine = engine
        self._labels: dict[int, str] = {}
        self._index = self._new_index()
        self.calibration = Calibration.unfitted(_UNFITTED_HALF_COSINE)

    @property
    def photos(self) -> int:
        return sum(1 for i in self._labels if i < CENTROID_BASE)

    @property
    def centroids(self) -> int:
        return len(self._labels) - self.photos

    def build(self) -> None:
        """Read every embedding and centroid of this model version from the database."""
        labels = self.store.image_labels()
        ids: list[int] = []
        vectors: list[np.ndarray] = []
        self._labels = {}
        for row in self.store.iter_features(self.model, self.version):
            if row.image_id in labels and isinstance(row.features, GlobalEmbedding):
                ids.append(row.image_id)
                vectors.append(row.features.vector)
                self._labels[row.image_id] = labels[row.image_id]
        centroid_ids, individuals, centroid_vectors = self.store.centroids(self.model, self.version)
        for centroid_id, individual in zip(centroid_ids.tolist(), individuals, strict=True):
            self._labels[CENTROID_BASE + centroid_id] = individual
        all_vectors = [np.stack(vectors)] if vectors else []
        if len(centroid_ids):
            all_vectors.append(centroid_vectors)
        self._index = self._new_index()
        if all_vectors:
            self._index.add(
                np.array(ids + (CENTROID_BASE + centroid_ids).tolist(), dtype=np.int64),
                np.concatenate(all_vectors),
            )
        self.calibration = self._fit_calibration()

    def _new_index(self) -> VectorIndex:
        return VectorIndex(
            self._dim,
            self._engine.deep_exact_max,
            refine_factor=self._engine.deep_refine_factor,
        )

    def add(self, image_id: int, individual_id: str, vector: np.ndarray) -> None:
        self._index.add(np.array([image_id], dtype=np.int64), vector[None].astype(np.float32))
        self._labels[image_id] = individual_id

    def forget(self, image_ids: Iterable[int]) -> None:
        gone = [i for i in image_ids if self._labels.pop(i, None) is not None]
        if gone:
            self._index.remove(np.array(gone, dtype=np.int64))

    def forget_individual(self, individual_id: str) -> None:
        self.forget([i for i, label in self._labels.items() if label == individual_id])

    def relabel(self, old_id: str, new_id: str) -> None:
        for entry_id, label in self._labels.items():
            if label == old_id:
                self._labels[entry_id] = new_id

    def holds(self, image_id: int) -> bool:
        """Whether an enrolled photo's embedding is searchable."""
        return image_id in self._labels

    def vector(self, image_id: int) -> np.ndarray | None:
        """The stored embedding of an enrolled photo."""
        row = self.store.feature(image_id, self.model, self.version)
        if row is None or not isinstance(row.features, GlobalEmbedding):
            return None
        return row.features.vector

    def search(
        self, vector: np.ndarray, neighbours: int, *, exclude: Iterable[int] = ()
    ) -> dict[str, DeepHit]:
        """The best hit of each individual among the `neighbours` nearest entries, best
        first; photos in `exclude` are left out (leave-one-out)."""
        excluded = set(exclude)
        if self._index.size == 0:
            return {}
        k = min(self._index.size, neighbours + len(excluded))
        cosines, ids = self._index.search(vector[None].astype(np.float32), k)
        hits: dict[str, DeepHit] = {}
        for cosine, entry_id in zip(cosines[0].tolist(), ids[0].tolist(), strict=True):
            label = self._labels.get(entry_id)
            if entry_id < 0 or entry_id in excluded or label is None or label in hits:
                continue
            hits[label] = DeepHit(cosine, entry_id if entry_id < CENTROID_BASE else None)
        return hits

    def _fit_calibration(self) -> Calibration:
        """Leave-one-out over enrolled photos: best true and best wrong cosine each."""
        photos = calibration_queries(
            self._labels, self._engine.calibration_queries, lambda i: i < CENTROID_BASE
        )
        positives: list[float] = []
        negatives: list[float] = []
        for image_id in photos:
            vector = self.vector(image_id)
            if vector is None:
                continue
            truth = self._labels[image_id]
            hits = self.search(vector, self._engine.deep_neighbours, exclude=[image_id])
            positives.append(hits[truth].cosine if truth in hits else -1.0)
            negatives.append(max((h.cosine for k, h in hits.items() if k != truth), default=-1.0))
        return fit_isotonic(np.asarray(positives), np.asarray(negatives), _UNFITTED_HALF_COSINE)
