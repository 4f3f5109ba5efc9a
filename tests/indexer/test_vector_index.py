"""The global-embedding index: exact search, the switch to PQ, removal, files."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from indexer import vector_index
from indexer.vector_index import VectorIndex

STRUCTURES = ["exact", "pq"]

DIM = 64
GALLERY = 5_000
QUERIES = 200
SWITCH_AT = 500


def unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 random unit vectors."""
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 unit vectors in 50 clusters: neighbours are close, like
    embeddings of photos of the same individual, which is what makes ANN search hard."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim))
    x = centres[rng.integers(50, size=n)] + 0.6 * rng.standard_normal((n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int):
    """Exact cosine top k: similarities (M, k) and ids (M, k)."""
    sims = queries @ vectors.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), ids[order]


def copy_of(index: VectorIndex, tmp_path: Path) -> VectorIndex:
    path = tmp_path / "copy.faiss"
    index.save(path)
    return VectorIndex.load(path, index.exact_max, index.refine_factor)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids (GALLERY,), gallery vectors (GALLERY, DIM) and queries (QUERIES, DIM)."""
    x = clustered(GALLERY + QUERIES, DIM)
    # Sparse, shuffled ids, so a result that returns positions instead of ids fails.
    ids = np.random.default_rng(1).choice(10**9, GALLERY, replace=False).astype(np.int64)
    return ids, x[:GALLERY], x[GALLERY:]


@pytest.fixture(scope="module", params=STRUCTURES)
def filled(request: pytest.FixtureRequest, data) -> VectorIndex:
    """The gallery added in three batches; "exact" never crosses exact_max. Shared by
    the module: tests that change it work on `copy_of` it."""
    ids, vectors, _ = data
    if request.param == "exact":
        index = VectorIndex(DIM)
    else:
        index = VectorIndex(DIM, exact_max=SWITCH_AT)
    # The second batch crosses exact_max; the third is added to the approximate index.
    for part in np.split(np.arange(GALLERY), [SWITCH_AT, 4_000]):
        index.add(ids[part], vectors[part])
    return index


@pytest.mark.parametrize("n_queries", [0, 3])
def test_empty_index_finds_nothing(n_queries: int) -> None:
    index = VectorIndex(16)
    scores, ids = index.search(unit(n_queries, 16), 5)
    assert ids.shape == scores.shape == (n_queries, 5)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    assert (ids == -1).all()
    assert np.isneginf(scores).all()
    assert index.size == 0


def test_k_larger_than_size_pads_with_missing() -> None:
    index = VectorIndex(16)
    index.add(np.array([10, 20, 30]), unit(3, 16))
    scores, ids = index.search(unit(2, 16, seed=1), 5)
    assert (np.sort(ids[:, :3], axis=1) == [10, 20, 30]).all()
    assert (ids[:, 3:] == -1).all()
    assert np.isfinite(scores[:, :3]).all() and np.isneginf(scores[:, 3:]).all()
    assert (np.diff(scores[:, :3], axis=1) <= 0).all()


def test_exact_search_is_brute_force_cosine() -> None:
    ids = np.random.default_rng(2).choice(10**6, 300, replace=False).astype(np.int64)
    vectors, queries = unit(300, 32), unit(25, 32, seed=3)
    index = VectorIndex(32)
    index.add(ids, vectors)
    scores, found = index.search(queries, 10)
    expected_scores, expected_ids = brute_force(queries, ids, vectors, 10)
    assert not index.approximate
    np.testing.assert_array_equal(found, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


@pytest.mark.parametrize(
    ("ids", "vectors", "message"),
    [
        pytest.param(
            np.arange(3),
            unit(3, 8),
            r"^vectors: expected \(N, 16\) float32 with unit L2 norm, got \(3, 8\) float32$",
            id="wrong-dim",
        ),
        pytest.param(np.arange(1), unit(1, 16)[0], r"got \(16,\) float32$", id="one-dimensional"),
        pytest.param(
            np.arange(3),
            unit(3, 16).astype(np.float64),
            r"got \(3, 16\) float64$",
            id="float64",
        ),
        pytest.param(np.arange(3), unit(3, 16).tolist(), r"got list$", id="not-an-array"),
        pytest.param(
            np.arange(3),
            2 * unit(3, 16),
            r"unit L2 norm, got \(3, 16\) float32 with 3 rows of norm 2 to 2$",
            id="not-normalised",
        ),
        pytest.param(
            np.arange(3),
            np.where(np.arange(16) == 4, np.nan, unit(3, 16)).astype(np.float32),
            r"got \(3, 16\) float32 with non-finite values$",
            id="nan",
        ),
        pytest.param(
            np.arange(2),
            unit(3, 16),
            r"^ids: expected \(3,\) int64, non-negative \(one per vector\), got \(2,\) int64$",
            id="ids-length",
        ),
        pytest.param(np.arange(3.0), unit(3, 16), r"^ids: .* got \(3,\) float64$", id="float-ids"),
        pytest.param(
            np.array([0, -1, 2]), unit(3, 16), r"got negative ids \[-1\]$", id="negative-id"
        ),
        pytest.param(
            np.array([7, 8, 7]),
            unit(3, 16),
            r"^ids: duplicate ids in the batch: \[7\]$",
            id="duplicate-ids",
        ),
    ],
)
def test_add_rejects_bad_input(ids: np.ndarray, vectors: np.ndarray, message: str) -> None:
    index = VectorIndex(16)
    with pytest.raises(ValueError, match=message):
        index.add(ids, vectors)
    assert index.size == 0


def test_add_rejects_ids_already_present() -> None:
    index = VectorIndex(16)
    index.add(np.array([1, 2, 3]), unit(3, 16))
    with pytest.raises(ValueError, match=r"^ids: already in the index: \[2, 3\]$"):
        index.add(np.array([2, 3, 4]), unit(3, 16, seed=1))
    assert index.size == 3
    assert 4 not in index.search(unit(3, 16, seed=1), 4)[1]


@pytest.mark.parametrize(
    ("queries", "k", "message"),
    [
        (unit(2, 16).astype(np.float64), 3, r"^queries: expected \(N, 16\) float32 .* float64$"),
        (unit(2, 16), 0, r"^k: expected >= 1, got 0$"),
    ],
)
def test_search_rejects_bad_input(queries: np.ndarray, k: int, message: str) -> None:
    index = VectorIndex(16)
    index.add(np.arange(4), unit(4, 16))
    with pytest.raises(ValueError, match=message):
        index.search(queries, k)


def test_add_past_exact_max_switches_and_keeps_every_vector() -> None:
    vectors = unit(101, 16)
    ids = np.arange(101, dtype=np.int64) * 3
    index = VectorIndex(16, exact_max=100)
    index.add(ids[:100], vectors[:100])
    assert not index.approximate
    index.add(ids[100:], vectors[100:])
    assert index.approximate
    assert index.size == 101
    # Vectors added before the switch moved into the approximate index, under their ids.
    np.testing.assert_array_equal(index.search(vectors, 1)[1][:, 0], ids)


def test_the_pq_index_does_not_depend_on_where_the_adds_crossed_exact_max(
    tmp_path: Path,
) -> None:
    # A server following another process's enrolment adds in whatever batches it catches
    # up with; trained on the vectors present at the crossing, its index differed from one
    # built in one add.
    vectors = unit(900, 16)
    ids = np.arange(900, dtype=np.int64)
    saved = []
    for name, batches in {
        "at once": [900],
        "in batches": [450, 100, 350],
        "one by one": [1] * 900,
    }.items():
        index = VectorIndex(16, exact_max=500)
        for part in np.split(np.arange(900), np.cumsum(batches)[:-1]):
            index.add(ids[part], vectors[part])
        assert index.approximate
        index.save(tmp_path / name)
        saved.append((tmp_path / name).read_bytes())
    assert saved[0] == saved[1] == saved[2]


def test_recall_at_10_against_exact(filled: VectorIndex, data) -> None:
    ids, vectors, queries = data
    scores, found = filled.search(queries, 10)
    _, expected = brute_force(queries, ids, vectors, 10)
    recall = np.mean([len(np.intersect1d(f, e)) / 10 for f, e in zip(found, expected)])
    assert filled.approximate == (filled.exact_max == SWITCH_AT)
    assert filled.size == GALLERY
    assert recall >= 0.95, recall
    # Scores are the cosine of the query and the vector stored under the returned id.
    position = {int(i): p for p, i in enumerate(ids)}
    stored = vectors[np.vectorize(position.__getitem__)(found)]
    np.testing.assert_allclose(scores, np.einsum("md,mkd->mk", queries, stored), atol=1e-5)


def test_remove_hides_removed_ids(filled: VectorIndex, data, tmp_path: Path) -> None:
    ids, vectors, _ = data
    index = copy_of(filled, tmp_path)
    gone = np.random.default_rng(4).choice(GALLERY, 600, replace=False)
    unknown = np.array([10**12])
    assert index.remove(np.concatenate([ids[gone], unknown])) == 600
    assert index.remove(ids[gone]) == 0
    assert index.size == GALLERY - 600
    # Querying with the removed vectors themselves is the hardest case: without removal
    # each would find itself first.
    _, found = index.search(vectors[gone], 10)
    assert not np.isin(found, ids[gone]).any()
    assert (found >= 0).all(), "removed vectors must not leave holes in the top k"


@pytest.mark.parametrize("exact_max", [500, 50], ids=["exact", "pq"])
def test_removed_id_can_be_added_again(exact_max: int) -> None:
    vectors = unit(200, 16)
    index = VectorIndex(16, exact_max=exact_max)
    index.add(np.arange(200), vectors)
    assert index.remove(np.array([7])) == 1
    replacement = unit(1, 16, seed=9)
    index.add(np.array([7]), replacement)
    scores, found = index.search(replacement, 1)
    assert found[0, 0] == 7 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert index.search(vectors[7:8], 1)[1][0, 0] != 7
    assert index.size == 200


def test_pq_stays_pq_when_removals_shrink_it_below_exact_max() -> None:
    vectors = unit(300, 16)
    ids = np.arange(300, dtype=np.int64)
    index = VectorIndex(16, exact_max=50)
    index.add(ids, vectors)
    index.remove(ids[:260])
    assert index.approximate and index.size == 40
    np.testing.assert_array_equal(index.search(vectors[260:], 1)[1][:, 0], ids[260:])


def test_save_load_round_trip(filled: VectorIndex, data, tmp_path: Path) -> None:
    ids, _, queries = data
    loaded = copy_of(filled, tmp_path)
    assert (loaded.size, loaded.approximate) == (filled.size, filled.approximate)
    for got, expected in zip(loaded.search(queries, 10), filled.search(queries, 10)):
        np.testing.assert_array_equal(got, expected)
    # Removals are part of the file.
    loaded.remove(ids[:600])
    reloaded = copy_of(loaded, tmp_path)
    assert (reloaded.size, reloaded.approximate) == (loaded.size, loaded.approximate)
    for got, expected in zip(reloaded.search(queries, 10), loaded.search(queries, 10)):
        np.testing.assert_array_equal(got, expected)


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "indexes" / "vectors.faiss"
    index = VectorIndex(16)
    index.add(np.arange(5), unit(5, 16))
    index.save(path)
    index.add(np.arange(5, 10), unit(5, 16, seed=1))
    index.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["vectors.faiss"]
    assert VectorIndex.load(path).size == 10


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "vectors.faiss"
    index = VectorIndex(16)
    index.add(np.arange(5), unit(5, 16))
    index.save(path)
    before = path.read_bytes()

    def crash(_index: faiss.Index, name: str) -> None:
        Path(name).write_bytes(b"half an index")
        raise OSError("disk full")

    monkeypatch.setattr(vector_index.faiss, "write_index", crash)
    index.add(np.arange(5, 10), unit(5, 16, seed=1))
    with pytest.raises(OSError, match="disk full"):
        index.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["vectors.faiss"]


@pytest.mark.parametrize(
    ("index", "message"),
    [
        pytest.param(
            faiss.IndexIDMap2(faiss.IndexFlatL2(16)),
            r"inner-product .* got IndexIDMap2 with metric 1$",
            id="l2-metric",
        ),
        pytest.param(
            faiss.IndexIDMap2(faiss.IndexHNSWFlat(16, 8, faiss.METRIC_INNER_PRODUCT)),
            r"over IndexFlat or IndexRefineFlat; got IndexIDMap2 with metric 0$",
            id="hnsw",
        ),
    ],
)
def test_load_refuses_other_faiss_indexes(index: faiss.Index, message: str, tmp_path: Path) -> None:
    path = tmp_path / "other.faiss"
    faiss.write_index(index, str(path))
    with pytest.raises(ValueError, match=message):
        VectorIndex.load(path)


def test_refine_factor_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^refine_factor: expected >= 1, got 0$"):
        VectorIndex(16, refine_factor=0)


def test_pq_refine_factor_trades_recall(data) -> None:
    ids, vectors, queries = data
    _, expected = brute_force(queries, ids, vectors, 10)
    index = VectorIndex(DIM, exact_max=SWITCH_AT, refine_factor=1)
    index.add(ids, vectors)

    def recall() -> float:
        found = index.search(queries, 10)[1]
        return float(np.mean([len(np.intersect1d(f, e)) / 10 for f, e in zip(found, expected)]))

    coarse = recall()
    index.refine_factor = 50
    # The 4-bit codes alone order near neighbours poorly; the exact re-ranking fixes it.
    assert coarse < 0.9 and recall() >= 0.99, (coarse, recall())


@pytest.mark.parametrize("removed", [1, 32, 33])
def test_pq_vectors_added_after_removals_are_found(removed: int) -> None:
    # In-place removal from FAISS's fast-scan codes misplaced the next added codes when
    # 32 of 3 000 had been removed; the index encodes the rest again instead.
    vectors = unit(3_001, 16)
    ids = np.arange(3_001, dtype=np.int64)
    index = VectorIndex(16, exact_max=500)
    index.add(ids[:3_000], vectors[:3_000])
    assert index.remove(ids[: 2 * removed : 2]) == removed
    index.add(ids[3_000:], vectors[3_000:])
    live = np.setdiff1d(ids, ids[: 2 * removed : 2])
    assert index.size == len(live)
    found = index.search(vectors[live], 1)[1][:, 0]
    assert np.mean(found == live) >= 0.99
    assert found[-1] == 3_000
