"""The keypoint positions that verify a saved index's photos, saved beside it.

A restart maps them instead of reading every photo's keypoints from the database, which
is linear in the catalogue (0.09-0.3 ms a photo, warm and cold, on 2026-12-04's 2-core
machine: 10-30 s at 100 000 photos); pages are read when a search verifies that photo.
Like the index, they are a cache: a missing or damaged file means reading the database.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.files import block_files, map_blocks, write_blocks

__all__ = ["PhotoPoints", "load_points", "point_files", "save_points"]

PhotoPoints = dict[int, tuple[np.ndarray, float]]
"""image id -> ((N, 2) float32 keypoint positions, RANSAC tolerance in pixels)."""

_TABLE = np.dtype([("image_id", "<i8"), ("count", "<i8"), ("tolerance", "<f8")])


def save_points(path: Path, photos: PhotoPoints) -> None:
    """Write the positions to `path` and their table beside it, each atomically."""
    order = sorted(photos)
    table = np.array([(i, len(photos[i][0]), photos[i][1]) for i in order], dtype=_TABLE).reshape(
        -1
    )
    blocks = (photos[image_id][0] for image_id in order)
    write_blocks(path, blocks, int(table["count"].sum()), table, "f4", 2)


def load_points(path: Path) -> PhotoPoints:
    """The positions saved by `save_points`, memory-mapped.

    Raises:
        OSError, ValueError: missing, damaged, or the table does not match the positions.
    """
    mapped, table = map_blocks(path, "f4", 2)
    if table.dtype != _TABLE or table["count"].sum() != len(mapped):
        raise ValueError(f"{path}: the photo table does not match the positions")
    ends = np.cumsum(table["count"])
    return {
        int(image_id): (mapped[end - count : end], float(tolerance))
        for image_id, count, tolerance, end in zip(
            table["image_id"].tolist(),
            table["count"].tolist(),
            table["tolerance"].tolist(),
            ends.tolist(),
            strict=True,
        )
    }


def point_files(path: Path) -> list[Path]:
    """The files `save_points(path)` writes."""
    return block_files(path)
