"""FAISS index over every local descriptor of the gallery.

One query photo is matched against all gallery photos at once (one-vs-many), the way
HotSpotter does it (Crall et al., "HotSpotter — patterned species instance recognition",
WACV 2013): each query descriptor's nearest gallery descriptors vote for their photos.
A FAISS id packs the photo and the keypoint, `image_id << 16 | keypoint`, so a search
result needs no side table to find either.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from indexer.files import replacing

__all__ = ["CODES", "KEYPOINT_BITS", "DescriptorIndex", "Fill"]

KEYPOINT_BITS = 16
"""Bits of a FAISS id that number the keypoint; an extractor keeps at most 65 535."""
_KEYPOINT_MASK = (1 << KEYPOINT_BITS) - 1
CODES = "SQ8"
"""FAISS name of the IVF lists' codes: 8-bit scalar quantisation, 128 bytes a descriptor
(RootSIFT is uint8 already, so it loses almost nothing). Measured alternative, 32-byte
fast-scan product quantisation (PQ64x4fs: a quarter of the memory, searched about twice
as fast): leave-one-out top-1 0.800 against 0.819 on flukes, 0.532 against 0.551 on
right whales, 0.646 against 0.692 on Happywhale (2026-12-03), more than the 0.01 a
compact index may cost."""


class DescriptorIndex:
    """Exact L2 search up to `exact_max` descriptors; beyond, an IVF index whose lists hold
    each descriptor as a `CODES` code instead of 512 bytes of float32.

    Args:
        dim: descriptor length.
        exact_max: largest descriptor count searched exactly.
        nprobe: IVF lists visited per query descriptor.
        codes: FAISS name of the IVF lists' codes (`CODES`; others for comparison).
    """

    def __init__(self, dim: int, exact_max: int, nprobe: int, codes: str = CODES) -> None:
        self.dim = dim
        self.exact_max = exact_max
        self.nprobe = nprobe
        self.codes = codes
        self._index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatL2(dim))

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def approximate(self) -> bool:
        return not isinstance(self._index, faiss.IndexIDMap2)

    @property
    def outgrown(self) -> bool:
        """Whether the index no longer suits its size and should be built again (from the
        database): an exact index past `exact_max`, or an IVF index that has grown to four
        times what it was trained for, so that its lists are twice as long as
        `_list_count` would make them and each search scans twice as much."""
        if not self.approximate:
            return self.size > self.exact_max
        trained = faiss.extract_index_ivf(self._index).nlist
        return trained < _MAX_LISTS and _list_count(self.size) >= 2 * trained

    def add(self, image_id: int, descriptors: np.ndarray) -> None:
        """Add one photo's descriptors, (N, dim) uint8."""
        if len(descriptors) == 0:
            return
        if len(descriptors) > _KEYPOINT_MASK:
            raise ValueError(f"{len(descriptors)} keypoints, at most {_KEYPOINT_MASK} fit an id")
        ids = (np.int64(image_id) << KEYPOINT_BITS) | np.arange(len(descriptors), dtype=np.int64)
        self._index.add_with_ids(_as_float(descriptors), ids)

    def build(
        self,
        image_ids: list[int],
        descriptors: list[np.ndarray],
        seed: int = 0,
        fill: Fill | None = None,
    ) -> None:
        """Replace the index with one over these photos, IVF when they are many.

        Args:
            image_ids: photo ids, one per descriptor array.
            descriptors: (N_i, dim) uint8 arrays.
            seed: seed of the k-means training sample.
            fill: adds the photos to a trained IVF index in some other way than one by
                one here (`cluster.index_build`); it must give the same index.
        """
        total = sum(len(d) for d in descriptors)
        if total <= self.exact_max:
            self._index = faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))
        else:
            self._index = _train_ivf(descriptors, self.dim, total, seed, self.codes)
            if fill is not None:
                fill(self, image_ids, descriptors)
                return
        for image_id, desc in zip(image_ids, descriptors, strict=True):
            self.add(image_id, desc)

    def empty_copy(self) -> DescriptorIndex:
        """An index of the same kind and training (the same IVF lists), holding nothing."""
        copy = DescriptorIndex(self.dim, self.exact_max, self.nprobe, self.codes)
        copy._index = faiss.clone_index(self._index)
        copy._index.reset()
        return copy

    def merge(self, other: DescriptorIndex) -> None:
        """Append every descriptor of `other`, an index with the same training (from
        `empty_copy`); IVF lists are appended list by list, so adding photos in shards
        and merging the shards in order gives the index that adding them here would."""
        if self.approximate:
            faiss.extract_index_ivf(self._index).merge_from(
                faiss.extract_index_ivf(other._index), 0
            )
        else:
            self._index.merge_from(other._index, 0)

    def to_bytes(self) -> np.ndarray:
        """The index serialised (FAISS's file format), to send to another process."""
        return faiss.serialize_index(self._index)

    @classmethod
    def from_bytes(cls, data: np.ndarray, exact_max: int, nprobe: int) -> DescriptorIndex:
        return cls._wrapping(faiss.deserialize_index(data), exact_max, nprobe)

    def remove(self, image_id: int) -> int:
        """Remove every descriptor of one photo.

        Returns:
            How many descriptors were removed.
        """
        first = image_id << KEYPOINT_BITS
        return int(self._index.remove_ids(faiss.IDSelectorRange(first, first + _KEYPOINT_MASK + 1)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """k nearest gallery descriptors of each query descriptor.

        Args:
            queries: (M, dim) uint8.
            k: neighbours per query descriptor.

        Returns:
            distances (M, k) float32 Euclidean (not squared), image ids (M, k) int64 and
            keypoint numbers (M, k) int64; missing neighbours have image id -1.
        """
        # Per-call parameters, not attributes set on the shared index: searches may run
        # in several threads at once.
        params = faiss.SearchParametersIVF(nprobe=self.nprobe) if self.approximate else None
        squared, ids = self._index.search(_as_float(queries), k, params=params)
        missing = ids < 0
        image_ids = np.where(missing, -1, ids >> KEYPOINT_BITS)
        keypoints = np.where(missing, -1, ids & _KEYPOINT_MASK)
        distances = np.sqrt(np.maximum(squared, 0.0, dtype=np.float32))
        distances[missing] = np.inf
        return distances, image_ids, keypoints

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half."""
        with replacing(path) as tmp:
            faiss.write_index(self._index, str(tmp))

    @classmethod
    def load(cls, path: Path, exact_max: int, nprobe: int) -> DescriptorIndex:
        return cls._wrapping(faiss.read_index(str(path)), exact_max, nprobe)

    @classmethod
    def _wrapping(cls, index: faiss.Index, exact_max: int, nprobe: int) -> DescriptorIndex:
        wrapped = cls(index.d, exact_max, nprobe)
        wrapped._index = index
        return wrapped


Fill = Callable[[DescriptorIndex, list[int], list[np.ndarray]], None]
"""fill(trained empty index, image ids, descriptors): add the photos to the index."""


def _as_float(descriptors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(descriptors, dtype=np.float32)


def _list_count(total: int) -> int:
    # ~4 sqrt(N) lists keeps list length and list count balanced. Measured alternative
    # (1.9M descriptors of the flukes and right-whale sets): 12 sqrt(N) lists found through
    # an HNSW graph with 8 probes searched 3.6x faster but cost 1.6 points of flukes top-1.
    # k-means needs several points a list, so small galleries get fewer lists.
    return max(1, min(_MAX_LISTS, int(4 * np.sqrt(total)), total // 39))


_MAX_LISTS = 65536
"""Most IVF lists; 4 sqrt(N) reaches it at 268 M descriptors (about 260 000 photos)."""
_GRAPH_LISTS = 8192
"""Beyond this many lists, a descriptor finds its nearest list centres through an HNSW
graph over them (Malkov & Yashunin, TPAMI 2018) instead of comparing all of them: at
16 384 centres that is 2 G multiply-adds a query photo, and 40 T to add 20 M
descriptors. The development sets (at most 5 951 lists) stay below it."""
_GRAPH_LINKS = 32
"""Neighbours per node of that graph."""
_GRAPH_WIDTH = 64
"""Candidates the graph search keeps (efSearch): several times `nprobe`, so that the
nearest lists are rarely missed."""


def _train_ivf(
    descriptors: list[np.ndarray], dim: int, total: int, seed: int, codes: str
) -> faiss.Index:
    nlist = _list_count(total)
    sample = min(total, 40 * nlist)
    # Sampled photo by photo: stacking every descriptor first would double the memory of
    # a large gallery's build.
    picks = np.sort(np.random.default_rng(seed).choice(total, sample, replace=False))
    ends = np.cumsum([len(d) for d in descriptors])
    training = np.empty((sample, dim), np.float32)
    done = 0
    for photo, end in zip(descriptors, ends, strict=True):
        mine = picks[done : np.searchsorted(picks, end)]
        training[done : done + len(mine)] = photo[mine - (end - len(photo))]
        done += len(mine)
    if nlist <= _GRAPH_LISTS:
        index = faiss.index_factory(dim, f"IVF{nlist},{codes}", faiss.METRIC_L2)
        index.train(training)
        return index
    index = faiss.index_factory(dim, f"IVF{nlist}_HNSW{_GRAPH_LINKS},{codes}", faiss.METRIC_L2)
    # k-means itself runs on exact distances; the graph is built once over its result.
    # Held in a variable: FAISS keeps only a pointer to it while training.
    exact = faiss.IndexFlatL2(dim)
    index.clustering_index = exact
    index.train(training)
    index.clustering_index = None
    faiss.downcast_index(index.quantizer).hnsw.efSearch = _GRAPH_WIDTH
    return index
