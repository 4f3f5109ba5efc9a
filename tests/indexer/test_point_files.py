"""Keypoint positions saved beside the index: read back as written, mapped, or refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.point_files import load_points, point_files, save_points


def _photos() -> dict[int, tuple[np.ndarray, float]]:
    rng = np.random.default_rng(3)
    return {
        image_id: (rng.uniform(0, 600, (count, 2)).astype(np.float32), 2.5 * image_id)
        for image_id, count in [(9, 40), (2, 0), (5, 17)]
    }


def test_saved_positions_are_read_back_memory_mapped(tmp_path: Path) -> None:
    photos = _photos()
    save_points(tmp_path / "p", photos)
    loaded = load_points(tmp_path / "p")
    assert loaded.keys() == photos.keys()
    for image_id, (points, tolerance) in photos.items():
        assert np.array_equal(loaded[image_id][0], points)
        assert loaded[image_id][1] == tolerance
    assert isinstance(loaded[9][0], np.memmap)


@pytest.mark.parametrize("damage", ["positions", "table", "truncated"])
def test_damaged_positions_are_refused(tmp_path: Path, damage: str) -> None:
    save_points(tmp_path / "p", _photos())
    positions, table = point_files(tmp_path / "p")
    if damage == "positions":
        positions.unlink()
    elif damage == "table":
        table.write_bytes(b"not a table")
    else:
        np.save(positions.open("wb"), np.zeros((3, 2), np.float32))
    with pytest.raises((OSError, ValueError)):
        load_points(tmp_path / "p")
