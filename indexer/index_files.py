"""The saved local-feature index: a FAISS file, its photos' keypoint positions, and a
state file saying what they hold.

All are caches of the database, so a missing, damaged or foreign index only means a
rebuild, and missing positions only reading them from the database. Each save writes new
files and then swaps the state file that names them, so a process reading them while
another saves never sees files of two saves.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import msgspec

from indexer.descriptor_index import DescriptorIndex
from indexer.files import replacing
from indexer.point_files import PhotoPoints, load_points, point_files, save_points

__all__ = ["IndexState", "load_index", "save_index"]

_STATE_FILE = "state.json"
# An index file no state names is removed only once it is this old: another process
# may have written it and not yet swapped its state file in.
_ORPHAN_AGE_S = 600.0


class IndexState(msgspec.Struct, frozen=True, kw_only=True):
    """What a saved index was built from."""

    extractor: str
    version: str
    epoch: int
    max_feature_id: int
    image_ids: list[int]
    """The photos whose descriptors the index holds."""
    index_file: str


def save_index(
    folder: Path, index: DescriptorIndex, state: IndexState, points: PhotoPoints
) -> None:
    """Write the index and its photos' keypoint positions under a new name, then the
    state naming them; each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    superseded = _read_state(folder)
    name = f"descriptors-{state.extractor}-{secrets.token_hex(4)}.faiss"
    index.save(folder / name)
    save_points(_points_path(folder / name), points)
    with replacing(folder / _STATE_FILE) as tmp:
        tmp.write_bytes(msgspec.json.encode(msgspec.structs.replace(state, index_file=name)))
    kept = {path.name for path in _files(folder / name)}
    gone = set()
    if superseded is not None:
        gone = {path.name for path in _files(folder / superseded.index_file)}
    for old in folder.glob("descriptors-*"):
        if old.name in kept:
            continue
        if old.name in gone or time.time() - old.stat().st_mtime > _ORPHAN_AGE_S:
            old.unlink(missing_ok=True)


def load_index(
    folder: Path, extractor: str, version: str, exact_max: int, nprobe: int
) -> tuple[DescriptorIndex, IndexState, PhotoPoints | None] | None:
    """The saved index, its state and its photos' keypoint positions (None when they
    are missing or damaged, or do not cover the index's photos: read them from the
    database), or None when there is no index for this extractor version or it will
    not load."""
    state = _read_state(folder)
    if state is None or state.extractor != extractor or state.version != version:
        return None
    try:
        index = DescriptorIndex.load(folder / state.index_file, exact_max, nprobe)
    except RuntimeError:  # missing or damaged
        return None
    try:
        points: PhotoPoints | None = load_points(_points_path(folder / state.index_file))
    except (OSError, ValueError):
        points = None
    if points is not None and points.keys() != set(state.image_ids):
        points = None
    return index, state, points


def _files(index_path: Path) -> list[Path]:
    return [*DescriptorIndex.files(index_path), *point_files(_points_path(index_path))]


def _points_path(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + ".points")


def _read_state(folder: Path) -> IndexState | None:
    try:
        return msgspec.json.decode((folder / _STATE_FILE).read_bytes(), type=IndexState)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
