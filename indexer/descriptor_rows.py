"""The exact descriptors behind a compact descriptor index, to re-score its candidates.

The IVF lists hold each descriptor as a short product-quantisation code: enough to find
candidates, too coarse to rank them (an LNBNN weight is a difference of two distances).
The few candidates a search keeps are re-scored against the exact uint8 descriptors kept
here. Those of a saved index stay in their file, memory-mapped: a search reads only its
candidates' rows, which the OS pages in and can drop again, so they cost page cache, not
the process's memory. Rows added since the last save are held in memory until the next.
An index being built writes its rows to a nameless file first (`spilled`), so that
building over 100 000 photos (12 GB of rows) does not hold them in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from indexer.files import block_files, map_blocks, write_blocks

__all__ = ["DescriptorRows"]


class DescriptorRows:
    """uint8 descriptors addressed by (photo id, keypoint number), one block per photo."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._mapped: np.ndarray = np.zeros((0, dim), np.uint8)
        """Rows of a saved file (a read-only memory map), rows 0 .. len - 1."""
        self._added = np.zeros((0, dim), np.uint8)
        """Rows added since, in memory, numbered on from the mapped ones; its capacity
        doubles as it fills, so adding photo after photo copies each row a few times."""
        self._total = 0
        self._first: dict[int, int] = {}
        self._count: dict[int, int] = {}
        # The photos sorted by id with their first rows and row counts, for searches;
        # dropped by any change.
        self._table: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def spilled(
        cls, photos: Iterable[tuple[int, np.ndarray]], dim: int, folder: Path | None
    ) -> DescriptorRows:
        """Rows of these (photo id, (N, dim) uint8 descriptors), written one photo after
        another to a file without a name in `folder` (None: the system's temporary
        folder) and memory-mapped from it: the file's space is freed when these rows are,
        or when the process ends, however it ends."""
        rows = cls(dim)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as handle:
            for image_id, descriptors in photos:
                handle.write(np.ascontiguousarray(descriptors, np.uint8).tobytes())
                rows._first[image_id] = rows._total
                rows._count[image_id] = len(descriptors)
                rows._total += len(descriptors)
            handle.flush()
            if rows._total:  # a mapping outlives the file's handle
                rows._mapped = np.memmap(handle, np.uint8, "r", shape=(rows._total, dim))
        return rows

    @property
    def written(self) -> int:
        """Rows written, in the order added: a removed photo's too, until the next save."""
        return self._total

    @property
    def size(self) -> int:
        """Rows of the photos held."""
        return sum(self._count.values())

    def __contains__(self, image_id: int) -> bool:
        return image_id in self._first

    def held(self) -> list[int]:
        """The photos held, in the order they were added."""
        return sorted(self._first, key=self._first.__getitem__)

    @property
    def memory_bytes(self) -> int:
        """Bytes held in memory for rows (not mapped from a file)."""
        return self._added.nbytes

    def add(self, image_id: int, descriptors: np.ndarray) -> None:
        """Keep one photo's descriptors, (N, dim) uint8; a photo held already is replaced."""
        start = self._total - len(self._mapped)
        end = start + len(descriptors)
        if end > len(self._added):
            grown = np.zeros((max(end, 2 * len(self._added)), self.dim), np.uint8)
            grown[:start] = self._added[:start]
            self._added = grown
        self._added[start:end] = descriptors
        self._first[image_id] = self._total
        self._count[image_id] = len(descriptors)
        self._total += len(descriptors)
        self._table = None

    def remove(self, image_id: int) -> None:
        """Forget one photo; its rows stay unused until the next save compacts them."""
        self._first.pop(image_id, None)
        self._count.pop(image_id, None)
        self._table = None

    def extend(self, other: DescriptorRows) -> None:
        """Add every photo of `other`, in the order it holds them."""
        for image_id in other.held():
            self.add(image_id, other.photo(image_id))

    def photo(self, image_id: int) -> np.ndarray:
        """One photo's descriptors, (N, dim) uint8."""
        first = self._first[image_id]
        return self.take(np.arange(first, first + self._count[image_id]))

    def distances(
        self, queries: np.ndarray, image_ids: np.ndarray, keypoints: np.ndarray
    ) -> np.ndarray:
        """Euclidean distances from each query descriptor to its candidates.

        Args:
            queries: (M, dim) uint8.
            image_ids: (M, C) int64 candidate photos, -1 for none.
            keypoints: (M, C) int64 candidate keypoint numbers.

        Returns:
            (M, C) float32; +inf where there is no candidate or its photo is not held.
        """
        out = np.full(image_ids.shape, np.inf, np.float32)
        rows = self._row_numbers(image_ids, keypoints)
        query_rows, columns = np.nonzero(rows >= 0)
        difference = queries[query_rows].astype(np.float32) - self.take(rows[query_rows, columns])
        out[query_rows, columns] = np.sqrt(np.einsum("ij,ij->i", difference, difference))
        return out

    def _row_numbers(self, image_ids: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """Row of each (photo, keypoint), -1 where the photo or keypoint is not held."""
        ids, firsts, counts = self._sorted_table()
        if len(ids) == 0:
            return np.full(image_ids.shape, -1, np.int64)
        places = np.searchsorted(ids, image_ids).clip(0, len(ids) - 1)
        held = (ids[places] == image_ids) & (keypoints >= 0) & (keypoints < counts[places])
        return np.where(held, firsts[places] + keypoints, -1)

    def save(self, path: Path) -> DescriptorRows:
        """Write the held photos' rows, compacted, to `path` (atomically), and return
        rows reading them from there: what this object holds in memory can then go."""
        order = self.held()
        counts = np.array([self._count[i] for i in order], np.int64)
        photos = np.stack([np.array(order, np.int64), counts], axis=1).reshape(-1, 2)
        blocks = (self.photo(image_id) for image_id in order)
        write_blocks(path, blocks, int(counts.sum()), photos, "u1", self.dim)
        return DescriptorRows.load(path, self.dim)

    @classmethod
    def load(cls, path: Path, dim: int) -> DescriptorRows:
        """Rows saved by `save`, memory-mapped.

        Raises:
            OSError, ValueError: missing, damaged or not of this dimension.
        """
        rows = cls(dim)
        mapped, photos = map_blocks(path, "u1", dim)
        if photos.ndim != 2 or photos.shape[1] != 2 or photos[:, 1].sum() != len(mapped):
            raise ValueError(f"{path}: the photo table does not match the rows")
        firsts = np.cumsum(photos[:, 1]) - photos[:, 1]
        rows._mapped = mapped
        rows._first = dict(zip(photos[:, 0].tolist(), firsts.tolist(), strict=True))
        rows._count = dict(zip(photos[:, 0].tolist(), photos[:, 1].tolist(), strict=True))
        rows._total = len(mapped)
        return rows

    @staticmethod
    def files(path: Path) -> list[Path]:
        """The files `save(path)` writes."""
        return block_files(path)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows by their number among those written (`rows`), (len(rows), dim) uint8."""
        out = np.empty((len(rows), self.dim), np.uint8)
        mapped = rows < len(self._mapped)
        out[mapped] = self._mapped[rows[mapped]]
        out[~mapped] = self._added[rows[~mapped] - len(self._mapped)]
        return out

    def _sorted_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._table is None:
            ids = np.array(sorted(self._first), np.int64)
            firsts = np.array([self._first[i] for i in ids.tolist()], np.int64)
            counts = np.array([self._count[i] for i in ids.tolist()], np.int64)
            self._table = ids, firsts, counts
        return self._table
