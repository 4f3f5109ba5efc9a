"""The gallery keeps its photo files: enrolment, deletion, the sweep on open, re-extraction."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from embeddings.images import load_photo
from embeddings.keypoints import KeypointConfig
from embeddings.photo import Photo
from indexer.gallery import Gallery
from indexer.photo_files import PhotoFiles
from indexer.store import InvalidInput
from tests.synthetic import encode, sighting

INDIVIDUALS = ("HW-1", "HW-2", "HW-3")
QUERY_SEED = 7


def content(individual: str, seed: int) -> bytes:
    return encode(sighting(individual, seed), "JPEG")


@pytest.fixture(scope="module")
def photos() -> dict[tuple[str, int], Photo]:
    return {
        (ind, seed): load_photo(content(ind, seed))
        for ind in INDIVIDUALS
        for seed in (0, 1, QUERY_SEED)
    }


def pixels_only(photo: Photo) -> Photo:
    """The photo as an older version enrolled it: features, no file."""
    return msgspec.structs.replace(photo, content=b"")


def stored_files(data: Path) -> set[str]:
    return set(PhotoFiles(data / "photos").shas())


def test_enrol_keeps_the_original_bytes(tmp_path: Path, photos) -> None:
    photo = photos["HW-1", 0]
    with Gallery.open(tmp_path) as gallery:
        result = gallery.catalogue.enrol(photo, "HW-1")
        row = gallery.store.image(result.image_id)
        assert row is not None
        assert (row.file_bytes, row.format) == (len(photo.content), "JPEG")
        assert gallery.photos.read(photo.sha256) == content("HW-1", 0)
    assert (tmp_path / "photos" / photo.sha256[:2] / photo.sha256).read_bytes() == photo.content


def test_a_photo_made_from_pixels_alone_has_no_file(tmp_path: Path, photos) -> None:
    with Gallery.open(tmp_path) as gallery:
        result = gallery.catalogue.enrol(pixels_only(photos["HW-1", 0]), "HW-1")
        row = gallery.store.image(result.image_id)
    assert row is not None and row.file_bytes is None
    assert stored_files(tmp_path) == set()


def test_enrolling_again_keeps_the_file_of_a_photo_enrolled_without_one(
    tmp_path: Path, photos
) -> None:
    photo = photos["HW-1", 0]
    with Gallery.open(tmp_path) as gallery:
        first = gallery.catalogue.enrol(pixels_only(photo), "HW-1")
        again = gallery.catalogue.enrol(photo, "HW-1")
        row = gallery.store.image(first.image_id)
    assert (again.image_id, again.created) == (first.image_id, False)
    assert row is not None and row.file_bytes == len(photo.content)
    assert stored_files(tmp_path) == {photo.sha256}


def test_content_that_does_not_match_the_sha256_is_refused(tmp_path: Path, photos) -> None:
    forged = msgspec.structs.replace(photos["HW-1", 0], content=content("HW-2", 0))
    with Gallery.open(tmp_path) as gallery, pytest.raises(InvalidInput, match="sha256"):
        gallery.catalogue.enrol(forged, "HW-1")
    assert stored_files(tmp_path) == set()


def test_a_refused_enrolment_leaves_no_file(tmp_path: Path, photos) -> None:
    with Gallery.open(tmp_path) as gallery:
        with pytest.raises(InvalidInput, match="/"):
            gallery.catalogue.enrol(photos["HW-1", 0], "HW/1")
        assert gallery.store.count_images() == 0
    assert stored_files(tmp_path) == set()


def test_delete_image_removes_its_file_and_thumbnails(tmp_path: Path, photos) -> None:
    kept, deleted = photos["HW-1", 0], photos["HW-1", 1]
    with Gallery.open(tmp_path) as gallery:
        gallery.catalogue.enrol(kept, "HW-1")
        image_id = gallery.catalogue.enrol(deleted, "HW-1").image_id
        gallery.photos.thumbnail(deleted.sha256, 64)
        assert gallery.catalogue.delete_image(image_id)
        assert not gallery.catalogue.delete_image(image_id)
    assert stored_files(tmp_path) == {kept.sha256}
    assert list((tmp_path / "photos" / "thumbnails" / "64").iterdir()) == []


def test_delete_individual_removes_its_files_and_merge_keeps_them(tmp_path: Path, photos) -> None:
    with Gallery.open(tmp_path) as gallery:
        for individual in INDIVIDUALS:
            for seed in (0, 1):
                gallery.catalogue.enrol(photos[individual, seed], individual)
        assert gallery.catalogue.merge_individuals("HW-2", "HW-3") == 2
        assert gallery.catalogue.delete_individual("HW-1") == 2
    assert stored_files(tmp_path) == {
        photos[ind, seed].sha256 for ind in ("HW-2", "HW-3") for seed in (0, 1)
    }


def test_open_sweeps_files_without_a_row_and_keeps_the_others(tmp_path: Path, photos) -> None:
    with Gallery.open(tmp_path) as gallery:
        gallery.catalogue.enrol(photos["HW-1", 0], "HW-1")
    files = PhotoFiles(tmp_path / "photos")
    orphan = files.put(content("HW-2", 0))  # as if killed before its row committed
    leftover = files.root / orphan[:2] / f".{orphan}.deadbeef.tmp"
    leftover.write_bytes(b"half a file")

    with Gallery.open(tmp_path) as gallery:
        assert gallery.photos.has(photos["HW-1", 0].sha256)
    assert stored_files(tmp_path) == {photos["HW-1", 0].sha256}
    assert not leftover.exists()


def test_reextract_makes_every_stored_photo_searchable_under_new_settings(
    tmp_path: Path, photos
) -> None:
    """Changed [features] settings: the stored files give the new features, with no
    enrolment; a photo enrolled before files were kept is reported, not dropped."""
    with Gallery.open(tmp_path) as gallery:
        for individual in INDIVIDUALS:
            for seed in (0, 1):
                gallery.catalogue.enrol(photos[individual, seed], individual)
        old = gallery.catalogue.enrol(pixels_only(load_photo(content("HW-9", 0))), "HW-9")
        gallery.rebuild()
        old_version = gallery.extractor.version

    changed = KeypointConfig(max_features=600)
    with Gallery.open(tmp_path, features=changed) as gallery:
        assert gallery.extractor.version != old_version
        assert gallery.stats().images == 0
        progress: list[tuple[int, int]] = []
        done = gallery.catalogue.reextract(lambda i, n: progress.append((i, n)))
        gallery.rebuild()
        stats = gallery.stats()
        answers = {
            ind: gallery.pipeline.identify_photo(photos[ind, QUERY_SEED]) for ind in INDIVIDUALS
        }
        again = gallery.catalogue.reextract()

    assert done.extracted == 6
    assert done.current == 0
    assert [(u.image_id, u.individual_id, u.reason) for u in done.unextracted] == [
        (old.image_id, "HW-9", "no_file")
    ]
    assert progress[-1] == (7, 7)
    assert stats.images == 6 and stats.stored_images == 7
    for individual, answer in answers.items():
        assert answer.candidates[0].individual_id == individual
    assert again.extracted == 0 and again.current == 6
    assert [u.reason for u in again.unextracted] == ["no_file"]


def test_photos_of_other_settings_are_named_and_lacking_until_described_again(
    tmp_path: Path, photos, caplog: pytest.LogCaptureFixture
) -> None:
    """An upgrade that changes the extractor's settings: opening says how many photos
    are not searched, and the gallery is `lacking` until they are described again."""
    with Gallery.open(tmp_path) as gallery:
        for individual in INDIVIDUALS:
            gallery.catalogue.enrol(photos[individual, 0], individual)
        current = gallery.lacking()

    changed = KeypointConfig(max_features=600)
    with caplog.at_level("WARNING"), Gallery.open(tmp_path, features=changed) as gallery:
        lacking = gallery.lacking()
        gallery.catalogue.reextract()
        described = gallery.lacking()

    assert "3 of 3 photos have no features of these extractor settings (rootsift-" in caplog.text
    assert (current, lacking, described) == (False, True, False)
    caplog.clear()
    with caplog.at_level("WARNING"), Gallery.open(tmp_path, features=changed):
        pass
    assert "no features of these extractor settings" not in caplog.text


def test_photos_enrolled_before_an_embedder_are_named_and_reextract_embeds_them(
    tmp_path: Path, photos, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.indexer.test_detections import FramesOnlyEmbedder

    with Gallery.open(tmp_path) as gallery:
        for individual in INDIVIDUALS:
            gallery.catalogue.enrol(photos[individual, 0], individual)

    with (
        caplog.at_level("WARNING"),
        Gallery.open(tmp_path, embedder=FramesOnlyEmbedder()) as gallery,
    ):
        assert gallery.stats().embeddings == 0
        gallery.catalogue.reextract()
        embedded = gallery.stats().embeddings

    assert (
        f"{len(INDIVIDUALS)} of {len(INDIVIDUALS)} photos have no embedding from scene"
        in caplog.text
    )
    assert "whaleid index rebuild" in caplog.text
    assert embedded == len(INDIVIDUALS)
    caplog.clear()
    with caplog.at_level("WARNING"), Gallery.open(tmp_path, embedder=FramesOnlyEmbedder()):
        pass
    assert "have no embedding from scene" not in caplog.text
