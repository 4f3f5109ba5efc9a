"""The saved local-feature index: a FAISS file and a state file saying what it holds.

Both are caches of the database, so a missing, damaged or foreign pair only means a
rebuild. Each save writes a new FAISS file and then swaps the state file that names it,
so a process reading the pair while another saves never sees one file of each.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import msgspec

from indexer.descriptor_index import DescriptorIndex
from indexer.files import replacing

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


def save_index(folder: Path, index: DescriptorIndex, state: IndexState) -> None:
    """Write the index under a new name, then the state naming it; both atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    superseded = _read_state(folder)
    name = f"descriptors-{state.extractor}-{secrets.token_hex(4)}.faiss"
    index.save(folder / name)
    with replacing(folder / _STATE_FILE) as tmp:
        tmp.write_bytes(msgspec.json.encode(msgspec.structs.replace(state, index_file=name)))
    kept = {path.name for path in DescriptorIndex.files(folder / name)}
    gone = set()
    if superseded is not None:
        gone = {path.name for path in DescriptorIndex.files(folder / superseded.index_file)}
    for old in folder.glob("descriptors-*"):
        if old.name in kept:
            continue
        if old.name in gone or time.time() - old.stat().st_mtime > _ORPHAN_AGE_S:
            old.unlink(missing_ok=True)


def load_index(
    folder: Path, extractor: str, version: str, exact_max: int, nprobe: int
) -> tuple[DescriptorIndex, IndexState] | None:
    """The saved index and its state, or None when there is none for this extractor
    version or it will not load."""
    state = _read_state(folder)
    if state is None or state.extractor != extractor or state.version != version:
        return None
    try:
        return DescriptorIndex.load(folder / state.index_file, exact_max, nprobe), state
    except RuntimeError:  # missing or damaged
        return None


def _read_state(folder: Path) -> IndexState | None:
    try:
        return msgspec.json.decode((folder / _STATE_FILE).read_bytes(), type=IndexState)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
