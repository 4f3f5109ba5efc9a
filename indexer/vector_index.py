"""FAISS index over global embeddings, searched by cosine similarity.

It holds one L2-normalised vector per id: per-photo embeddings of a deep model, or the
ArcFace class centroids of the individuals. Cosine similarity of unit vectors is their
inner product, so the index uses `METRIC_INNER_PRODUCT`, and `add` refuses vectors that
are not unit length: one of those would silently score too high or too low.

Up to `exact_max` vectors the search is exact (`IndexFlatIP`). The `add` that crosses
`exact_max` rebuilds the index from the stored vectors as PQ: every vector is scanned in
compressed form and the best candidates are re-ranked exactly. A random rotation spreads
the variance of the embedding, which trained models concentrate in a few directions,
evenly over 4-dimensional sub-vectors; each is coded in 4 bits (product quantisation,
Jégou et al., "Product quantization for nearest neighbor search", TPAMI 2011) and scanned
with FAISS's register-resident lookup tables (André et al., "Quicker ADC", TPAMI 2019).
The `refine_factor * k` best codes are then scored with the stored float vectors. It is
trained once, on the first `exact_max + 1` vectors added (a sample of them): however
they came, one by one or in batches that cross `exact_max` at different points, the same
vectors in the same order give the same index. reports/scalability.md measures it
against HNSW. The index then stays PQ, even if removals shrink it; an index built anew
from the same vectors is exact again.

Removal. The exact index deletes natively. The PQ index removes the float vectors and
encodes the remaining ones again with the trained rotation and quantiser, in time linear
in the index (`remove` at a million vectors is timed in reports/scalability.md).
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from indexer.files import replacing
from indexer.search_threads import one_search_thread

__all__ = ["VectorIndex"]

NORM_TOLERANCE = 1e-3
"""Largest accepted deviation of a vector's L2 norm from 1. float32 rounding stays
below 1e-6, so anything larger means the vector was never normalised."""
PQ_TRAINING_MAX = 65_536
"""Most vectors the PQ index trains its quantiser on; FAISS's k-means samples 4 096 of
them (256 per centroid) for each 16-centroid sub-quantiser anyway."""


class VectorIndex:
    """Cosine search over unit-length global embeddings, exact up to `exact_max` vectors.

    Calls that change the index (`add`, `remove`) must not overlap with each other or
    with `search`; searches may run at the same time as each other.

    Args:
        dim: embedding length D.
        exact_max: largest number of vectors searched exactly.
        refine_factor: above `exact_max`, this many times k PQ candidates are re-ranked
            exactly. More gives better recall and costs more time.
    """

    def __init__(self, dim: int, exact_max: int = 50_000, refine_factor: int = 20) -> None:
        if refine_factor < 1:
            raise ValueError(f"refine_factor: expected >= 1, got {refine_factor}")
        if dim < 1:
            raise ValueError(f"dim: expected >= 1, got {dim}")
        self.dim = dim
        self.exact_max = exact_max
        self.refine_factor = refine_factor
        self._set(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    @property
    def size(self) -> int:
        """Number of vectors."""
        return int(self._index.ntotal)

    @property
    def approximate(self) -> bool:
        """True once the index is PQ (it crossed `exact_max`)."""
        return self._pq

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under new ids. The add that takes the index past `exact_max`
        rebuilds it as PQ, trained on the first `exact_max + 1` vectors.

        Args:
            ids: (N,) int64, non-negative, not already in the index.
            vectors: (N, D) float32, each row with unit L2 norm.

        Raises:
            ValueError: wrong shape or dtype, non-finite values, a norm off 1, or an id
                that is negative, repeated, or already in the index. Nothing is added.
        """
        vectors = self._checked_vectors("vectors", vectors)
        ids = _checked_ids(ids, len(vectors))
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"ids: duplicate ids in the batch: {_some(unique[counts > 1])}")
        present = np.intersect1d(ids, self._ids())
        if len(present):
            raise ValueError(f"ids: already in the index: {_some(present)}")
        if len(ids) == 0:
            return
        if not self._pq and self.size + len(ids) > self.exact_max:
            every = np.concatenate([self._index.index.reconstruct_n(0, self.size), vectors])
            index = _trained_pq(every[: self.exact_max + 1])
            index.add_with_ids(every, np.concatenate([self._ids(), ids]))
            self._set(index)
        else:
            self._index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove vectors by id. Ids not in the index are ignored.

        Args:
            ids: (N,) int64.

        Returns:
            How many vectors were removed.
        """
        ids = _checked_ids(ids, None)
        if len(ids) == 0:
            return 0
        if self._pq:
            return self._remove_coded(ids)
        return int(self._index.remove_ids(ids))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar vectors to each query.

        Args:
            queries: (M, D) float32, each row with unit L2 norm.
            k: neighbours per query; may exceed `size`.

        Returns:
            Cosine similarities (M, k) float32, best first, and ids (M, k) int64. Missing
            neighbours have id -1 and similarity -inf.

        Raises:
            ValueError: queries fail the checks of `add`, or k < 1.
        """
        queries = self._checked_vectors("queries", queries)
        if k < 1:
            raise ValueError(f"k: expected >= 1, got {k}")
        # Search parameters instead of setting k_factor on the index, so that concurrent
        # searches never write shared state.
        params = (
            faiss.IndexRefineSearchParameters(k_factor=self.refine_factor) if self._pq else None
        )
        with one_search_thread():
            scores, ids = self._index.search(queries, k, params=params)
        scores[ids < 0] = -np.inf
        return scores, ids

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half."""
        with replacing(path) as tmp:
            faiss.write_index(self._index, str(tmp))

    @classmethod
    def load(cls, path: Path, exact_max: int = 50_000, refine_factor: int = 20) -> VectorIndex:
        """Read an index written by `save`. The file decides whether it is exact or PQ;
        the arguments (those of the constructor) apply to searches and later switches.

        Raises:
            ValueError: the file is a FAISS index that `VectorIndex` never writes.
        """
        index = faiss.read_index(str(path))
        loaded = cls(index.d, exact_max, refine_factor)
        loaded._set(index)
        return loaded

    def _set(self, index: faiss.Index) -> None:
        self._pq = _is_pq(index)
        self._index = index

    def _ids(self) -> np.ndarray:
        """The ids (N,) int64, in storage order."""
        return faiss.vector_to_array(self._index.id_map)

    def _remove_coded(self, ids: np.ndarray) -> int:
        id_map = self._ids()
        hit = np.isin(id_map, ids)
        removed = int(hit.sum())
        if removed:
            refine = faiss.downcast_index(self._index.index)
            floats = faiss.downcast_index(refine.refine_index)
            floats.remove_ids(faiss.IDSelectorBatch(np.flatnonzero(hit).astype(np.int64)))
            # The codes are encoded again from the remaining float vectors (the trained
            # rotation and quantiser are kept) rather than removed in place: after an
            # in-place removal FAISS 1.15's fast-scan index misplaces the codes added next
            # (a vector added after removing 32 of 3 000 was no longer found).
            codes = refine.base_index
            codes.reset()
            codes.add(
                faiss.rev_swig_ptr(floats.get_xb(), floats.ntotal * self.dim).reshape(-1, self.dim)
            )
            refine.ntotal = floats.ntotal
            faiss.copy_array_to_vector(id_map[~hit], self._index.id_map)
            self._index.ntotal = floats.ntotal
            self._index.construct_rev_map()
        return removed

    def _checked_vectors(self, name: str, vectors: np.ndarray) -> np.ndarray:
        expected = f"{name}: expected (N, {self.dim}) float32 with unit L2 norm"
        if not isinstance(vectors, np.ndarray):
            raise ValueError(f"{expected}, got {type(vectors).__name__}")
        got = f"{vectors.shape} {vectors.dtype}"
        if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"{expected}, got {got}")
        if not np.isfinite(vectors).all():
            raise ValueError(f"{expected}, got {got} with non-finite values")
        norms = np.linalg.norm(vectors, axis=1)
        off = np.abs(norms - 1.0) > NORM_TOLERANCE
        if off.any():
            raise ValueError(
                f"{expected}, got {got} with {int(off.sum())} rows of norm "
                f"{norms[off].min():.4g} to {norms[off].max():.4g}"
            )
        return np.ascontiguousarray(vectors)


def _checked_ids(ids: np.ndarray, n: int | None) -> np.ndarray:
    expected = f"ids: expected ({'N' if n is None else n},) int64, non-negative"
    if not isinstance(ids, np.ndarray):
        raise ValueError(f"{expected}, got {type(ids).__name__}")
    got = f"{ids.shape} {ids.dtype}"
    # Any integer type that fits int64 is accepted; uint64 may not fit.
    if ids.ndim != 1 or ids.dtype.kind not in "iu" or not np.can_cast(ids.dtype, np.int64):
        raise ValueError(f"{expected}, got {got}")
    if n is not None and len(ids) != n:
        raise ValueError(f"{expected} (one per vector), got {got}")
    if (ids < 0).any():
        # FAISS returns -1 for a missing neighbour.
        raise ValueError(f"{expected}, got negative ids {_some(ids[ids < 0])}")
    return np.ascontiguousarray(ids, dtype=np.int64)


def _some(ids: np.ndarray) -> str:
    shown = ids[:10].tolist()
    return f"{shown}" if len(ids) <= 10 else f"{shown} and {len(ids) - 10} more"


def _is_pq(index: faiss.Index) -> bool:
    """Whether `index` is the PQ kind (else the exact one).

    Raises:
        ValueError: neither (another FAISS index, or another metric).
    """
    if index.metric_type == faiss.METRIC_INNER_PRODUCT and isinstance(index, faiss.IndexIDMap2):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexRefineFlat):
            return True
        if isinstance(inner, faiss.IndexFlat):
            return False
    raise ValueError(
        "expected an inner-product IndexIDMap2 over IndexFlat or IndexRefineFlat; got "
        f"{type(index).__name__} with metric {index.metric_type}"
    )


def _trained_pq(vectors: np.ndarray) -> faiss.IndexIDMap2:
    """An empty PQ-kind index: random rotation, then 4-bit codes trained on a sample of
    `vectors`; its candidates are re-ranked against the float vectors added."""
    n, dim = vectors.shape
    # One 4-bit code per 4 dimensions (64 bytes for 512-d); the rotation pads the
    # vector to a multiple of 4.
    coded = 4 * -(-dim // 4)
    index = faiss.index_factory(
        dim, f"IDMap2,RR{coded},PQ{coded // 4}x4fs,RFlat", faiss.METRIC_INNER_PRODUCT
    )
    rng = np.random.default_rng(0)
    index.train(vectors[np.sort(rng.choice(n, min(n, PQ_TRAINING_MAX), replace=False))])
    return index
