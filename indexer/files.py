"""Atomic file replacement for the derived index files, and the per-photo arrays among
them: blocks of rows written one after another as one memory-mapped `.npy` file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` atomically.

    A crash at any point leaves either the old file or the complete new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_blocks(
    path: Path, blocks: Iterable[np.ndarray], rows: int, table: np.ndarray, dtype: str, width: int
) -> None:
    """Write `blocks` ((n, width) arrays, one per photo, `rows` rows in all) one after
    another as one (rows, width) `.npy` file of `dtype` without stacking them in memory,
    and `table`, which says whose rows are where, beside it; each atomically."""
    with replacing(path) as tmp, tmp.open("wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": (rows, width)}
        )
        for block in blocks:
            handle.write(np.ascontiguousarray(block, dtype).tobytes())
    with replacing(_table_path(path)) as tmp, tmp.open("wb") as handle:
        np.save(handle, table)


def map_blocks(path: Path, dtype: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The (N, `width`) array `write_blocks` wrote, memory-mapped, and its table.

    Raises:
        OSError, ValueError: missing, damaged, or not (N, `width`) of `dtype`.
    """
    mapped = np.load(path, mmap_mode="r")
    if mapped.dtype != np.dtype(dtype) or mapped.ndim != 2 or mapped.shape[1] != width:
        raise ValueError(f"{path}: not (N, {width}) {np.dtype(dtype).name} rows")
    return mapped, np.load(_table_path(path))


def block_files(path: Path) -> list[Path]:
    """The files `write_blocks(path, ...)` writes."""
    return [path, _table_path(path)]


def _table_path(path: Path) -> Path:
    return path.with_name(path.name + ".photos")
