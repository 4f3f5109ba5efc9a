"""Catalogue edits on a gallery: searchable at once, persisted, and equal to a rebuild."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

from embeddings.photo import Photo
from indexer import refit
from indexer.gallery import Gallery
from indexer.store import Conflict, InvalidInput, NotFound
from tests.indexer.test_gallery import GALLERY_SEEDS, QUERY_SEED, photo

PEOPLE = ["ind-00", "ind-01", "ind-02", "ind-03"]


@pytest.fixture(scope="module")
def photos() -> dict[tuple[str, int], Photo]:
    return {(ind, s): photo(ind, s) for ind in PEOPLE for s in (*GALLERY_SEEDS, QUERY_SEED)}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, photos) -> Path:
    data = tmp_path_factory.mktemp("catalogue")
    with Gallery.open(data) as gallery:
        for individual in PEOPLE:
            for seed in GALLERY_SEEDS:
                gallery.catalogue.enrol(
                    photos[individual, seed],
                    individual,
                    species="humpback_whale",
                    source_name=f"{individual}-{seed}.jpg",
                )
        gallery.rebuild()
    return data


@pytest.fixture
def data(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(template, copy)
    return copy


def best(gallery: Gallery, photos, individual: str) -> str | None:
    answer = gallery.pipeline.identify_photo(photos[individual, QUERY_SEED])
    return answer.candidates[0].individual_id if answer.candidates else None


def names(gallery: Gallery, photos, individual: str) -> list[str]:
    answer = gallery.pipeline.identify_photo(photos[individual, QUERY_SEED], top_k=10)
    return [c.individual_id for c in answer.candidates]


def test_rename_is_searchable_at_once_and_after_restart(data: Path, photos) -> None:
    with Gallery.open(data) as gallery:
        gallery.catalogue.rename_individual("ind-01", "HW-0001")
        assert best(gallery, photos, "ind-01") == "HW-0001"
        assert "ind-01" not in names(gallery, photos, "ind-01")
        assert gallery.store.individual("HW-0001").species == "humpback_whale"
    with Gallery.open(data) as gallery:
        assert best(gallery, photos, "ind-01") == "HW-0001"


def test_rename_to_a_taken_id_changes_nothing(data: Path, photos) -> None:
    with Gallery.open(data) as gallery:
        with pytest.raises(Conflict):
            gallery.catalogue.rename_individual("ind-01", "ind-02")
        with pytest.raises(NotFound):
            gallery.catalogue.rename_individual("nobody", "ind-09")
        assert best(gallery, photos, "ind-01") == "ind-01"
        assert best(gallery, photos, "ind-02") == "ind-02"


def test_merge_moves_photos_to_the_target(data: Path, photos) -> None:
    with Gallery.open(data) as gallery:
        moved = gallery.catalogue.merge_individuals("ind-02", "ind-03")
        assert moved == len(GALLERY_SEEDS)
        assert best(gallery, photos, "ind-02") == "ind-03"
        assert best(gallery, photos, "ind-03") == "ind-03"
        assert gallery.store.individual("ind-02") is None
        assert gallery.stats().individuals == len(PEOPLE) - 1
    with Gallery.open(data) as gallery:
        assert best(gallery, photos, "ind-02") == "ind-03"


def test_deleted_photos_are_no_longer_evidence(data: Path, photos) -> None:
    with Gallery.open(data) as gallery:
        ids = [img.id for img in gallery.store.images_of("ind-00")]
        descriptors = gallery.stats().descriptors
        assert gallery.catalogue.delete_image(ids[0]) is True
        assert gallery.catalogue.delete_image(ids[0]) is False
        assert gallery.stats().descriptors < descriptors
        answer = gallery.pipeline.identify_photo(photos["ind-00", QUERY_SEED], top_k=10)
        assert all(c.evidence.image_id != ids[0] for c in answer.candidates)
        for image_id in ids[1:]:
            gallery.catalogue.delete_image(image_id)
        assert "ind-00" not in names(gallery, photos, "ind-00")
        # The individual stays in the catalogue, with no photos.
        assert gallery.store.individual("ind-00").image_count == 0
    with Gallery.open(data) as gallery:
        assert "ind-00" not in names(gallery, photos, "ind-00")
        assert best(gallery, photos, "ind-01") == "ind-01"


def test_delete_individual_removes_it_from_searches(data: Path, photos) -> None:
    with Gallery.open(data) as gallery:
        assert gallery.catalogue.delete_individual("ind-03") == len(GALLERY_SEEDS)
        assert "ind-03" not in names(gallery, photos, "ind-03")
        with pytest.raises(NotFound):
            gallery.catalogue.delete_individual("ind-03")
    with Gallery.open(data) as gallery:
        assert "ind-03" not in names(gallery, photos, "ind-03")
        assert gallery.stats().images == (len(PEOPLE) - 1) * len(GALLERY_SEEDS)


def test_edits_saved_on_close_equal_a_rebuild(data: Path, photos) -> None:
    with Gallery.open(data) as gallery:
        gallery.catalogue.rename_individual("ind-00", "renamed")
        gallery.catalogue.delete_image(gallery.store.images_of("ind-01")[0].id)
        gallery.catalogue.merge_individuals("ind-02", "ind-03")
    with Gallery.open(data) as gallery:
        kept = {ind: names(gallery, photos, ind) for ind in PEOPLE}
        gallery.rebuild()
        rebuilt = {ind: names(gallery, photos, ind) for ind in PEOPLE}
    assert kept == rebuilt


def test_edit_after_a_crash_is_rebuilt_from_the_database(data: Path, photos) -> None:
    gallery = Gallery.open(data)
    gallery.catalogue.rename_individual("ind-00", "renamed")
    gallery.store.close()  # killed before the index state was saved
    with Gallery.open(data) as reopened:
        assert best(reopened, photos, "ind-00") == "renamed"


def test_create_and_update_individuals(data: Path) -> None:
    with Gallery.open(data) as gallery:
        created = gallery.catalogue.create_individual("HW-9", species="humpback_whale", name="Salt")
        assert (created.id, created.name, created.image_count) == ("HW-9", "Salt", 0)
        with pytest.raises(Conflict):
            gallery.catalogue.create_individual("HW-9")
        updated = gallery.catalogue.update_individual("HW-9", species="fin_whale")
        assert (updated.species, updated.name) == ("fin_whale", "Salt")
        with pytest.raises(NotFound):
            gallery.catalogue.update_individual("nobody", name="x")


def test_a_second_process_sees_every_committed_change(data: Path, photos) -> None:
    """Two galleries on one data folder stand for `whaleid serve` and the CLI beside it:
    each answer follows what the other committed, with no rebuild and no restart."""
    with Gallery.open(data) as server, Gallery.open(data) as cli:
        assert best(server, photos, "ind-01") == "ind-01"
        cli.catalogue.rename_individual("ind-01", "renamed")
        assert best(server, photos, "ind-01") == "renamed"
        cli.catalogue.delete_individual("ind-02")
        assert "ind-02" not in names(server, photos, "ind-02")
        stranger = photo("ind-09", 0)
        cli.catalogue.enrol(stranger, "ind-09")
        assert server.stats().images == cli.stats().images
        answer = server.pipeline.identify_photo(photo("ind-09", QUERY_SEED))
        assert answer.candidates[0].individual_id == "ind-09"
        # The server learnt all of it by following, not by rebuilding.
        assert server.follower.max_feature_id == cli.follower.max_feature_id


def test_a_saved_index_resumes_past_edits_made_while_it_was_closed(data: Path, photos) -> None:
    with Gallery.open(data) as gallery:
        gallery.catalogue.enrol(photo("ind-09", 0), "ind-09")
    index_files = sorted((data / "index").glob("*.faiss"))
    with Gallery.open(data) as other:
        other.catalogue.delete_individual("ind-03")
    with Gallery.open(data) as gallery:
        assert "ind-03" not in names(gallery, photos, "ind-03")
        assert best(gallery, photos, "ind-00") == "ind-00"
    assert index_files  # a saved index existed to resume from


def test_calibrations_fitted_by_one_process_are_used_by_the_other(data: Path, photos) -> None:
    """A CLI refit is the server's calibration at its next answer, and a server that
    shuts down never writes an older one back."""
    with Gallery.open(data) as server, Gallery.open(data) as cli:
        before = server.calibrator.current()
        for seed in GALLERY_SEEDS:
            for individual in ("ind-07", "ind-08", "ind-09", "ind-10"):
                cli.catalogue.enrol(photo(individual, seed), individual)
        assert cli.calibrator.refit_if_due()
        server.pipeline.identify_photo(photos["ind-00", QUERY_SEED])
        assert server.calibrator.current() == cli.calibrator.current() != before
        assert server.calibrator.current().photos == 3 * len(PEOPLE) + 3 * 4
    with Gallery.open(data) as reopened:
        assert reopened.calibrator.current().photos == 24
        assert not reopened.calibrator.refit_if_due()  # nothing grew since


def test_of_two_processes_fitting_at_once_the_first_to_commit_is_kept(data: Path, photos) -> None:
    """Each process searches its own index, so their fits differ: a later commit of the
    same catalogue would change every answer's probability with no change to the data."""
    with Gallery.open(data) as server, Gallery.open(data) as cli:
        for seed in GALLERY_SEEDS:
            for individual in ("ind-07", "ind-08", "ind-09", "ind-10"):
                cli.catalogue.enrol(photo(individual, seed), individual)
        cli_fits: list[bool] = []

        def cli_commits_first(done: int, total: int) -> None:
            if not cli_fits:
                cli_fits.append(cli.calibrator.refit_if_due())

        assert not server.calibrator.refit_if_due(cli_commits_first)
        assert cli_fits == [True]
        assert server.calibrator.current() == cli.calibrator.current()
        committed = server.store.calibration(server.calibrator.key)
        assert committed is not None
        assert msgspec.json.decode(committed[1]) == msgspec.to_builtins(cli.calibrator.current())
        assert not server.calibrator.refit_if_due()  # the kept fit is of this catalogue


def test_a_server_checking_during_an_enrolment_leaves_the_fit_to_its_end(
    data: Path, photos
) -> None:
    """The server checked halfway through `whaleid enrol`, found a refit due and fitted;
    the enrolment's end was then not due, and the fit depended on when the check came."""
    enrolled = [(f"ind-{n:02d}", seed) for n in range(7, 11) for seed in GALLERY_SEEDS]
    with Gallery.open(data) as server, Gallery.open(data) as cli:
        assert server.calibrator.current().photos == 12
        assert not server.calibrator.refit_if_settled()  # its first look
        for individual, seed in enrolled[:10]:
            cli.catalogue.enrol(photo(individual, seed), individual)
        assert not server.calibrator.refit_if_settled()  # due, but the catalogue moved
        for individual, seed in enrolled[10:]:
            cli.catalogue.enrol(photo(individual, seed), individual)
        assert cli.calibrator.refit_if_due()  # the end of `whaleid enrol`
        assert not server.calibrator.refit_if_settled()
        assert not server.calibrator.refit_if_settled()  # settled, and not due
        assert server.calibrator.current().photos == 24


def test_a_server_refits_a_grown_catalogue_once_it_holds_still(data: Path, photos) -> None:
    """An enrolment that ended without its fit (stopped, or through the API)."""
    with Gallery.open(data) as server, Gallery.open(data) as cli:
        assert not server.calibrator.refit_if_settled()
        for n in range(7, 11):
            for seed in GALLERY_SEEDS:
                cli.catalogue.enrol(photo(f"ind-{n:02d}", seed), f"ind-{n:02d}")
        assert not server.calibrator.refit_if_settled()
        assert server.calibrator.refit_if_settled()
        assert cli.calibrator.current().photos == 24


def test_a_catalogue_that_never_holds_still_is_refitted_all_the_same(
    data: Path, photos, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refit, "_MOVING_CHECKS", 3)
    enrolled = [(f"ind-{n:02d}", seed) for n in range(7, 11) for seed in GALLERY_SEEDS]
    with Gallery.open(data) as server, Gallery.open(data) as cli:
        fits = []
        for individual, seed in enrolled:
            cli.catalogue.enrol(photo(individual, seed), individual)
            fits.append(server.calibrator.refit_if_settled())
        # Every third check that saw a change may refit; due from the 10th photo (22 in all).
        assert fits == [False] * 11 + [True]
        assert server.calibrator.current().photos == 24


def test_a_photo_described_elsewhere_is_stored_as_if_described_here(tmp_path: Path, photos) -> None:
    """The cluster's enrolment: a worker describes, the catalogue stores."""
    here, there = tmp_path / "here", tmp_path / "there"
    with Gallery.open(here) as gallery:
        stored = gallery.catalogue.enrol(photos["ind-00", QUERY_SEED], "ind-00")
        expected = gallery.store.feature(
            stored.image_id, gallery.extractor.name, gallery.extractor.version
        )
    with Gallery.open(there) as gallery:
        described = gallery.catalogue.describer.described(photos["ind-00", QUERY_SEED])
        result = gallery.catalogue.enrol_described(described, "ind-00")
        again = gallery.catalogue.enrol_described(described, "ind-00")
        got = gallery.store.feature(
            result.image_id, gallery.extractor.name, gallery.extractor.version
        )

    assert result.created and not again.created
    assert got is not None and expected is not None
    assert got.features.descriptors.tobytes() == expected.features.descriptors.tobytes()


def test_a_photo_described_with_other_settings_is_refused(tmp_path: Path, photos) -> None:
    with Gallery.open(tmp_path) as gallery:
        described = gallery.catalogue.describer.described(photos["ind-00", QUERY_SEED])
        (name, _, features), *_ = described.features
        other = msgspec.structs.replace(described, features=[(name, "0-other", features)])

        with pytest.raises(InvalidInput, match=r"described with rootsift-0-other, but this"):
            gallery.catalogue.enrol_described(other, "ind-00")
        assert gallery.store.count_images() == 0
