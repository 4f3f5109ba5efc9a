"""FAISS index over global embeddings, searched by cosine similarity.

It holds one L2-normalised vector per id: per-photo embeddings of a deep model, or the
ArcFace class centroids of the individuals. Cosine similarity of unit vectors is their
inner product, so every index here uses `METRIC_INNER_PRODUCT`, and `add` refuses vectors
that are not unit length: one of those would silently score too high or too low.

Up to `exact_max` vectors the search is exact (`IndexFlatIP`). The `add` that crosses
`exact_max` rebuilds the index from the stored vectors as one of three approximate kinds:

- PQ, the default: every vector is scanned in compressed form and the best candidates are
  re-ranked exactly. A random rotation spreads the variance of the embedding, which
  trained models concentrate in a few directions, evenly over 4-dimensional sub-vectors;
  each is coded in 4 bits (product quantisation, Jégou et al., below) and scanned with
  FAISS's register-resident lookup tables (André et al., "Quicker ADC", TPAMI 2019). The
  `refine_factor * k` best codes are then scored with the stored float vectors. It is
  trained once, on the vectors present at the switch; reports/scalability.md measures it
  against HNSW.
- HNSW (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search
  using Hierarchical Navigable Small World graphs", TPAMI 2018). It needs no training and
  adds vectors one by one, but FAISS cannot delete from it.
- IVF with flat lists (Jégou et al., "Product quantization for nearest neighbor search",
  TPAMI 2011, section IV). It is trained once, on the vectors present at the switch.

The index then stays approximate, even if removals shrink it, until `rebuild`.

Removal. The exact and IVF indexes delete natively. The PQ kind removes the float
vectors and encodes the remaining ones again with the trained rotation and quantiser, in
time linear in the index (`remove` at a million vectors is timed in
reports/scalability.md). FAISS's HNSW does not delete at all: the graph would have to be relinked (facebookresearch/faiss#3339).
Rebuilding the graph on every removal would be correct but far too slow: 60 000 vectors
of dimension 512 took 287 s to build on two cores. So HNSW removal leaves a tombstone
instead. The removed vector's id in the `IndexIDMap2` id map becomes -1. The vector stays
in the graph, where it still routes searches, and every search passes a selector that
only accepts ids >= 0, so FAISS fills all k slots with live vectors. The tombstone is part
of the FAISS index itself, so save and load keep it without a side file, and the removed
id can be added again. `needs_rebuild` reports when more than 10 % of the graph is
tombstones; `rebuild` compacts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import faiss
import numpy as np
from faiss.contrib.inspect_tools import get_invlist

from indexer.files import replacing

__all__ = ["IndexKind", "VectorIndex"]

IndexKind = Literal["pq", "hnsw", "ivf"]
"""Approximate index used above `exact_max` vectors."""

_Structure = Literal["exact", "pq", "hnsw", "ivf"]

HNSW_EF_CONSTRUCTION = 100
"""Beam width while building the HNSW graph. A wider beam builds more slowly and gives a
better graph. On 100 000 synthetic 512-d embeddings (2 cores, M = 32), 100 built in 31 s
against 28 s for FAISS's default 40, and raised recall@10 at efSearch 512 from 0.952 to
0.969."""
NORM_TOLERANCE = 1e-3
"""Largest accepted deviation of a vector's L2 norm from 1. float32 rounding stays
below 1e-6, so anything larger means the vector was never normalised."""
PQ_TRAINING_MAX = 65_536
"""Most vectors the PQ kind trains its quantiser on; FAISS's k-means samples 4 096 of
them (256 per centroid) for each 16-centroid sub-quantiser anyway."""
REBUILD_FRACTION = 0.1
"""Fraction of tombstones in an HNSW graph at which `needs_rebuild` becomes true. Dead
nodes still cost search time, and filtering them out lowers recall."""

_TOMBSTONE = -1
# Every id >= 0 passes, so the tombstones (-1) never come back from an HNSW search. An
# id range is cheaper to test than a set of removed ids.
_LIVE_IDS = (0, np.iinfo(np.int64).max)


class VectorIndex:
    """Cosine search over unit-length global embeddings, exact up to `exact_max` vectors.

    Calls that change the index (`add`, `remove`, `rebuild`) must not overlap with each
    other or with `search`; searches may run at the same time as each other.

    Args:
        dim: embedding length D.
        exact_max: largest number of vectors searched exactly.
        kind: approximate index used above `exact_max`.
        refine_factor: the PQ kind re-ranks this many times k candidates exactly. More
            gives better recall and costs more time.
        hnsw_m: neighbours per HNSW node. More gives better recall and uses more memory.
        ef_search: HNSW beam width while searching (at least k is used).
        nprobe: IVF lists visited per query.
    """

    def __init__(
        self,
        dim: int,
        exact_max: int = 50_000,
        kind: IndexKind = "pq",
        refine_factor: int = 20,
        hnsw_m: int = 32,
        ef_search: int = 128,
        nprobe: int = 32,
    ) -> None:
        if kind not in ("pq", "hnsw", "ivf"):
            raise ValueError(f"kind: expected 'pq', 'hnsw' or 'ivf', got {kind!r}")
        if refine_factor < 1:
            raise ValueError(f"refine_factor: expected >= 1, got {refine_factor}")
        if dim < 1:
            raise ValueError(f"dim: expected >= 1, got {dim}")
        self.dim = dim
        self.exact_max = exact_max
        self.kind: IndexKind = kind
        self.refine_factor = refine_factor
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.nprobe = nprobe
        self._set(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    @property
    def size(self) -> int:
        """Number of live vectors; tombstones are not counted."""
        return int(self._index.ntotal) - self._tombstones

    @property
    def approximate(self) -> bool:
        return self._structure != "exact"

    @property
    def needs_rebuild(self) -> bool:
        """True when tombstones are more than 10 % of the HNSW graph."""
        return self._tombstones > REBUILD_FRACTION * self._index.ntotal

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under new ids. The add that takes the index past `exact_max`
        rebuilds it as the approximate kind.

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
        present = np.intersect1d(ids, self._contents(with_vectors=False)[0])
        if len(present):
            raise ValueError(f"ids: already in the index: {_some(present)}")
        if len(ids) == 0:
            return
        if self._structure == "exact" and self.size + len(ids) > self.exact_max:
            old_ids, old_vectors = self._contents()
            self._set(
                self._build(np.concatenate([old_ids, ids]), np.concatenate([old_vectors, vectors]))
            )
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
        if self._structure == "pq":
            return self._remove_coded(ids)
        if self._structure != "hnsw":
            return int(self._index.remove_ids(ids))
        id_map = faiss.vector_to_array(self._index.id_map)
        # Ids are checked to be >= 0, so an existing tombstone never matches.
        hit = np.isin(id_map, ids)
        removed = int(hit.sum())
        if removed:
            id_map[hit] = _TOMBSTONE
            faiss.copy_array_to_vector(id_map, self._index.id_map)
            self._index.construct_rev_map()
            self._tombstones += removed
        return removed

    def rebuild(self) -> None:
        """Build the index again from its live vectors: this drops HNSW tombstones,
        retrains IVF for the current size, and picks exact or approximate by size."""
        self._set(self._build(*self._contents()))

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
        # Search parameters instead of setting efSearch or nprobe on the index, so that
        # concurrent searches never write shared state.
        params: faiss.SearchParameters | None = None
        if self._structure == "hnsw":
            selector = faiss.IDSelectorRange(*_LIVE_IDS) if self._tombstones else None
            params = faiss.SearchParametersHNSW(efSearch=self.ef_search, sel=selector)
        elif self._structure == "ivf":
            params = faiss.SearchParametersIVF(nprobe=self.nprobe)
        elif self._structure == "pq":
            params = faiss.IndexRefineSearchParameters(k_factor=self.refine_factor)
        scores, ids = self._index.search(queries, k, params=params)
        scores[ids < 0] = -np.inf
        return scores, ids

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half.
        HNSW tombstones are saved with the index."""
        with replacing(path) as tmp:
            faiss.write_index(self._index, str(tmp))

    @classmethod
    def load(
        cls,
        path: Path,
        exact_max: int = 50_000,
        kind: IndexKind = "pq",
        refine_factor: int = 20,
        hnsw_m: int = 32,
        ef_search: int = 128,
        nprobe: int = 32,
    ) -> VectorIndex:
        """Read an index written by `save`. The file decides the current structure; the
        arguments (those of the constructor) apply to searches and to later rebuilds.

        Raises:
            ValueError: the file is a FAISS index that `VectorIndex` never writes.
        """
        index = faiss.read_index(str(path))
        loaded = cls(index.d, exact_max, kind, refine_factor, hnsw_m, ef_search, nprobe)
        loaded._set(index)
        return loaded

    def _set(self, index: faiss.Index) -> None:
        self._structure = _structure_of(index)
        self._index = index
        self._tombstones = 0
        if self._structure == "hnsw":
            self._tombstones = int((faiss.vector_to_array(index.id_map) == _TOMBSTONE).sum())

    def _build(self, ids: np.ndarray, vectors: np.ndarray) -> faiss.Index:
        if len(ids) <= self.exact_max:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        elif self.kind == "pq":
            index = _trained_pq(vectors)
        elif self.kind == "hnsw":
            graph = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index = faiss.IndexIDMap2(graph)
        else:
            # IVF keeps arbitrary ids in its lists and removes them itself. It is not
            # wrapped in IndexIDMap2, whose remove_ids assumes the sub-index renumbers
            # its vectors after a removal, as a flat index does and IVF does not.
            index = _trained_ivf(vectors)
        index.add_with_ids(vectors, ids)
        return index

    def _remove_coded(self, ids: np.ndarray) -> int:
        id_map = faiss.vector_to_array(self._index.id_map)
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

    def _contents(self, with_vectors: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Live ids (N,) int64 and, if asked for, their vectors (N, D) float32 (else
        (0, D))."""
        vectors = np.empty((0, self.dim), dtype=np.float32)
        if self._structure == "ivf":
            lists = [get_invlist(self._index.invlists, i) for i in range(self._index.nlist)]
            ids = np.concatenate([np.empty(0, dtype=np.int64)] + [i for i, _ in lists])
            if with_vectors:
                # IVFFlat stores each vector as its raw float32 bytes.
                codes = np.concatenate([vectors.view(np.uint8)] + [c for _, c in lists])
                vectors = codes.view(np.float32)
            return ids, vectors
        ids = faiss.vector_to_array(self._index.id_map)
        live = ids != _TOMBSTONE
        if with_vectors:
            vectors = self._index.index.reconstruct_n(0, self._index.ntotal)[live]
        return ids[live], vectors

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
        # FAISS returns -1 for a missing neighbour, and -1 marks an HNSW tombstone.
        raise ValueError(f"{expected}, got negative ids {_some(ids[ids < 0])}")
    return np.ascontiguousarray(ids, dtype=np.int64)


def _some(ids: np.ndarray) -> str:
    shown = ids[:10].tolist()
    return f"{shown}" if len(ids) <= 10 else f"{shown} and {len(ids) - 10} more"


def _structure_of(index: faiss.Index) -> _Structure:
    if index.metric_type == faiss.METRIC_INNER_PRODUCT:
        if isinstance(index, faiss.IndexIVFFlat):
            return "ivf"
        if isinstance(index, faiss.IndexIDMap2):
            inner = faiss.downcast_index(index.index)
            if isinstance(inner, faiss.IndexHNSWFlat):
                return "hnsw"
            if isinstance(inner, faiss.IndexRefineFlat):
                return "pq"
            if isinstance(inner, faiss.IndexFlat):
                return "exact"
    raise ValueError(
        "expected an inner-product IndexIDMap2 over IndexFlat, IndexRefineFlat or "
        f"IndexHNSWFlat, or an IndexIVFFlat; got {type(index).__name__} with metric {index.metric_type}"
    )


def _trained_ivf(vectors: np.ndarray) -> faiss.IndexIVFFlat:
    """An empty IVF index whose lists are k-means centroids of a sample of `vectors`."""
    n, dim = vectors.shape
    # ~4 sqrt(N) lists balances list count against list length (as DescriptorIndex
    # does), capped so each list gets the 39 training points FAISS's k-means asks for.
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
    # k-means would subsample to 256 points a list itself; sampling here bounds the copy.
    sample = min(n, 256 * nlist)
    rng = np.random.default_rng(0)
    training = vectors[np.sort(rng.choice(n, sample, replace=False))]
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    # Spherical k-means keeps the centroids unit length, so assigning a vector to the
    # centroid of largest inner product is assigning it to the nearest one by cosine.
    index.cp.spherical = True
    index.train(training)
    return index


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
