"""The descriptor index: exact, then IVF with a graph over its lists; removal; files."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from indexer.descriptor_index import DescriptorIndex


def clustered(rng: np.random.Generator, photos: int, per_photo: int) -> list[np.ndarray]:
    """uint8 descriptors around 50 shared centres, like real SIFT's lumpy distribution."""
    centres = rng.integers(0, 200, (50, 128))
    return [
        np.clip(
            centres[rng.integers(0, 50, per_photo)] + rng.normal(0, 12, (per_photo, 128)), 0, 255
        ).astype(np.uint8)
        for _ in range(photos)
    ]


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return clustered(np.random.default_rng(0), 60, 200)


def build(photos: list[np.ndarray], exact_max: int, nprobe: int = 16) -> DescriptorIndex:
    index = DescriptorIndex(128, exact_max, nprobe)
    index.build(list(range(1, len(photos) + 1)), photos)
    return index


def test_large_gallery_gets_an_ivf_index(photos) -> None:
    index = build(photos, exact_max=1_000)
    assert index.approximate
    assert faiss.extract_index_ivf(index._index).nlist > 1
    assert index.size == sum(len(p) for p in photos)


def test_approximate_search_finds_near_copies(photos) -> None:
    # A true match is a near copy of a gallery descriptor: the approximate index must
    # find that very descriptor first, as exact search does.
    index = build(photos, exact_max=1_000)
    rng = np.random.default_rng(1)
    picks = [(int(i), int(k)) for i, k in zip(rng.integers(0, 60, 300), rng.integers(0, 200, 300))]
    queries = np.stack([photos[i][k] for i, k in picks]).astype(float)
    queries = np.clip(queries + rng.normal(0, 3, queries.shape), 0, 255).astype(np.uint8)
    _, image_ids, keypoints = index.search(queries, 1)
    found = [(image_ids[j, 0], keypoints[j, 0]) == (i + 1, k) for j, (i, k) in enumerate(picks)]
    assert np.mean(found) >= 0.9


@pytest.mark.parametrize("exact_max", [10**9, 1_000])
def test_removing_a_photo_removes_all_its_descriptors(photos, exact_max: int) -> None:
    index = build(photos, exact_max)
    assert index.remove(3) == len(photos[2])
    assert index.remove(3) == 0
    _, image_ids, _ = index.search(photos[2], 5)
    assert 3 not in image_ids
    assert index.size == sum(len(p) for p in photos) - len(photos[2])


def test_saved_index_searches_the_same(photos, tmp_path: Path) -> None:
    index = build(photos, exact_max=1_000)
    index.save(tmp_path / "d.faiss")
    loaded = DescriptorIndex.load(tmp_path / "d.faiss", 1_000, 16)
    queries = photos[5][:50]
    assert np.array_equal(index.search(queries, 4)[1], loaded.search(queries, 4)[1])
