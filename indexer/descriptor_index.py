"""FAISS index over every local descriptor of the gallery.

One query photo is matched against all gallery photos at once (one-vs-many), the way
HotSpotter does it (Crall et al., "HotSpotter — patterned species instance recognition",
WACV 2013): each query descriptor's nearest gallery descriptors vote for their photos.
A FAISS id packs the photo and the keypoint, `image_id << 16 | keypoint`, so a search
result needs no side table to find either.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from indexer.files import replacing

__all__ = ["KEYPOINT_BITS", "DescriptorIndex"]

KEYPOINT_BITS = 16
"""Bits of a FAISS id that number the keypoint; an extractor keeps at most 65 535."""
_KEYPOINT_MASK = (1 << KEYPOINT_BITS) - 1


class DescriptorIndex:
    """Exact L2 search up to `exact_max` descriptors, an IVF index with 8-bit scalar
    quantisation beyond (a quarter of the memory; RootSIFT is stored as uint8 anyway, so
    the quantisation loses almost nothing).

    Args:
        dim: descriptor length.
        exact_max: largest descriptor count searched exactly.
        nprobe: IVF lists visited per query descriptor.
    """

    def __init__(self, dim: int, exact_max: int, nprobe: int) -> None:
        self.dim = dim
        self.exact_max = exact_max
        self.nprobe = nprobe
        self._index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatL2(dim))

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def approximate(self) -> bool:
        return not isinstance(self._index, faiss.IndexIDMap2)

    def add(self, image_id: int, descriptors: np.ndarray) -> None:
        """Add one photo's descriptors, (N, dim) uint8."""
        if len(descriptors) == 0:
            return
        if len(descriptors) > _KEYPOINT_MASK:
            raise ValueError(f"{len(descriptors)} keypoints, at most {_KEYPOINT_MASK} fit an id")
        ids = (np.int64(image_id) << KEYPOINT_BITS) | np.arange(len(descriptors), dtype=np.int64)
        self._index.add_with_ids(_as_float(descriptors), ids)

    def build(self, image_ids: list[int], descriptors: list[np.ndarray], seed: int = 0) -> None:
        """Replace the index with one over these photos, IVF when they are many.

        Args:
            image_ids: photo ids, one per descriptor array.
            descriptors: (N_i, dim) uint8 arrays.
            seed: seed of the k-means training sample.
        """
        total = sum(len(d) for d in descriptors)
        if total <= self.exact_max:
            self._index = faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))
        else:
            self._index = _train_ivf(descriptors, self.dim, total, seed)
        for image_id, desc in zip(image_ids, descriptors, strict=True):
            self.add(image_id, desc)

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
        index = faiss.read_index(str(path))
        loaded = cls(index.d, exact_max, nprobe)
        loaded._index = index
        return loaded


def _as_float(descriptors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(descriptors, dtype=np.float32)


def _train_ivf(descriptors: list[np.ndarray], dim: int, total: int, seed: int) -> faiss.Index:
    # ~4 sqrt(N) lists keeps list length and list count balanced. Measured alternative
    # (1.9M descriptors of the flukes and right-whale sets): 12 sqrt(N) lists found through
    # an HNSW graph with 8 probes searched 3.6x faster but cost 1.6 points of flukes top-1.
    # k-means needs several points a list, so tiny galleries (tests) get fewer lists.
    nlist = max(1, min(16384, int(4 * np.sqrt(total)), total // 10))
    sample = min(total, 40 * nlist)
    rng = np.random.default_rng(seed)
    stacked = np.concatenate([d for d in descriptors if len(d)])
    training = _as_float(stacked[rng.choice(len(stacked), sample, replace=False)])
    quantizer = faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2
    )
    index.train(training)
    return index
