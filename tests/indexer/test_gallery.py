"""The identification engine on synthetic individuals: enrol, identify, persist, rebuild."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
import numpy as np
import pytest

from embeddings.images import load_photo
from embeddings.keypoints import DetectedKeypoints
from embeddings.photo import Box, ImageError, Photo
from embeddings.protocol import LocalFeatures
from indexer.catalogue import PhotoElsewhere
from indexer.gallery import Gallery
from indexer.local_search import LocalSearch, SearchParameters
from indexer.results import BuildStage, Progress
from indexer.store import InvalidInput, Store
from tests.synthetic import encode, rolled, sighting

INDIVIDUALS = [f"ind-{i:02d}" for i in range(12)]
GALLERY_SEEDS = (0, 1, 2)
QUERY_SEED = 7


def photo(individual: str, seed: int) -> Photo:
    return load_photo(encode(sighting(individual, seed), "JPEG"))


@pytest.fixture(scope="module")
def photos() -> dict[tuple[str, int], Photo]:
    seeds = (*GALLERY_SEEDS, QUERY_SEED)
    return {(ind, s): photo(ind, s) for ind in [*INDIVIDUALS, "stranger"] for s in seeds}


def enrol_all(gallery: Gallery, photos: dict[tuple[str, int], Photo]) -> None:
    for individual in INDIVIDUALS:
        for seed in GALLERY_SEEDS:
            gallery.catalogue.enrol(
                photos[individual, seed],
                individual,
                species="humpback_whale",
                source_name=f"{individual}-{seed}.jpg",
            )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, photos) -> Path:
    """A data folder with the synthetic gallery enrolled and rebuilt (calibrated)."""
    data = tmp_path_factory.mktemp("gallery")
    with Gallery.open(data) as gallery:
        enrol_all(gallery, photos)
        gallery.rebuild()
    return data


def test_empty_gallery_answers_new_individual(tmp_path: Path, photos) -> None:
    with Gallery.open(tmp_path) as gallery:
        answer = gallery.pipeline.identify_photo(photos["ind-00", QUERY_SEED])
    assert answer.candidates == []
    assert answer.decision == "new_individual"
    assert answer.calibrated is False


def test_featureless_photo_is_low_confidence(built: Path) -> None:
    grey = np.full((200, 300, 3), 128, np.uint8)
    with Gallery.open(built) as gallery:
        answer = gallery.pipeline.identify_photo(load_photo(encode(grey, "PNG")))
    assert answer.candidates == []
    assert answer.decision == "rejected"
    assert answer.rejection_reason == "low_confidence"


def test_photo_just_above_the_feature_minimum_is_searched(built: Path, photos) -> None:
    query = photos["ind-04", QUERY_SEED]
    with Gallery.open(built) as gallery:
        count = len(gallery.extractor.extract(query).descriptors)
    with Gallery.open(built, search=SearchParameters(min_query_features=count)) as gallery:
        assert gallery.pipeline.identify_photo(query).decision == "match"
    with Gallery.open(built, search=SearchParameters(min_query_features=count + 1)) as gallery:
        assert gallery.pipeline.identify_photo(query).rejection_reason == "low_confidence"


def test_identifies_every_enrolled_individual(built: Path, photos) -> None:
    with Gallery.open(built) as gallery:
        for individual in INDIVIDUALS:
            answer = gallery.pipeline.identify_photo(photos[individual, QUERY_SEED])
            best = answer.candidates[0]
            assert best.individual_id == individual
            assert answer.decision == "match"
            assert best.species == "humpback_whale"
            assert best.evidence.source_name.startswith(individual)
            assert best.evidence.inliers >= 8
            assert answer.calibrated is True
            assert set(answer.timings_ms) == {"local search", "decision", "total"}
            assert answer.stages == ["decode", "local search", "decision"]
            pairs = best.evidence.pairs
            assert 8 <= len(pairs) == min(best.evidence.inliers, 50)
            query = photos[individual, QUERY_SEED]
            match = gallery.store.image(best.evidence.image_id)
            assert match is not None
            assert all(
                0 <= qx <= query.width
                and 0 <= qy <= query.height
                and 0 <= gx <= match.width
                and 0 <= gy <= match.height
                for qx, qy, gx, gy in pairs
            )


def test_unknown_individual_is_new(built: Path, photos) -> None:
    with Gallery.open(built) as gallery:
        answer = gallery.pipeline.identify_photo(photos["stranger", QUERY_SEED])
    assert answer.decision == "new_individual"
    assert all(c.probability < 0.5 for c in answer.candidates)


def test_probabilities_are_ordered_and_bounded(built: Path, photos) -> None:
    with Gallery.open(built) as gallery:
        answer = gallery.pipeline.identify_photo(photos["ind-03", QUERY_SEED], top_k=5)
    probabilities = [c.probability for c in answer.candidates]
    assert len(probabilities) == 5
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert probabilities == sorted(probabilities, reverse=True)
    assert probabilities[0] > 0.8
    assert probabilities[1] < 0.2


def test_duplicate_photo_is_stored_once(tmp_path: Path, photos) -> None:
    with Gallery.open(tmp_path) as gallery:
        first = gallery.catalogue.enrol(photos["ind-00", 0], "ind-00")
        again = gallery.catalogue.enrol(photos["ind-00", 0], "ind-00")
        stats = gallery.stats()
    assert first.created is True
    assert again.created is False
    assert again.image_id == first.image_id
    assert again.individual_id == "ind-00"
    assert stats.images == 1


def test_a_photo_stored_under_another_individual_moves_only_when_asked(
    tmp_path: Path, photos
) -> None:
    with Gallery.open(tmp_path) as gallery:
        first = gallery.catalogue.enrol(photos["ind-00", 0], "ind-00")
        with pytest.raises(PhotoElsewhere, match="already image 1 of individual 'ind-00'"):
            gallery.catalogue.enrol(photos["ind-00", 0], "someone-else")
        assert gallery.store.individual("someone-else") is None  # nothing was written
        moved = gallery.catalogue.enrol(photos["ind-00", 0], "someone-else", move=True)
        answer = gallery.pipeline.identify_photo(photos["ind-00", QUERY_SEED])
    assert (moved.image_id, moved.individual_id, moved.created) == (
        first.image_id,
        "someone-else",
        False,
    )
    assert answer.candidates[0].individual_id == "someone-else"


def test_blank_photos_are_refused_at_enrolment(tmp_path: Path) -> None:
    grey = load_photo(encode(np.full((200, 300, 3), 128, np.uint8), "PNG"))
    with Gallery.open(tmp_path) as gallery:
        with pytest.raises(ImageError) as refused:
            gallery.catalogue.enrol(grey, "blank")
        assert refused.value.reason == "low_confidence"
        assert gallery.store.count_images() == 0 and gallery.store.individual("blank") is None


def test_individual_ids_have_one_spelling(tmp_path: Path, photos) -> None:
    decomposed = "Bj\u006f\u0308rn"  # o + combining diaeresis, as a macOS keyboard types it
    with Gallery.open(tmp_path) as gallery:
        gallery.catalogue.enrol(photos["ind-00", 0], decomposed)
        gallery.catalogue.enrol(photos["ind-00", 1], "Bj\u00f6rn")
        assert [i.id for i in gallery.store.list_individuals()] == ["Bj\u00f6rn"]
        assert gallery.catalogue.create_individual(" padded ").id == "padded"
        assert gallery.catalogue.individual("padded  ") is not None
        for bad in ["", "   ", ".", "..", "a/b", "tab\there", "x" * 129]:
            with pytest.raises(InvalidInput):
                gallery.catalogue.create_individual(bad)


def test_enrolled_photo_is_found_without_rebuild(tmp_path: Path, photos) -> None:
    with Gallery.open(tmp_path) as gallery:
        gallery.catalogue.enrol(photos["ind-01", 0], "ind-01")
        gallery.catalogue.enrol(photos["ind-02", 0], "ind-02")
        assert (
            gallery.pipeline.identify_photo(photos["ind-02", QUERY_SEED])
            .candidates[0]
            .individual_id
            == "ind-02"
        )
        gallery.catalogue.enrol(photos["stranger", 0], "new-one")
        answer = gallery.pipeline.identify_photo(photos["stranger", QUERY_SEED])
    assert answer.candidates[0].individual_id == "new-one"


def test_restart_gives_identical_answers(built: Path, photos) -> None:
    query = photos["ind-05", QUERY_SEED]
    with Gallery.open(built) as gallery:
        before = gallery.pipeline.identify_photo(query)
    with Gallery.open(built) as gallery:
        after = gallery.pipeline.identify_photo(query)
    assert [c.individual_id for c in after.candidates] == [
        c.individual_id for c in before.candidates
    ]
    assert [c.score for c in after.candidates] == pytest.approx(
        [c.score for c in before.candidates]
    )
    assert after.index_version == before.index_version


@pytest.mark.parametrize("positions", ["saved", "missing", "damaged"])
def test_a_restart_maps_saved_keypoint_positions_instead_of_reading_the_database(
    tmp_path: Path, photos, monkeypatch: pytest.MonkeyPatch, positions: str
) -> None:
    query = photos[INDIVIDUALS[1], QUERY_SEED]
    with Gallery.open(tmp_path) as gallery:
        for ind in INDIVIDUALS[:3]:
            gallery.catalogue.enrol(photos[ind, 0], ind)
        before = gallery.pipeline.identify_photo(query)
    files = sorted((tmp_path / "index").glob("*.faiss.points*"))
    assert [f.name.rsplit(".faiss", 1)[1] for f in files] == [".points", ".points.photos"]
    if positions == "missing":
        files[0].unlink()
    elif positions == "damaged":
        files[1].write_bytes(b"not a table")
    read: list[int] = []
    iter_keypoints = Store.iter_keypoints

    def spy(self: Store, *args, **kwargs):
        read.append(1)
        return iter_keypoints(self, *args, **kwargs)

    monkeypatch.setattr(Store, "iter_keypoints", spy)
    with Gallery.open(tmp_path) as gallery:
        after = gallery.pipeline.identify_photo(query)
    # Without usable positions they come from the database, and nothing else changes.
    assert bool(read) == (positions != "saved")
    assert [(c.individual_id, c.score) for c in after.candidates] == [
        (c.individual_id, c.score) for c in before.candidates
    ]
    # That restart saved them again: the next one maps them.
    read.clear()
    with Gallery.open(tmp_path):
        pass
    assert read == []


def test_rebuild_gives_the_same_ranking(built: Path, photos, tmp_path: Path) -> None:
    query = photos["ind-06", QUERY_SEED]
    with Gallery.open(built) as gallery:
        incremental = gallery.local.rank(gallery.extractor.extract(query))
        gallery.rebuild()
        rebuilt = gallery.local.rank(gallery.extractor.extract(query))
    assert [r.image_id for r in rebuilt[:10]] == [r.image_id for r in incremental[:10]]
    assert [r.verified for r in rebuilt[:10]] == pytest.approx(
        [r.verified for r in incremental[:10]]
    )


def test_unsaved_enrolments_survive_a_crash(tmp_path: Path, photos) -> None:
    gallery = Gallery.open(tmp_path)
    gallery.catalogue.enrol(photos["ind-00", 0], "ind-00")
    gallery.save()
    gallery.catalogue.enrol(photos["ind-01", 0], "ind-01")
    # No close(): the index file on disk lacks ind-01, as after a SIGKILL.
    gallery.store.close()
    with Gallery.open(tmp_path) as reopened:
        assert reopened.stats().images == 2
        answer = reopened.pipeline.identify_photo(photos["ind-01", QUERY_SEED])
    assert answer.candidates[0].individual_id == "ind-01"


@pytest.mark.parametrize("damage", ["missing", "garbage", "stale_state"])
def test_damaged_or_missing_index_is_rebuilt(tmp_path: Path, photos, damage: str) -> None:
    with Gallery.open(tmp_path) as gallery:
        gallery.catalogue.enrol(photos["ind-00", 0], "ind-00")
        gallery.catalogue.enrol(photos["ind-01", 0], "ind-01")
    index_dir = tmp_path / "index"
    index_file = next(index_dir.glob("*.faiss"))
    if damage == "missing":
        index_file.unlink()
    elif damage == "garbage":
        index_file.write_bytes(b"not a faiss index")
    else:
        (index_dir / "state.json").write_text('{"extractor": "other"}')
    with Gallery.open(tmp_path) as gallery:
        assert gallery.stats().images == 2
        answer = gallery.pipeline.identify_photo(photos["ind-01", QUERY_SEED])
    assert answer.candidates[0].individual_id == "ind-01"


@pytest.mark.parametrize("damage", ["rows", "photo table"])
def test_an_ivf_index_without_its_exact_descriptors_is_rebuilt(
    tmp_path: Path, photos, damage: str
) -> None:
    search = SearchParameters(exact_search_max=500)
    with Gallery.open(tmp_path, search=search) as gallery:
        for ind in INDIVIDUALS[:3]:
            gallery.catalogue.enrol(photos[ind, 0], ind)
        assert gallery.local.index.approximate
    rows = next((tmp_path / "index").glob("*.faiss.rows"))
    if damage == "rows":
        rows.unlink()
    else:
        rows.with_name(rows.name + ".photos").write_bytes(b"not a table")
    with Gallery.open(tmp_path, search=search) as gallery:
        assert gallery.local.index.approximate and gallery.stats().images == 3
        answer = gallery.pipeline.identify_photo(photos[INDIVIDUALS[1], QUERY_SEED])
    assert answer.candidates[0].individual_id == INDIVIDUALS[1]


def test_other_extractor_settings_rebuild_features_index(tmp_path: Path, photos) -> None:
    """Features of other extractor settings are never mixed in: a gallery opened with
    new settings has an empty index until photos are enrolled again, and enrolling the
    same file again makes it searchable without storing a second photo."""
    from embeddings.keypoints import KeypointConfig

    with Gallery.open(tmp_path) as gallery:
        gallery.catalogue.enrol(photos["ind-00", 0], "ind-00")
    with Gallery.open(tmp_path, features=KeypointConfig(max_features=500)) as gallery:
        stats = gallery.stats()
        again = gallery.catalogue.enrol(photos["ind-00", 0], "ind-00")
        restored = gallery.stats()
        answer = gallery.pipeline.identify_photo(photos["ind-00", QUERY_SEED])
    assert stats.descriptors == 0
    assert stats.images == 0
    assert stats.stored_images == 1
    assert again.created is False
    assert restored.images == 1 and restored.stored_images == 1
    assert answer.candidates[0].individual_id == "ind-00"


def test_approximate_index_past_the_exact_limit(tmp_path: Path, photos) -> None:
    search = SearchParameters(exact_search_max=2_000, nprobe=32)
    with Gallery.open(tmp_path, search=search) as gallery:
        enrol_all(gallery, photos)
        assert gallery.stats().descriptors > 2_000
        # Rebuilt as an IVF when it outgrew exact search, and saved then: its exact
        # descriptors are read from the saved files, not held in memory.
        assert list(tmp_path.rglob("descriptors-*.faiss.rows"))
        assert gallery.local.index.rows_memory_bytes < gallery.stats().descriptors * 128
        hits = sum(
            gallery.pipeline.identify_photo(photos[ind, QUERY_SEED]).candidates[0].individual_id
            == ind
            for ind in INDIVIDUALS
        )
    assert hits == len(INDIVIDUALS)
    with Gallery.open(tmp_path, search=search) as gallery:
        assert (
            gallery.pipeline.identify_photo(photos["ind-04", QUERY_SEED])
            .candidates[0]
            .individual_id
            == "ind-04"
        )


def test_leave_one_out_excludes_the_query_photo(built: Path, photos) -> None:
    with Gallery.open(built) as gallery:
        target = gallery.store.images_of("ind-07")[0]
        row = gallery.store.feature(target.id, gallery.extractor.name, gallery.extractor.version)
        assert row is not None and isinstance(row.features, LocalFeatures)
        features = row.features
        with_self = gallery.local.rank(features)
        without = gallery.local.rank(features, exclude=[target.id])
        assert gallery.local.labels()[without[0].image_id] == "ind-07"
    assert with_self[0].image_id == target.id
    assert all(r.image_id != target.id for r in without)


def test_roll_hypotheses_are_searched_only_when_the_upright_search_verifies_weakly(
    built: Path, photos
) -> None:
    calls: list[tuple[list[float], int]] = []
    with Gallery.open(built) as gallery:

        def rolled_views(photo: Photo) -> Callable[[Sequence[float], int], list[LocalFeatures]]:
            detection = gallery.extractor.detect(photo)

            def views(angles: Sequence[float], strongest: int) -> list[LocalFeatures]:
                calls.append((list(angles), strongest))
                return detection.describe_rolls(angles, strongest)

            return views

        known = photos["ind-03", QUERY_SEED]
        strong = gallery.local.rank(gallery.extractor.extract(known), rolled=rolled_views(known))
        assert strong[0].inliers >= gallery.local.params.roll_below_inliers
        assert calls == []
        stranger = photos["stranger", QUERY_SEED]
        gallery.local.rank(gallery.extractor.extract(stranger), rolled=rolled_views(stranger))
        # Every hypothesis described in one call (one scale-space pyramid), from the
        # strongest keypoints.
        params = gallery.local.params
        assert calls == [(list(params.roll_angles), params.roll_keypoints)]


def _descriptions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, int | None]]:
    """(roll, strongest) of every keypoint description from now on, in order."""
    described: list[tuple[float, int | None]] = []
    describe_rolls = DetectedKeypoints.describe_rolls

    def spy_describe(
        self: DetectedKeypoints, rolls: Sequence[float], strongest: int | None = None
    ) -> list[LocalFeatures]:
        described.extend((roll, strongest) for roll in rolls)
        return describe_rolls(self, rolls, strongest)

    monkeypatch.setattr(DetectedKeypoints, "describe_rolls", spy_describe)
    return described


def test_identify_detects_keypoints_once_for_every_roll_hypothesis(
    built: Path, photos, monkeypatch: pytest.MonkeyPatch
) -> None:
    detected: list[Photo] = []
    described = _descriptions(monkeypatch)
    with Gallery.open(built) as gallery:
        detect = gallery.extractor.detect

        def spy_detect(photo: Photo, box: Box | None = None) -> DetectedKeypoints:
            detected.append(photo)
            return detect(photo, box)

        monkeypatch.setattr(gallery.extractor, "detect", spy_detect)
        # A stranger verifies weakly upright, so every hypothesis is searched; the query
        # is described from its strongest keypoints, upright and rolled.
        gallery.pipeline.identify_photo(photos["stranger", QUERY_SEED])
        params = gallery.local.params
        assert described == [
            (0.0, params.query_keypoints),
            *((roll, params.roll_keypoints) for roll in params.roll_angles),
        ]
    assert len(detected) == 1


def test_calibration_describes_stored_photos_as_identification_describes_queries(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    described = _descriptions(monkeypatch)
    shutil.copytree(built, tmp_path / "data")
    search = SearchParameters(query_keypoints=40)
    with Gallery.open(tmp_path / "data", search=search) as gallery:
        assert gallery.calibrator.refit()
    upright = [strongest for roll, strongest in described if roll == 0.0]
    assert upright and set(upright) == {search.query_keypoints}


def test_a_rolled_photo_is_identified_through_a_roll_hypothesis(built: Path, photos) -> None:
    known = photos["ind-05", QUERY_SEED]
    query = msgspec.structs.replace(known, pixels=rolled(known.pixels, 32.0))
    with Gallery.open(built) as gallery:
        upright = gallery.local.rank(gallery.extractor.extract(query))
        ranked = gallery.local.rank(
            gallery.extractor.extract(query),
            rolled=gallery.extractor.detect(query).describe_rolls,
        )
        assert gallery.local.labels()[ranked[0].image_id] == "ind-05"
        assert ranked[0].inliers > (upright[0].inliers if upright else 0)


def _photos_added(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids of photos added to any local search one by one from now on."""
    added: list[int] = []
    add = LocalSearch.add
    monkeypatch.setattr(
        LocalSearch,
        "add",
        lambda self, image_id, *a: added.append(image_id) or add(self, image_id, *a),
    )
    return added


def test_a_catalogue_grown_past_its_saved_index_is_rebuilt_without_adding_every_photo(
    tmp_path: Path, photos, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = SearchParameters(exact_search_max=2_000, nprobe=32)
    first = INDIVIDUALS[0]
    with Gallery.open(tmp_path, search=search) as gallery:
        gallery.catalogue.enrol(photos[first, 0], first, species="humpback_whale")
    # Enrolled without the saved index following (as by a process that crashed before
    # saving it): the next open finds the catalogue far past what the index was made for.
    with Gallery.open(tmp_path, search=search, load_index=False) as gallery:
        enrol_all(gallery, photos)
    added = _photos_added(monkeypatch)

    told: list[tuple[str, int, int]] = []

    def rebuilding(stage: str) -> Progress:
        return lambda done, total: told.append((stage, done, total))

    with Gallery.open(tmp_path, search=search, rebuilding=rebuilding) as gallery:
        stats = gallery.stats()
        answer = gallery.pipeline.identify_photo(photos["ind-05", QUERY_SEED])

    assert gallery.local.index.approximate
    assert stats.images == len(INDIVIDUALS) * len(GALLERY_SEEDS)
    assert added == []  # rebuilt at once, not first added one by one until outgrown
    # The rebuild said how far it got at each stage, in order.
    assert [stage for stage, _, _ in told] == sorted(
        (stage for stage, _, _ in told), key=list(BuildStage).index
    )
    assert {stage for stage, _, _ in told} == set(BuildStage)
    last = {stage: (done, total) for stage, done, total in told}
    assert last[BuildStage.READING] == (stats.images, stats.images)
    assert last[BuildStage.TRAINING] == (0, 0)
    assert last[BuildStage.ADDING] == (stats.images, stats.images)
    assert answer.candidates[0].individual_id == "ind-05"


def test_a_server_that_sees_many_photos_enrolled_elsewhere_rebuilds_without_adding_them(
    tmp_path: Path, photos, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = SearchParameters(exact_search_max=2_000, nprobe=32)
    first = INDIVIDUALS[0]
    with Gallery.open(tmp_path, search=search) as server:
        server.catalogue.enrol(photos[first, 0], first, species="humpback_whale")
        # Another process (not following the index itself) enrols the rest at once.
        with Gallery.open(tmp_path, search=search, load_index=False) as other:
            enrol_all(other, photos)
        added = _photos_added(monkeypatch)
        stats = server.stats()  # catches up
        answer = server.pipeline.identify_photo(photos["ind-05", QUERY_SEED])

    assert server.local.index.approximate
    assert stats.images == len(INDIVIDUALS) * len(GALLERY_SEEDS)
    assert added == []
    assert answer.candidates[0].individual_id == "ind-05"


def test_a_follower_rebuilds_when_the_photos_it_catches_up_with_outgrow_it_not_before(
    tmp_path: Path, photos, caplog: pytest.LogCaptureFixture
) -> None:
    # Estimated from the mean photo it held, two large photos made three small ones
    # look like 4 500 descriptors: a rebuild to the same exact index, and another later.
    search = SearchParameters(exact_search_max=4_000)
    rng = np.random.default_rng(0)

    def features(count: int) -> list:
        described = LocalFeatures(
            keypoints=rng.uniform(0, 300, (count, 4)).astype(np.float32),
            descriptors=rng.integers(0, 256, (count, 128), dtype=np.uint8),
        )
        extractor = follower.catalogue.describer.extractor
        return [(extractor.name, extractor.version, described)]

    with (
        Gallery.open(tmp_path, search=search) as follower,
        Gallery.open(tmp_path, search=search, load_index=False) as writer,
        caplog.at_level("WARNING", logger="indexer.follower"),
    ):
        enrolled = iter(photos[individual, 0] for individual in INDIVIDUALS)
        for count in (1_500, 1_500):
            writer.catalogue.enrol(next(enrolled), "large", prepared=features(count))
        follower.stats()
        for count in (100, 100, 100):
            writer.catalogue.enrol(next(enrolled), "small", prepared=features(count))
        follower.stats()
        assert "outgrown" not in caplog.text
        assert (follower.local.descriptors, follower.local.index.approximate) == (3_300, False)
        writer.catalogue.enrol(next(enrolled), "large", prepared=features(1_500))
        follower.stats()
        assert caplog.text.count("outgrown") == 1
        assert (follower.local.descriptors, follower.local.index.approximate) == (4_800, True)


def test_servers_that_caught_up_at_different_moments_hold_the_same_index(
    tmp_path: Path, photos
) -> None:
    # Two processes following the same enrolment rebuilt at whatever size they caught up
    # at, and then answered one photo differently; the index is now trained at sizes
    # fixed by the catalogue, so when they caught up does not matter.
    search = SearchParameters(exact_search_max=2_000, nprobe=32)
    order = [(individual, seed) for individual in INDIVIDUALS for seed in GALLERY_SEEDS]
    with (
        Gallery.open(tmp_path, search=search) as often,
        Gallery.open(tmp_path, search=search) as once,
        Gallery.open(tmp_path, search=search, load_index=False) as writer,
    ):
        for done, (individual, seed) in enumerate(order, start=1):
            writer.catalogue.enrol(photos[individual, seed], individual, species="humpback_whale")
            if done in (2, 3, 7, 8, 20):
                often.stats()  # catches up
        often.stats()
        once.stats()
        assert often.local.index.approximate
        assert often.local.index.to_bytes() == once.local.index.to_bytes()
        query = photos["ind-05", QUERY_SEED]
        answers = [g.pipeline.identify_photo(query).candidates for g in (often, once)]
    assert answers[0] == answers[1]
    assert answers[0][0].individual_id == "ind-05"
