"""The SQLite embedding database: round-trips, atomicity, epoch, durability."""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embeddings.protocol import GlobalEmbedding, LocalFeatures
from indexer.store import (
    SCHEMA_VERSION,
    Conflict,
    FeatureRow,
    Individual,
    InvalidInput,
    NewImage,
    NotFound,
    Store,
    StoreError,
)

LOCAL = ("rootsift", "1")
GLOBAL = ("megadesc", "2")


def sha(i: int | str) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def new_image(i: int | str, individual_id: str = "A", **kw: object) -> NewImage:
    return NewImage(
        sha256=sha(i),
        source_name=f"{i}.jpg",
        individual_id=individual_id,
        width=640,
        height=480,
        **kw,  # type: ignore[arg-type]
    )


def local(n: int, d: int = 128, seed: int = 0) -> LocalFeatures:
    rng = np.random.default_rng(seed)
    return LocalFeatures(
        keypoints=rng.normal(size=(n, 4)).astype(np.float32),
        descriptors=rng.integers(0, 256, size=(n, d), dtype=np.uint8),
    )


def unit(d: int = 16, seed: int = 0) -> GlobalEmbedding:
    v = np.random.default_rng(seed).normal(size=d).astype(np.float32)
    return GlobalEmbedding(vector=v / np.linalg.norm(v))


def both(seed: int = 0, n: int = 5) -> list[tuple[str, str, LocalFeatures | GlobalEmbedding]]:
    return [(*LOCAL, local(n, seed=seed)), (*GLOBAL, unit(seed=seed))]


def individuals(store: Store) -> int:
    """How many individuals are stored (with or without images)."""
    return len(store.list_individuals(limit=1_000))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    # A missing parent directory: open must create it.
    return tmp_path / "nested" / "dir" / "store.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store.open(db_path) as s:
        yield s


def assert_local_equal(a: LocalFeatures | GlobalEmbedding, b: LocalFeatures) -> None:
    assert isinstance(a, LocalFeatures)
    assert a.keypoints.dtype == np.float32
    assert a.descriptors.dtype == np.uint8
    assert a.keypoints.shape == b.keypoints.shape
    assert a.descriptors.shape == b.descriptors.shape
    assert np.array_equal(a.keypoints, b.keypoints)
    assert np.array_equal(a.descriptors, b.descriptors)


# ---------------------------------------------------------------------- lifecycle


def test_open_creates_parents_and_persists_after_reopen(db_path: Path) -> None:
    assert not db_path.parent.exists()
    with Store.open(db_path) as s:
        image_id, created = s.add_image(new_image(1), "humpback", both(seed=1))
    assert created
    assert db_path.exists()
    with Store.open(db_path) as s:
        row = s.image(image_id)
        assert row is not None
        assert row.sha256 == sha(1)
        assert s.individual("A") is not None
        [feat] = list(s.iter_features(*LOCAL))
        assert_local_equal(feat.features, local(5, seed=1))


def test_schema_version_is_recorded(db_path: Path) -> None:
    Store.open(db_path).close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_version_is_refused(db_path: Path) -> None:
    Store.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1} is newer"):
        Store.open(db_path)


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not a database file at all" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store.open(path)


def test_closed_store_refuses_calls(db_path: Path) -> None:
    s = Store.open(db_path)
    s.close()
    s.close()  # closing twice is harmless
    with pytest.raises(StoreError, match="closed"):
        s.count_images()
    with pytest.raises(StoreError, match="closed"):
        s.add_image(new_image(1), None, [])


def test_context_manager_closes(db_path: Path) -> None:
    with Store.open(db_path) as s:
        assert s.count_images() == 0
    with pytest.raises(StoreError, match="closed"):
        s.count_images()


# ---------------------------------------------------------------------- add_image


@pytest.mark.parametrize("n", [0, 1, 57])
def test_local_features_round_trip_exactly(store: Store, n: int) -> None:
    feats = local(n, d=32, seed=n)
    image_id, created = store.add_image(new_image(n), None, [(*LOCAL, feats)])
    assert created
    [row] = list(store.iter_features(*LOCAL))
    assert row.image_id == image_id
    assert (row.extractor, row.version) == LOCAL
    assert_local_equal(row.features, feats)
    single = store.feature(image_id, *LOCAL)
    assert single is not None
    assert (single.id, single.image_id) == (row.id, row.image_id)
    assert_local_equal(single.features, feats)


@pytest.mark.parametrize("d", [1, 768])
def test_global_embedding_round_trips_exactly(store: Store, d: int) -> None:
    emb = unit(d, seed=d)
    image_id, _ = store.add_image(new_image(d), None, [(*GLOBAL, emb)])
    [row] = list(store.iter_features(*GLOBAL))
    assert isinstance(row.features, GlobalEmbedding)
    assert row.features.vector.dtype == np.float32
    assert row.features.vector.shape == (d,)
    assert np.array_equal(row.features.vector, emb.vector)
    assert row.image_id == image_id


def test_non_contiguous_arrays_round_trip(store: Store) -> None:
    base = local(10, d=64, seed=3)
    # Column slices and Fortran order: what is stored must be the logical array.
    feats = LocalFeatures(
        keypoints=np.asfortranarray(base.keypoints),
        descriptors=base.descriptors[:, ::2],
    )
    store.add_image(new_image(1), None, [(*LOCAL, feats)])
    [row] = list(store.iter_features(*LOCAL))
    assert_local_equal(row.features, feats)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    n=st.integers(0, 20),
    d=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_local_round_trip_property(store: Store, n: int, d: int, seed: int) -> None:
    feats = local(n, d=d, seed=seed)
    image_id, created = store.add_image(new_image(f"prop-{n}-{d}-{seed}"), None, [(*LOCAL, feats)])
    row = store.feature(image_id, *LOCAL)
    assert row is not None
    assert_local_equal(row.features, feats)


def test_image_row_and_individual_are_stored(store: Store) -> None:
    image = new_image(1, "HW-1", taken_at="2019-07-04T13:05:00", latitude=-33.5, longitude=151.25)
    image_id, _ = store.add_image(image, "humpback", [])
    row = store.image(image_id)
    assert row is not None
    assert (row.sha256, row.source_name, row.individual_id) == (sha(1), "1.jpg", "HW-1")
    assert (row.width, row.height) == (640, 480)
    assert (row.taken_at, row.latitude, row.longitude) == ("2019-07-04T13:05:00", -33.5, 151.25)
    assert row.created_at  # set by the store
    assert store.image_by_sha256(sha(1)) == row
    ind = store.individual("HW-1")
    assert ind is not None
    assert (ind.species, ind.name, ind.image_count) == ("humpback", None, 1)


def test_add_image_without_features(store: Store) -> None:
    image_id, created = store.add_image(new_image(1), None, [])
    assert created
    assert store.image(image_id) is not None
    assert store.count_features(*LOCAL) == 0


def test_descriptors_are_counted_in_the_rows_after_an_id(store: Store) -> None:
    assert store.count_descriptors(*LOCAL) == 0
    for i, n in enumerate((7, 11, 13), start=1):
        store.add_image(new_image(i), None, [(*LOCAL, local(n, seed=i)), ("other", "1", unit())])
    first = next(iter(store.iter_features(*LOCAL))).id
    assert store.count_descriptors(*LOCAL) == 31
    assert store.count_descriptors(*LOCAL, after_id=first) == 24
    assert store.count_descriptors("rootsift", "2") == 0


def test_duplicate_sha256_returns_existing_id_and_stores_nothing(store: Store) -> None:
    first_id, created = store.add_image(new_image(1, "A"), None, both(seed=1))
    assert created
    before = (store.count_images(), individuals(store), store.max_feature_id(*LOCAL))
    again_id, created_again = store.add_image(
        new_image(1, "B"), "orca", [(*LOCAL, local(9, seed=2)), ("other", "1", unit())]
    )
    assert (again_id, created_again) == (first_id, False)
    assert (store.count_images(), individuals(store), store.max_feature_id(*LOCAL)) == before
    assert store.individual("B") is None
    assert store.count_features("other", "1") == 0
    [row] = list(store.iter_features(*LOCAL))
    assert_local_equal(row.features, local(5, seed=1))


def test_species_is_set_only_when_missing(store: Store) -> None:
    store.add_image(new_image(1, "A"), None, [])
    assert store.individual("A").species is None  # type: ignore[union-attr]
    store.add_image(new_image(2, "A"), "humpback", [])
    assert store.individual("A").species == "humpback"  # type: ignore[union-attr]
    store.add_image(new_image(3, "A"), "orca", [])
    ind = store.individual("A")
    assert ind is not None
    assert (ind.species, ind.image_count) == ("humpback", 3)


def _f32(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


def _u8(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.uint8)


_e0 = np.zeros(8, np.float32)
_e0[0] = 1.0

INVALID_FEATURES = [
    pytest.param(
        GlobalEmbedding(vector=_f32(0)), r"expected shape \(D>=1,\), got \(0,\)", id="empty-vector"
    ),
    pytest.param(
        LocalFeatures(keypoints=_f32(0, 4), descriptors=_u8(0, 0)),
        r"expected shape \(0, D>=1\), got \(0, 0\)",
        id="empty-descriptor-dim",
    ),
    pytest.param(
        LocalFeatures(keypoints=_f32(3, 3), descriptors=_u8(3, 8)),
        r"expected shape \(N, 4\), got \(3, 3\)",
        id="keypoints-3-cols",
    ),
    pytest.param(
        LocalFeatures(keypoints=_f32(12), descriptors=_u8(3, 8)),
        r"expected 2-D array, got shape \(12,\)",
        id="keypoints-1d",
    ),
    pytest.param(
        LocalFeatures(keypoints=np.zeros((3, 4), np.float64), descriptors=_u8(3, 8)),
        "expected dtype float32, got float64",
        id="keypoints-float64",
    ),
    pytest.param(
        LocalFeatures(keypoints=_f32(3, 4), descriptors=_u8(2, 8)),
        r"expected shape \(3, D>=1\), got \(2, 8\)",
        id="descriptor-count-mismatch",
    ),
    pytest.param(
        LocalFeatures(keypoints=_f32(3, 4), descriptors=_f32(3, 8)),
        "expected dtype uint8, got float32",
        id="descriptors-float32",
    ),
    pytest.param(
        LocalFeatures(keypoints=np.full((1, 4), np.nan, np.float32), descriptors=_u8(1, 8)),
        "expected finite values",
        id="keypoints-nan",
    ),
    pytest.param(
        LocalFeatures(keypoints=[[0.0, 0.0, 1.0, 0.0]], descriptors=_u8(1, 8)),  # type: ignore[arg-type]
        "expected np.ndarray, got list",
        id="keypoints-list",
    ),
    pytest.param(
        GlobalEmbedding(vector=_e0.reshape(1, 8)),
        r"expected 1-D array, got shape \(1, 8\)",
        id="vector-2d",
    ),
    pytest.param(
        GlobalEmbedding(vector=_e0.astype(np.float64)),
        "expected dtype float32, got float64",
        id="vector-float64",
    ),
    pytest.param(
        GlobalEmbedding(vector=_e0 * 2), "expected unit L2 norm, got 2", id="vector-not-normalised"
    ),
    pytest.param(
        GlobalEmbedding(vector=np.full(8, np.inf, np.float32)),
        "expected finite values",
        id="vector-inf",
    ),
    pytest.param(_e0, "expected LocalFeatures or GlobalEmbedding, got ndarray", id="bare-array"),
]


@pytest.mark.parametrize(("bad", "message"), INVALID_FEATURES)
def test_invalid_feature_in_the_middle_stores_nothing(
    store: Store, bad: object, message: str
) -> None:
    features = [(*LOCAL, local(4)), ("bad", "1", bad), (*GLOBAL, unit())]
    with pytest.raises(StoreError, match=message):
        store.add_image(new_image(1, "NEW"), "orca", features)  # type: ignore[arg-type]
    assert store.count_images() == 0
    assert individuals(store) == 0
    assert store.image_by_sha256(sha(1)) is None
    assert store.count_features(*LOCAL) == 0


def test_same_extractor_twice_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="given twice"):
        store.add_image(new_image(1), None, [(*LOCAL, local(2)), (*LOCAL, local(3))])
    assert store.count_images() == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sha256": ""}, "sha256: expected 64 lowercase hex"),
        ({"sha256": sha(1).upper()}, "sha256: expected 64 lowercase hex"),
        ({"individual_id": ""}, "individual_id: expected a non-empty str"),
        ({"source_name": "  "}, "source_name: expected a non-empty str"),
        ({"width": 0}, "width: expected a positive int, got 0"),
        ({"height": 2.5}, "height: expected a positive int, got 2.5"),
        ({"latitude": 91.0}, r"latitude: expected a number in \[-90.0, 90.0\], got 91.0"),
        ({"longitude": -180.5}, r"longitude: expected a number in \[-180.0, 180.0\]"),
    ],
)
def test_invalid_image_fields_are_refused(
    store: Store, changes: dict[str, object], message: str
) -> None:
    fields = {
        "sha256": sha(1),
        "source_name": "1.jpg",
        "individual_id": "A",
        "width": 10,
        "height": 10,
    } | changes
    with pytest.raises(StoreError, match=message):
        store.add_image(NewImage(**fields), None, [])  # type: ignore[arg-type]
    assert store.count_images() == 0
    assert individuals(store) == 0


def test_database_failure_mid_transaction_rolls_everything_back(db_path: Path) -> None:
    Store.open(db_path).close()
    # A trigger makes the second feature insert fail inside SQLite, after the individual,
    # the image and the first feature row were already written in the transaction.
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON features WHEN NEW.extractor = 'boom'"
            " BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
    with Store.open(db_path) as s:
        features = [(*LOCAL, local(4)), ("boom", "1", unit()), (*GLOBAL, unit())]
        with pytest.raises(StoreError, match="boom"):
            s.add_image(new_image(1, "NEW"), "orca", features)
        assert s.count_images() == 0
        assert individuals(s) == 0
        assert s.count_features(*LOCAL) == 0
        # The transaction is closed: the store still writes.
        image_id, created = s.add_image(new_image(2, "NEW"), None, both())
        assert created
        assert s.image(image_id) is not None


# ---------------------------------------------------------------------- lookups


def test_lookups_on_empty_store(store: Store) -> None:
    assert store.image(1) is None
    assert store.image_by_sha256(sha(1)) is None
    assert store.images_of("A") == []
    assert store.image_labels() == {}
    assert store.individual("A") is None
    assert store.list_individuals() == []
    assert (store.count_images(), individuals(store)) == (0, 0)
    assert store.feature(1, *LOCAL) is None
    assert list(store.iter_features(*LOCAL)) == []
    assert store.max_feature_id(*LOCAL) == 0
    assert store.count_features(*LOCAL) == 0
    assert store.epoch() == 0


def test_images_of_and_labels(store: Store) -> None:
    a1, _ = store.add_image(new_image(1, "A"), None, [])
    b1, _ = store.add_image(new_image(2, "B"), None, [])
    a2, _ = store.add_image(new_image(3, "A"), None, [])
    assert [r.id for r in store.images_of("A")] == [a1, a2]
    assert [r.id for r in store.images_of("B")] == [b1]
    assert store.image_labels() == {a1: "A", b1: "B", a2: "A"}
    assert (store.count_images(), individuals(store)) == (3, 2)


def test_list_individuals_filters_and_pages(store: Store) -> None:
    for i, (ind, species) in enumerate(
        [("C", "orca"), ("A", "humpback"), ("B", "orca"), ("D", None)]
    ):
        store.add_image(new_image(i, ind), species, [])
    store.add_image(new_image(10, "B"), None, [])
    assert [i.id for i in store.list_individuals()] == ["A", "B", "C", "D"]
    assert [i.id for i in store.list_individuals(species="orca")] == ["B", "C"]
    assert [i.id for i in store.list_individuals(limit=2, offset=1)] == ["B", "C"]
    assert store.list_individuals(limit=0) == []
    assert store.list_individuals(offset=10) == []
    counts = {i.id: i.image_count for i in store.list_individuals()}
    assert counts == {"A": 1, "B": 2, "C": 1, "D": 1}
    with pytest.raises(StoreError, match="must be >= 0"):
        store.list_individuals(limit=-1)


def test_upsert_individual_updates_only_given_fields(store: Store) -> None:
    created = store.upsert_individual("A", species="orca")
    assert (created.id, created.species, created.name, created.image_count) == (
        "A",
        "orca",
        None,
        0,
    )
    renamed = store.upsert_individual("A", name="Tilly")
    assert (renamed.species, renamed.name) == ("orca", "Tilly")
    assert renamed.created_at == created.created_at
    assert store.individual("A") == renamed
    with pytest.raises(StoreError, match="non-empty str"):
        store.upsert_individual("")


# ---------------------------------------------------------------------- relabelling


def test_rename_moves_images_and_keeps_fields(store: Store) -> None:
    i1, _ = store.add_image(new_image(1, "A"), "orca", [])
    i2, _ = store.add_image(new_image(2, "A"), None, [])
    other, _ = store.add_image(new_image(3, "B"), None, [])
    store.upsert_individual("A", name="Tilly")
    before = store.individual("A")
    store.rename_individual("A", "A2")
    assert store.individual("A") is None
    after = store.individual("A2")
    assert after is not None
    assert (after.species, after.name, after.created_at) == ("orca", "Tilly", before.created_at)  # type: ignore[union-attr]
    assert after.image_count == 2
    assert store.image_labels() == {i1: "A2", i2: "A2", other: "B"}


def test_rename_errors(store: Store) -> None:
    store.upsert_individual("A")
    store.upsert_individual("B")
    with pytest.raises(NotFound, match="'X'"):
        store.rename_individual("X", "Y")
    with pytest.raises(Conflict, match="'B' already exists"):
        store.rename_individual("A", "B")
    with pytest.raises(StoreError, match="new_id"):
        store.rename_individual("A", "")
    store.rename_individual("A", "A")  # to itself: nothing to do
    assert {i.id for i in store.list_individuals()} == {"A", "B"}


def test_merge_moves_images_and_deletes_source(store: Store) -> None:
    s1, _ = store.add_image(new_image(1, "S"), "orca", [])
    s2, _ = store.add_image(new_image(2, "S"), None, [])
    t1, _ = store.add_image(new_image(3, "T"), None, [])
    store.upsert_individual("T", name="Keeps")
    store.upsert_individual("S", name="Lost")
    assert store.merge_individuals("S", "T") == 2
    assert store.individual("S") is None
    target = store.individual("T")
    assert target is not None
    # The target lacked a species: it takes the source's; it keeps its own name.
    assert (target.species, target.name, target.image_count) == ("orca", "Keeps", 3)
    assert store.image_labels() == {s1: "T", s2: "T", t1: "T"}


def test_merge_errors(store: Store) -> None:
    store.upsert_individual("A")
    with pytest.raises(NotFound, match="source individual 'X'"):
        store.merge_individuals("X", "A")
    with pytest.raises(NotFound, match="target individual 'X'"):
        store.merge_individuals("A", "X")
    with pytest.raises(Conflict, match="into itself"):
        store.merge_individuals("A", "A")
    assert store.individual("A") is not None


def test_delete_image_removes_its_features_only(store: Store) -> None:
    gone, _ = store.add_image(new_image(1, "A"), None, both(seed=1))
    kept, _ = store.add_image(new_image(2, "A"), None, both(seed=2))
    assert store.delete_image(gone) is True
    assert store.image(gone) is None
    assert store.feature(gone, *LOCAL) is None
    assert [r.image_id for r in store.iter_features(*LOCAL)] == [kept]
    assert [r.image_id for r in store.iter_features(*GLOBAL)] == [kept]
    assert store.individual("A").image_count == 1  # type: ignore[union-attr]
    assert store.delete_image(gone) is False
    # The same photo can be enrolled again, under a new id.
    again, created = store.add_image(new_image(1, "A"), None, [])
    assert created
    assert again > kept


def test_delete_individual(store: Store) -> None:
    store.add_image(new_image(1, "A"), None, both(seed=1))
    store.add_image(new_image(2, "A"), None, both(seed=2))
    b, _ = store.add_image(new_image(3, "B"), None, both(seed=3))
    assert store.delete_individual("A") == 2
    assert store.individual("A") is None
    assert store.images_of("A") == []
    assert store.image_labels() == {b: "B"}
    assert store.count_features(*LOCAL) == 1
    store.upsert_individual("EMPTY")
    assert store.delete_individual("EMPTY") == 0
    with pytest.raises(NotFound, match="'A'"):
        store.delete_individual("A")


def test_feature_ids_are_not_reused_after_delete(store: Store) -> None:
    first, _ = store.add_image(new_image(1), None, both())
    top = store.max_feature_id(*LOCAL)
    store.delete_image(first)
    store.add_image(new_image(2), None, both())
    assert store.max_feature_id(*LOCAL) > top


# ---------------------------------------------------------------------- epoch


def test_additions_do_not_bump_epoch(store: Store) -> None:
    store.add_image(new_image(1, "A"), "orca", both())
    store.add_image(new_image(1, "A"), None, both())  # duplicate
    store.upsert_individual("B", species="orca", name="x")
    store.rename_individual("B", "B2")  # no images: no image changes label
    store.merge_individuals("B2", "A")  # likewise
    assert store.epoch() == 0


def test_removals_and_relabels_bump_epoch(store: Store) -> None:
    i1, _ = store.add_image(new_image(1, "A"), None, both(1))
    store.add_image(new_image(2, "A"), None, both(2))
    store.add_image(new_image(3, "B"), None, both(3))
    store.add_image(new_image(4, "C"), None, both(4))
    steps = [
        lambda: store.delete_image(i1),
        lambda: store.rename_individual("A", "A2"),
        lambda: store.merge_individuals("A2", "B"),
        lambda: store.delete_individual("C"),
    ]
    for expected, step in enumerate(steps, start=1):
        step()
        assert store.epoch() == expected


def test_failed_operations_do_not_bump_epoch(store: Store) -> None:
    store.add_image(new_image(1, "A"), None, both())
    store.upsert_individual("B")
    assert store.delete_image(999) is False
    for call in (
        lambda: store.rename_individual("X", "Y"),
        lambda: store.rename_individual("A", "B"),
        lambda: store.merge_individuals("A", "X"),
        lambda: store.delete_individual("X"),
    ):
        with pytest.raises(StoreError):
            call()
    assert store.epoch() == 0
    assert store.images_of("A") != []


def test_epoch_persists(db_path: Path) -> None:
    with Store.open(db_path) as s:
        image_id, _ = s.add_image(new_image(1), None, [])
        s.delete_image(image_id)
    with Store.open(db_path) as s:
        assert s.epoch() == 1


# ---------------------------------------------------------------------- iter_features


def _fill(store: Store, count: int) -> None:
    for i in range(count):
        store.add_image(new_image(i, f"ind-{i % 3}"), None, both(seed=i, n=i))


@pytest.mark.parametrize("batch", [1, 3, 256])
def test_iter_features_streams_in_id_order(store: Store, batch: int) -> None:
    _fill(store, 10)
    rows = list(store.iter_features(*LOCAL, batch=batch))
    ids = [r.id for r in rows]
    assert len(rows) == 10
    assert ids == sorted(ids)
    assert len(set(ids)) == 10
    assert all(r.extractor == LOCAL[0] and isinstance(r.features, LocalFeatures) for r in rows)
    assert store.max_feature_id(*LOCAL) == ids[-1]
    assert store.count_features(*LOCAL) == 10
    for r in rows:
        i = int(store.image(r.image_id).source_name.removesuffix(".jpg"))  # type: ignore[union-attr]
        assert_local_equal(r.features, local(i, seed=i))
    tail = list(store.iter_features(*LOCAL, after_id=ids[6], batch=batch))
    assert [r.id for r in tail] == ids[7:]
    assert store.count_features(*LOCAL, after_id=ids[6]) == 3
    assert list(store.iter_features(*LOCAL, after_id=ids[-1], batch=batch)) == []


def test_iter_features_filters_by_extractor_and_version(store: Store) -> None:
    store.add_image(new_image(1), None, [(*LOCAL, local(2)), ("rootsift", "2", local(3))])
    assert [r.features.keypoints.shape[0] for r in store.iter_features("rootsift", "2")] == [3]  # type: ignore[union-attr]
    assert store.count_features(*GLOBAL) == 0
    assert list(store.iter_features("rootsift", "0")) == []


def test_iter_features_releases_the_lock_between_batches(store: Store) -> None:
    _fill(store, 4)
    it = store.iter_features(*LOCAL, batch=2)
    first: FeatureRow = next(it)
    # Writing from another thread while the generator is suspended must not block.
    done = threading.Event()

    def write() -> None:
        store.add_image(new_image(100), None, both(seed=100))
        done.set()

    # Daemon: if the lock were held, the blocked writer must not keep pytest alive.
    t = threading.Thread(target=write, daemon=True)
    t.start()
    t.join(timeout=5)
    if not done.is_set():
        it.close()  # releases the lock so the writer can finish
        pytest.fail("a write blocked while iter_features was suspended")
    rest = list(it)
    # Keyset pagination: the row added mid-stream is seen, nothing is repeated.
    assert len(rest) == 4
    assert first.id < rest[0].id
    assert len({first.id, *(r.id for r in rest)}) == 5


def test_iter_features_rejects_bad_batch(store: Store) -> None:
    with pytest.raises(StoreError, match="batch must be >= 1, got 0"):
        list(store.iter_features(*LOCAL, batch=0))


# ---------------------------------------------------------------------- concurrency


def test_concurrent_add_image_loses_nothing(store: Store) -> None:
    threads, per_thread = 8, 25
    results: list[list[int]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for k in range(per_thread):
                i = t * per_thread + k
                image_id, created = store.add_image(
                    new_image(i, f"ind-{i % 7}"), "orca", [(*GLOBAL, unit(seed=i))]
                )
                assert created
                results[t].append(image_id)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert errors == []
    ids = list(itertools.chain.from_iterable(results))
    assert len(ids) == len(set(ids)) == threads * per_thread
    assert store.count_images() == threads * per_thread
    assert store.count_features(*GLOBAL) == threads * per_thread
    assert set(store.image_labels()) == set(ids)
    assert individuals(store) == 7


def test_concurrent_duplicates_store_one_row(store: Store) -> None:
    threads = 8
    results: list[tuple[int, bool]] = []
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        results.append(store.add_image(new_image("same"), None, both()))

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert len(results) == threads
    assert sum(created for _, created in results) == 1
    assert len({image_id for image_id, _ in results}) == 1
    assert store.count_images() == 1
    assert store.count_features(*LOCAL) == 1


# ---------------------------------------------------------------------- durability

_CRASH_CHILD = """
import sys
from pathlib import Path

import numpy as np

from embeddings.protocol import GlobalEmbedding, LocalFeatures
from indexer.store import NewImage, Store
import hashlib

store = Store.open(Path(sys.argv[1]))
rng = np.random.default_rng(0)
i = 0
while True:
    sha = hashlib.sha256(str(i).encode()).hexdigest()
    v = rng.normal(size=64).astype(np.float32)
    feats = [
        ("rootsift", "1", LocalFeatures(
            keypoints=rng.normal(size=(200, 4)).astype(np.float32),
            descriptors=rng.integers(0, 256, size=(200, 128), dtype=np.uint8),
        )),
        ("megadesc", "2", GlobalEmbedding(vector=v / np.linalg.norm(v))),
    ]
    image = NewImage(sha256=sha, source_name=f"{i}.jpg", individual_id=f"ind-{i % 5}",
                     width=10, height=10)
    image_id, _ = store.add_image(image, None, feats)
    print(image_id, sha, flush=True)
    i += 1
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_acknowledged_writes_survive_sigkill(db_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASH_CHILD, str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    acknowledged: list[tuple[int, str]] = []
    deadline = time.monotonic() + 15
    try:
        assert proc.stdout is not None
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            image_id, digest = line.split()
            acknowledged.append((int(image_id), digest))
        os.kill(proc.pid, signal.SIGKILL)
        # Lines already in the pipe were acknowledged before the kill too.
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in out.splitlines():
        image_id, digest = line.split()
        acknowledged.append((int(image_id), digest))
    assert proc.returncode == -signal.SIGKILL, err
    assert len(acknowledged) >= 40, err

    with Store.open(db_path) as s:
        for image_id, digest in acknowledged:
            row = s.image(image_id)
            assert row is not None, f"acknowledged image {image_id} lost"
            assert row.sha256 == digest
        # Whatever the kill interrupted left no half-written image.
        assert s.count_features("rootsift", "1") == s.count_images()
        assert s.count_features("megadesc", "2") == s.count_images()
        assert s.count_images() in (len(acknowledged), len(acknowledged) + 1)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_individual_ids_with_a_slash_are_refused(store: Store) -> None:
    # An id is one segment of the HTTP API's paths; with a slash it could not be read.
    store.upsert_individual("HW-1")
    for call in (
        lambda: store.upsert_individual("a/b"),
        lambda: store.rename_individual("HW-1", "HW/1"),
    ):
        with pytest.raises(InvalidInput, match="must not contain '/'"):
            call()
    assert [i.id for i in store.list_individuals()] == ["HW-1"]


@pytest.mark.parametrize("image_id", [2**63, -(2**63) - 1, "7", True])
def test_image_ids_outside_sqlite_integers_are_refused(store: Store, image_id: object) -> None:
    for call in (
        lambda: store.image(image_id),
        lambda: store.delete_image(image_id),
        lambda: store.feature(image_id, *LOCAL),
        lambda: store.add_features(image_id, []),
    ):
        with pytest.raises(InvalidInput, match="image_id"):
            call()


# ---------------------------------------------------------------------- centroids


def centroid(seed: int, d: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=d).astype(np.float32)
    return v / np.linalg.norm(v)


def test_replace_centroids_creates_individuals_and_replaces_older_versions(store: Store) -> None:
    store.upsert_individual("known", "beluga", None)
    store.replace_centroids("arcface", "v1", [("known", "humpback_whale", centroid(0))])
    epoch = store.epoch()

    stored = store.replace_centroids(
        "arcface", "v2", [("known", "humpback_whale", centroid(1)), ("fresh", "orca", centroid(2))]
    )

    assert stored == 2
    ids, individuals, vectors = store.centroids("arcface", "v2")
    assert individuals == ["known", "fresh"] and len(ids) == 2
    assert np.allclose(vectors, [centroid(1), centroid(2)])
    assert store.centroids("arcface", "v1")[1] == []
    assert store.epoch() > epoch  # old centroids were removed: indexes must rebuild
    assert store.individual("known").species == "beluga"  # an existing species stays
    assert store.individual("fresh").species == "orca"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("a", None, np.ones(8, np.float32))], "unit L2 norm"),
        ([("a", None, centroid(0)), ("a", None, centroid(1))], "given twice"),
        ([("a/b", None, centroid(0))], "'/'"),
    ],
)
def test_bad_centroids_write_nothing(store: Store, rows: list, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.replace_centroids("arcface", "v1", rows)
    assert store.centroids("arcface", "v1")[1] == []
    assert individuals(store) == 0


def test_centroids_follow_renames_merges_and_deletes(store: Store) -> None:
    store.replace_centroids("arcface", "v1", [("a", None, centroid(0)), ("b", None, centroid(1))])
    store.rename_individual("a", "a2")
    store.merge_individuals("b", "a2")
    assert store.centroids("arcface", "v1")[1] == ["a2", "a2"]
    store.delete_individual("a2")
    assert store.centroids("arcface", "v1")[1] == []
    assert store.individual("a2") is None


# The schema as versions 1 and 2 of this program wrote it, frozen here: a migration is
# tested from what older databases really hold, not from today's statements.
_V1_DDL = (
    "CREATE TABLE individuals (id TEXT PRIMARY KEY, species TEXT, name TEXT, created_at TEXT)",
    """CREATE TABLE images (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sha256 TEXT UNIQUE NOT NULL,
        source_name TEXT NOT NULL,
        individual_id TEXT NOT NULL REFERENCES individuals(id),
        width INT, height INT, taken_at TEXT, latitude REAL, longitude REAL, created_at TEXT
    )""",
    "CREATE INDEX images_individual ON images(individual_id)",
    """CREATE TABLE features (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        extractor TEXT NOT NULL, version TEXT NOT NULL,
        kind TEXT NOT NULL CHECK(kind IN ('local', 'global')),
        count INT, dim INT, keypoints BLOB, data BLOB NOT NULL,
        UNIQUE(image_id, extractor, version)
    )""",
    "CREATE INDEX features_extractor ON features(extractor, version, id)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    "INSERT INTO meta(key, value) VALUES ('store.epoch', '0')",
)
_V2_DDL = (
    *_V1_DDL,
    """CREATE TABLE centroids (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        individual_id TEXT NOT NULL REFERENCES individuals(id),
        model TEXT NOT NULL, version TEXT NOT NULL, vector BLOB NOT NULL
    )""",
    "CREATE INDEX centroids_model ON centroids(model, version, id)",
)


def old_database(path: Path, version: int) -> None:
    """A database as version 1 or 2 wrote it, with one individual and two photos."""
    conn = sqlite3.connect(path)
    for statement in _V1_DDL if version == 1 else _V2_DDL:
        conn.execute(statement)
    conn.execute("INSERT INTO individuals VALUES ('A', 'beluga', 'Snow', '2024-01-01T00:00:00')")
    for i in (1, 2):
        conn.execute(
            "INSERT INTO images(sha256, source_name, individual_id, width, height, taken_at,"
            " latitude, longitude, created_at) VALUES (?, ?, 'A', 640, 480, NULL, 57.5, -3.25,"
            " '2024-01-01T00:00:00')",
            (sha(i), f"{i}.jpg"),
        )
    features = local(5)
    conn.execute(
        "INSERT INTO features(image_id, extractor, version, kind, count, dim, keypoints, data)"
        " VALUES (1, ?, ?, 'local', 5, 128, ?, ?)",
        (*LOCAL, features.keypoints.astype("<f4").tobytes(), features.descriptors.tobytes()),
    )
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_database_is_migrated_keeping_its_rows(db_path: Path, version: int) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    old_database(db_path, version)

    with Store.open(db_path) as store:
        rows = [store.image(1), store.image(2)]
        assert [r.source_name for r in rows if r is not None] == ["1.jpg", "2.jpg"]
        assert [(r.latitude, r.longitude) for r in rows if r] == [(57.5, -3.25)] * 2
        # Enrolled before photo files were kept: no file is claimed.
        assert [(r.file_bytes, r.format) for r in rows if r] == [(None, None)] * 2
        assert store.individual("A") == Individual(
            id="A", species="beluga", name="Snow", created_at="2024-01-01T00:00:00", image_count=2
        )
        stored = store.feature(1, *LOCAL)
        assert stored is not None
        assert np.array_equal(stored.features.descriptors, local(5).descriptors)
        store.replace_centroids("arcface", "v1", [("A", None, centroid(0))])
        assert store.centroids("arcface", "v1")[1] == ["A"]
        assert store.set_file(2, 1234, "JPEG")
        assert (store.image(2).file_bytes, store.image(2).format) == (1234, "JPEG")
        image_id, created = store.add_image(new_image(3, file_bytes=10, format="PNG"), None, [])
        assert created and store.image(image_id).file_bytes == 10
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    # Calibrations live in the database from version 4 on.
    assert conn.execute("SELECT COUNT(*) FROM calibrations").fetchone()[0] == 0
    columns = {row[1] for row in conn.execute("PRAGMA table_info(images)")}
    conn.close()
    assert {"file_bytes", "format"} <= columns


def test_file_bytes_must_be_positive(store: Store) -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(InvalidInput, match="file_bytes"):
            store.add_image(new_image(1, file_bytes=bad), None, [])
    image_id, _ = store.add_image(new_image(1), None, [])
    with pytest.raises(InvalidInput, match="file_bytes"):
        store.set_file(image_id, 0, "JPEG")
    assert store.set_file(999, 5, None) is False
    assert store.image_shas() == {sha(1)}


def test_a_calibration_replaces_the_older_one_of_its_key(store: Store) -> None:
    assert store.calibration("rootsift-1") is None
    first = store.save_calibration("rootsift-1", b"one")
    other = store.save_calibration("rootsift-2", b"other")
    second = store.save_calibration("rootsift-1", b"two")
    assert first < other < second
    assert store.calibration("rootsift-1") == (second, b"two")
    assert store.calibration("rootsift-2") == (other, b"other")
    assert store.marker()[2] == second


def test_a_calibration_fitted_to_replace_one_is_not_saved_over_a_newer_one(store: Store) -> None:
    """Two processes fitting at once: the first to commit is kept."""
    assert store.save_calibration("rootsift-1", b"first", replacing=0) is not None
    first = store.calibration("rootsift-1")
    assert first is not None
    assert store.save_calibration("rootsift-1", b"late", replacing=0) is None
    assert store.calibration("rootsift-1") == first
    second = store.save_calibration("rootsift-1", b"second", replacing=first[0])
    assert store.calibration("rootsift-1") == (second, b"second")


def test_move_image_relabels_one_photo_and_bumps_the_epoch(store: Store) -> None:
    image_id, _ = store.add_image(new_image(1), "beluga", [])
    epoch = store.epoch()
    store.move_image(image_id, "B", "orca")
    assert store.image(image_id).individual_id == "B"
    assert store.individual("B").species == "orca"
    assert store.epoch() == epoch + 1
    with pytest.raises(NotFound):
        store.move_image(999, "B")
