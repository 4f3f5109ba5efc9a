"""The descriptor index: exact when small, then IVF with compact codes; when to rebuild;
removal; files."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np
import pytest

from indexer import descriptor_index, search_threads
from indexer.descriptor_index import DescriptorIndex
from indexer.results import BuildStage, Progress, Stages

_CENTRES = 200
"""Shared centres of the synthetic descriptors, like real SIFT's lumpy distribution. With
50 (240 descriptors around each, within noise of one another) 16-byte codes re-scored
x4 found half the near copies; real RootSIFT near copies were found 99.7% of the time
(60 right-whale photos, 2026-12-03), as they are here."""


def clustered(rng: np.random.Generator, photos: int, per_photo: int) -> list[np.ndarray]:
    """uint8 descriptors around `_CENTRES` shared centres."""
    centres = rng.integers(0, 200, (_CENTRES, 128))
    return [
        np.clip(
            centres[rng.integers(0, _CENTRES, per_photo)] + rng.normal(0, 12, (per_photo, 128)),
            0,
            255,
        ).astype(np.uint8)
        for _ in range(photos)
    ]


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return clustered(np.random.default_rng(0), 60, 200)


def build(photos: list[np.ndarray], exact_max: int, nprobe: int = 16) -> DescriptorIndex:
    index = DescriptorIndex(128, exact_max, nprobe)
    index.build(enumerate(photos, start=1))
    return index


def test_large_gallery_gets_an_ivf_index(photos) -> None:
    index = build(photos, exact_max=1_000)
    assert index.approximate
    assert faiss.extract_index_ivf(index._index).nlist > 1
    assert index.size == sum(len(p) for p in photos)


def test_ivf_codes_are_compact(photos) -> None:
    # The IVF kept in memory, list centres included, holds under 48 bytes a descriptor
    # of 128 (the exact rows are kept apart, on disk once saved), and under a third of
    # what 8-bit scalar codes take; the centres weigh less in a larger gallery.
    index = build(photos, exact_max=1_000)
    in_memory = faiss.serialize_index(index._index).nbytes
    assert in_memory < index.size * 48
    scalar = DescriptorIndex(128, 1_000, 16, codes="SQ8")
    scalar.build(enumerate(photos, start=1))
    assert in_memory < faiss.serialize_index(scalar._index).nbytes / 3


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


def test_an_index_grown_photo_by_photo_is_the_one_built_at_once(photos) -> None:
    # The IVF is trained on the first `trained_size` descriptors, not on whatever the
    # catalogue held when it outgrew the last index (the catch-ups of a process following
    # another's enrolment: `test_gallery`).
    grown = DescriptorIndex(128, 500, 16)
    for image_id, photo in enumerate(photos[:45], start=1):
        grown.add(image_id, photo)
        if grown.outgrown:
            grown.build(enumerate(photos[:image_id], start=1))
    at_once = build(photos[:45], exact_max=500)
    assert at_once.approximate
    assert faiss.extract_index_ivf(at_once._index).nlist == descriptor_index._list_count(8_000)
    assert grown.to_bytes() == at_once.to_bytes()


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
    # Adding and removing assign descriptors to lists as wide as searches look for them.
    assert quantizer.hnsw.efSearch == descriptor_index._GRAPH_WIDTH
    queries = photos[7][:100]
    same = flat.search(queries, 1)[1] == graph.search(queries, 1)[1]
    assert same.mean() >= 0.95
    graph.save(tmp_path / "g.faiss")
    loaded = DescriptorIndex.load(tmp_path / "g.faiss", 1_000, 16)
    assert np.array_equal(graph.search(queries, 4)[1], loaded.search(queries, 4)[1])


def test_the_graph_is_searched_as_wide_as_the_engine_says_whatever_was_saved(
    photos, monkeypatch
) -> None:
    # The width of the list-centre graph's search is given with each search, so an index
    # saved by a version with another width searches with this version's.
    monkeypatch.setattr(descriptor_index, "_GRAPH_LISTS", 8)
    # Trained on 8 000 of the 12 000 descriptors (1 000 would train it on 4 000): enough
    # list centres for the search width to matter.
    graph = build(photos, exact_max=500)
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(graph._index).quantizer)
    queries = photos[7][:100]

    def distances_computed(saved_width: int) -> int:
        quantizer.hnsw.efSearch = saved_width
        faiss.cvar.hnsw_stats.reset()
        graph.search(queries, 4)
        return faiss.cvar.hnsw_stats.ndis

    assert quantizer.ntotal > 4 * descriptor_index._GRAPH_WIDTH
    engine = distances_computed(descriptor_index._GRAPH_WIDTH)
    assert distances_computed(4 * descriptor_index._GRAPH_WIDTH) == engine
    assert distances_computed(16) == engine
    monkeypatch.setattr(descriptor_index, "_GRAPH_WIDTH", 2 * descriptor_index._GRAPH_WIDTH)
    assert distances_computed(16) > engine


def exact_distances(photos: list[np.ndarray], image_ids, keypoints, queries) -> np.ndarray:
    rows = np.stack([photos[i - 1][k] for i, k in zip(image_ids.ravel(), keypoints.ravel())])
    difference = np.repeat(queries.astype(float), image_ids.shape[1], axis=0) - rows
    return np.sqrt((difference**2).sum(1)).reshape(image_ids.shape)


def test_an_ivf_index_ranks_its_candidates_by_exact_distance(photos) -> None:
    # The codes only find candidates: the distances returned, and their order, are those
    # of the exact descriptors, as the LNBNN weights need.
    index = build(photos, exact_max=1_000)
    queries = photos[9][:40]
    distances, image_ids, keypoints = index.search(queries, 5)
    assert (image_ids > 0).all()
    assert np.allclose(distances, exact_distances(photos, image_ids, keypoints, queries), atol=1e-3)
    assert (np.diff(distances, axis=1) >= 0).all()
    candidates = index.candidates(queries, 5)
    assert candidates.kept == 5 * descriptor_index.RESCORED
    assert candidates.coded.shape[1] > candidates.kept
    # The exact nearest among the candidates, which the codes alone would misorder.
    assert not np.allclose(candidates.coded, candidates.exact, atol=1e-3)


def test_a_query_searched_in_parts_on_every_core_gets_the_answer_it_gets_whole(photos) -> None:
    # A query photo's descriptors are split over the cores (`in_parts`); each part is
    # searched alone here, one thread, and the whole must be those parts in order.
    index = build(photos, exact_max=1_000)
    queries = np.concatenate([photos[3], photos[40]])  # 400 rows: parts on 2+ cores
    assert len(queries) >= 2 * search_threads._ROWS_PER_PART
    whole = index.candidates(queries, 4)
    alone = [index._candidates_of(queries[i : i + 50], 4) for i in range(0, len(queries), 50)]
    for name in ("coded", "exact", "image_ids", "keypoints"):
        assert np.array_equal(
            getattr(whole, name), np.concatenate([getattr(a, name) for a in alone])
        )
    assert whole.kept == alone[0].kept
    assert (index.search(queries, 4)[1][:200, 0] == 4).all()


def test_a_build_reads_its_photos_once_and_keeps_their_rows_out_of_memory(photos, tmp_path) -> None:
    # What a catalogue of 100 000 photos needs: its 12 GB of descriptors streamed from the
    # database into the build, never all in memory, their rows written to a nameless
    # file in the scratch folder, which leaves nothing behind.
    read = []

    def streamed():
        for image_id, photo in enumerate(photos[:50], start=1):
            read.append(image_id)
            yield image_id, photo

    scratch = tmp_path / "scratch"
    index = DescriptorIndex(128, 1_000, 16)
    index.build(streamed(), scratch=scratch)
    assert read == list(range(1, 51))
    assert index.rows_memory_bytes == 0
    assert list(scratch.iterdir()) == []
    assert index.to_bytes() == build(photos[:50], exact_max=1_000).to_bytes()
    queries = photos[7][:30]
    distances, image_ids, keypoints = index.search(queries, 4)
    assert (image_ids[:, 0] == 8).all()
    assert np.allclose(distances, exact_distances(photos, image_ids, keypoints, queries), atol=1e-3)


def reported() -> tuple[list[tuple[str, int, int]], Stages]:
    """A `stages` callback and the (stage, done, total) it is told, in order."""
    told: list[tuple[str, int, int]] = []

    def stages(stage: str) -> Progress:
        return lambda done, total: told.append((stage, done, total))

    return told, stages


def test_a_build_reports_its_training_then_each_photo_added(photos) -> None:
    # The training has no progress of its own (total 0: said as it begins); the adding,
    # most of a large build with the training, goes photo by photo.
    told, stages = reported()
    DescriptorIndex(128, 1_000, 16).build(enumerate(photos[:6], start=1), stages=stages)
    assert told == [
        (BuildStage.TRAINING, 0, 0),
        *[(BuildStage.ADDING, done, 6) for done in range(1, 7)],
    ]
    # A small index is exact: nothing to train.
    told, stages = reported()
    DescriptorIndex(128, 10_000, 16).build(enumerate(photos[:3], start=1), stages=stages)
    assert told == [(BuildStage.ADDING, done, 3) for done in range(1, 4)]


def test_saved_rows_are_read_from_disk_and_later_ones_kept_in_memory(photos, tmp_path) -> None:
    index = build(photos[:50], exact_max=1_000)
    index.save(tmp_path / "d.faiss")
    assert index.rows_memory_bytes == 0  # mapped from the file it saved
    loaded = DescriptorIndex.load(tmp_path / "d.faiss", 1_000, 16)
    assert loaded.rows_memory_bytes == 0
    loaded.add(51, photos[50])
    loaded.remove(2)
    assert loaded.rows_memory_bytes >= photos[50].nbytes
    queries = np.vstack([photos[50][:20], photos[1][:20], photos[3][:20]])
    distances, image_ids, keypoints = loaded.search(queries, 4)
    assert 2 not in image_ids and (image_ids[:20, 0] == 51).all()
    assert np.allclose(distances, exact_distances(photos, image_ids, keypoints, queries), atol=1e-3)
    loaded.save(tmp_path / "e.faiss")  # compacted: photo 2's rows are gone
    again = DescriptorIndex.load(tmp_path / "e.faiss", 1_000, 16)
    assert np.array_equal(again.search(queries, 4)[1], image_ids)
    rows = np.load(tmp_path / "e.faiss.rows", mmap_mode="r")
    assert len(rows) == again.size == sum(len(p) for p in photos[:51]) - len(photos[1])


@pytest.mark.parametrize("damage", ["missing", "short"])
def test_an_index_without_its_rows_does_not_load(photos, tmp_path, damage: str) -> None:
    index = build(photos, exact_max=1_000)
    index.save(tmp_path / "d.faiss")
    rows = tmp_path / "d.faiss.rows"
    if damage == "missing":
        rows.unlink()
    else:
        data = rows.read_bytes()
        rows.write_bytes(data[: len(data) - 128 * 10])
    with pytest.raises(RuntimeError):
        DescriptorIndex.load(tmp_path / "d.faiss", 1_000, 16)


def test_a_serialised_index_carries_its_rows(photos) -> None:
    index = build(photos, exact_max=1_000)
    copy = DescriptorIndex.from_bytes(index.to_bytes(), 1_000, 16)
    queries = photos[4][:30]
    assert all(
        np.array_equal(a, b) for a, b in zip(index.search(queries, 4), copy.search(queries, 4))
    )


@pytest.mark.parametrize("codes", [descriptor_index.CODES, "SQ8"])
def test_descriptors_added_after_removals_are_found(photos, codes: str) -> None:
    # FAISS 1.15 left stale bits in the lists after an in-place removal: a photo added
    # after removals found 2-40 % of its own descriptors, not 95 %.
    index = DescriptorIndex(128, 1_000, 16, codes=codes)
    index.build(enumerate(photos[:50], start=1))
    for image_id in range(1, 50, 3):
        assert index.remove(image_id) == len(photos[image_id - 1])
    for image_id in range(51, 61):
        index.add(image_id, photos[image_id - 1])
    live = [i for i in range(1, 61) if i > 50 or (i - 1) % 3]
    assert index.size == sum(len(photos[i - 1]) for i in live)
    for image_id in (51, 60, 2, 50):
        _, image_ids, keypoints = index.search(photos[image_id - 1], 1)
        found = (image_ids[:, 0] == image_id) & (keypoints[:, 0] == np.arange(200))
        assert found.mean() >= 0.95, (image_id, found.mean())


def test_an_index_merged_from_shards_is_the_one_built_by_adding(photos) -> None:
    # As the cluster fills it: shards of one training, merged in order. FAISS 1.15 left
    # stale bits in the merged lists, which corrupted the codes added after.
    ids = list(range(1, 51))
    whole = build(photos[:50], exact_max=1_000)

    def in_shards(index: DescriptorIndex, image_ids: list[int], descriptors) -> None:
        for start, end in ((0, 17), (17, 50)):
            shard = index.empty_copy()
            for image_id in image_ids[start:end]:
                shard.add(image_id, descriptors(image_id))
            index.merge(shard)

    merged = DescriptorIndex(128, 1_000, 16)
    told, stages = reported()
    merged.build(zip(ids, photos[:50]), fill=in_shards, stages=stages)
    assert merged.to_bytes() == whole.to_bytes()
    # A fill reports its start and its end only.
    assert told == [
        (BuildStage.TRAINING, 0, 0),
        (BuildStage.ADDING, 0, 50),
        (BuildStage.ADDING, 50, 50),
    ]
    for image_id in range(51, 61):
        whole.add(image_id, photos[image_id - 1])
        merged.add(image_id, photos[image_id - 1])
    assert merged.to_bytes() == whole.to_bytes()


def test_an_emptied_ivf_index_saves_and_loads(photos, tmp_path: Path) -> None:
    index = build(photos[:10], exact_max=1_000)
    for image_id in range(1, 11):
        index.remove(image_id)
    index.save(tmp_path / "d.faiss")
    loaded = DescriptorIndex.load(tmp_path / "d.faiss", 1_000, 16)
    distances, image_ids, _ = loaded.search(photos[0][:5], 3)
    assert loaded.size == 0 and (image_ids == -1).all() and np.isinf(distances).all()


def test_a_search_in_a_new_thread_runs_on_one_openmp_thread(photos) -> None:
    """OpenMP's thread count belongs to each thread: a server worker thread, or a roll
    hypothesis's, would otherwise search with a team of every core."""
    index = build(photos, 1_000)
    seen: list[int] = []

    search = index._index.search

    def recording(*args, **kwargs):
        seen.append(faiss.omp_get_max_threads())
        return search(*args, **kwargs)

    index._index.search = recording
    with ThreadPoolExecutor(1) as pool:
        before = pool.submit(faiss.omp_get_max_threads).result()
        pool.submit(index.search, photos[0], 5).result()
        after = pool.submit(faiss.omp_get_max_threads).result()
    assert seen and set(seen) == {1}  # one search a part of the query (`in_parts`)
    assert after == before
