"""The keypoint positions that verify a saved index's photos, saved beside it.

A restart maps them instead of reading every photo's keypoints from the database, which
is linear in the catalogue (0.09-0.3 ms a photo, warm and cold, on 2026-12-04's 2-core
machine: 10-30 s at 100 000 photos); pages are read when a search verifies that photo.
Like the index, they are a cache: a missing or damaged file means reading the database.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.files import replacing

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
    with replacing(path) as tmp, tmp.open("wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle,
            {"descr": "<f4", "fortran_order": False, "shape": (int(table["count"].sum()), 2)},
        )
        for image_id in order:
            handle.write(np.ascontiguousarray(photos[image_id][0], "<f4").tobytes())
    with replacing(_table_path(path)) as tmp, tmp.open("wb") as handle:
        np.save(handle, table)


def load_points(path: Path) -> PhotoPoints:
    """The positions saved by `save_points`, memory-mapped.

    Raises:
        OSError, ValueError: missing, damaged, or the table does not match the positions.
    """
    mapped = np.load(path, mmap_mode="r")
    table = np.load(_table_path(path))
    if mapped.dtype != np.float32 or mapped.ndim != 2 or mapped.shape[1] != 2:
        raise ValueError(f"{path}: not (N, 2) float32 positions")
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
    return [path, _table_path(path)]


def _table_path(path: Path) -> Path:
    return path.with_name(path.name + ".photos")
