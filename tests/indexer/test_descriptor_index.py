"""The descriptor index: exact when small, then IVF with compact codes; when to rebuild;
removal; files."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from indexer import descriptor_index
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


def test_ivf_codes_are_compact(photos) -> None:
    # The saved IVF, list centres included, is far smaller than float32 descriptors, and
    # the compact comparison codes (32 bytes) smaller again.
    index = build(photos, exact_max=1_000)
    saved = faiss.serialize_index(index._index).nbytes
    assert saved < index.size * 512 / 3
    compact = DescriptorIndex(128, 1_000, 16, codes="PQ64x4fs")
    compact.build(list(range(1, len(photos) + 1)), photos)
    assert faiss.serialize_index(compact._index).nbytes < saved / 2


def test_an_index_is_outgrown_when_its_structure_no_longer_suits_its_size(photos) -> None:
    exact = DescriptorIndex(128, 1_000, 16)
    for image_id, photo in enumerate(photos[:5], start=1):
        exact.add(image_id, photo)
    assert not exact.outgrown
    exact.add(6, photos[5])  # 1 200 descriptors
    assert not exact.approximate and exact.outgrown
    ivf = build(photos, exact_max=1_000)
    assert ivf.approximate and not ivf.outgrown
    for image_id, photo in enumerate(photos * 3, start=100):  # four times what it was built on
        ivf.add(image_id, photo)
    assert ivf.outgrown


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


def test_many_lists_are_found_through_a_graph(photos, monkeypatch, tmp_path: Path) -> None:
    # Past _GRAPH_LISTS lists the list centres are searched through HNSW; lowered here so
    # that a small gallery takes that path. It must find what the flat quantizer finds.
    flat = build(photos, exact_max=1_000)
    monkeypatch.setattr(descriptor_index, "_GRAPH_LISTS", 8)
    graph = build(photos, exact_max=1_000)
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(graph._index).quantizer)
    assert isinstance(quantizer, faiss.IndexHNSWFlat)
    queries = photos[7][:100]
    same = flat.search(queries, 1)[1] == graph.search(queries, 1)[1]
    assert same.mean() >= 0.95
    graph.save(tmp_path / "g.faiss")
    loaded = DescriptorIndex.load(tmp_path / "g.faiss", 1_000, 16)
    assert np.array_equal(graph.search(queries, 4)[1], loaded.search(queries, 4)[1])
