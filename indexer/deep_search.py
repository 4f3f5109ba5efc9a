"""Cosine search over deep embeddings: enrolled photos' embeddings and ArcFace centroids.

One `VectorIndex` holds both kinds of entry, so an individual known only to the deep model
(a Happywhale centroid) and one enrolled here with photos are found by the same search.
Photo entries use the image id; centroid entries `CENTROID_BASE + centroid id`, far above
any image id SQLite will hand out.

It is built from the database when the gallery opens (up to `DEEP_EXACT_MAX` entries that
takes well under a second; reports/scalability.md times the compressed index at a
million) and `indexer.follower` keeps it in step with the database.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
import numpy as np

from embeddings.protocol import GlobalEmbedding
from indexer.store import Store
from indexer.vector_index import VectorIndex

__all__ = [
    "CENTROID_BASE",
    "DEEP_EXACT_MAX",
    "DEEP_NEIGHBOURS",
    "DEEP_REFINE_FACTOR",
    "DeepHit",
    "DeepSearch",
]

CENTROID_BASE = 1 << 62
DEEP_NEIGHBOURS = 100
"""Entries read per query; the individuals among them form the deep shortlist."""
# Entries searched exactly; above, a compressed index re-ranked exactly (the exact search
# of 50 000 x 512 floats is still a few milliseconds).
DEEP_EXACT_MAX = 50_000
# Candidates the compressed index re-ranks exactly, as a multiple of the neighbours asked
# for: recall@10 0.98 at a million entries (reports/scalability.md).
DEEP_REFINE_FACTOR = 50


class DeepHit(msgspec.Struct, frozen=True):
    """An individual's best deep match: cosine, and the photo (None for a centroid)."""

    cosine: float
    image_id: int | None


class DeepSearch:
    """Deep-embedding search for one embedder name and version.

    Not thread-safe on its own: `indexer.follower` and the pipeline call it under the
    follower's lock.
    """

    def __init__(self, store: Store, model: str, version: str, dim: int) -> None:
        self.store = store
        self.model = model
        self.version = version
        self._dim = dim
        self._labels: dict[int, str] = {}
        self._index = self._new_index()

    @property
    def index(self) -> VectorIndex:
        return self._index

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
        # Centroids first, then photos in the order they were enrolled: the order in which
        # a process that follows the enrolment adds them, so that both train the same PQ
        # index when it outgrows exact search (`VectorIndex.add`).
        all_vectors = [centroid_vectors] if len(centroid_ids) else []
        if vectors:
            all_vectors.append(np.stack(vectors))
        self._index = self._new_index()
        if all_vectors:
            self._index.add(
                np.array((CENTROID_BASE + centroid_ids).tolist() + ids, dtype=np.int64),
                np.concatenate(all_vectors),
            )

    def _new_index(self) -> VectorIndex:
        return VectorIndex(self._dim, exact_max=DEEP_EXACT_MAX, refine_factor=DEEP_REFINE_FACTOR)

    def labels(self) -> dict[int, str]:
        """entry id -> individual id of every photo and centroid."""
        return dict(self._labels)

    def add(self, image_id: int, individual_id: str, vector: np.ndarray) -> None:
        self._index.add(np.array([image_id], dtype=np.int64), vector[None].astype(np.float32))
        self._labels[image_id] = individual_id

    def vector(self, image_id: int) -> np.ndarray | None:
        """The stored embedding of an enrolled photo."""
        row = self.store.feature(image_id, self.model, self.version)
        if row is None or not isinstance(row.features, GlobalEmbedding):
            return None
        return row.features.vector

    def search(
        self, vector: np.ndarray, neighbours: int = DEEP_NEIGHBOURS, *, exclude: Iterable[int] = ()
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
