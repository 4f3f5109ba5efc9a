"""Deep search in the gallery: ArcFace centroids, photo embeddings, and their fusion with
local-feature verification."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from embeddings.arcface import ArcFaceEmbedder
from embeddings.images import load_photo
from embeddings.model_files import ModelFileError
from embeddings.preprocess import arcface_input
from embeddings.reference.efficientnet import load_arcface_checkpoint
from indexer import deep_search
from indexer.calibration import Calibration
from indexer.centroids import read_centroids
from indexer.decision import _fused
from indexer.deep_search import DeepHit
from indexer.gallery import Gallery
from indexer.store import StoreError
from tests.deep_models import ACTIVE_CLASSES, PLANTED, PLANTED_PHOTOS, RandomModels
from tests.synthetic import encode, fluke, sighting


@pytest.fixture(scope="module")
def centroid_rows(random_models: RandomModels) -> list:
    return read_centroids(
        random_models.checkpoint, random_models.classes, random_models.species_map
    )


@pytest.fixture
def deep_gallery(tmp_path: Path, random_models: RandomModels, centroid_rows: list) -> Gallery:
    embedder = ArcFaceEmbedder(random_models.models_dir / "arcface-effb4")
    gallery = Gallery.open(tmp_path / "data", embedder=embedder)
    gallery.catalogue.import_centroids(centroid_rows)
    yield gallery
    gallery.close()


def test_read_centroids_gives_the_active_rows_normalised(
    random_models: RandomModels, centroid_rows: list
) -> None:
    weights = torch.load(random_models.checkpoint, weights_only=True)["state_dict"]["arc.weight"]
    assert len(centroid_rows) == ACTIVE_CLASSES < len(weights)
    ident, species, vector = centroid_rows[42]
    assert ident == random_models.class_ids[42]
    assert species == "beluga"
    expected = weights[42].numpy() / np.linalg.norm(weights[42].numpy())
    assert np.allclose(vector, expected, atol=1e-6)


def test_index_top1_over_the_centroids_is_the_models_argmax(
    deep_gallery: Gallery, random_models: RandomModels
) -> None:
    net = load_arcface_checkpoint(random_models.checkpoint)
    centroids = net.centroids()[:ACTIVE_CLASSES]
    photos = [*PLANTED_PHOTOS.values(), sighting("someone", 3), fluke("else", width=900)]
    compared = []
    for pixels in photos:
        with torch.no_grad():
            logits = net(torch.from_numpy(arcface_input(pixels))) @ centroids.T
        top2 = torch.topk(logits[0], 2)
        expected = random_models.class_ids[int(top2.indices[0])]
        if float(top2.values[0] - top2.values[1]) < 1e-4:
            continue  # a tie within float error of the export; not a disagreement
        query = load_photo(encode(pixels))

        answer = deep_gallery.pipeline.identify_photo(query)

        assert answer.candidates[0].individual_id == expected
        assert answer.candidates[0].similarity == pytest.approx(float(top2.values[0]), abs=1e-3)
        compared.append(expected)
    assert len(compared) >= 4  # at most one photo skipped for a near tie
    assert len(set(compared)) >= 3  # not one class found for every photo
    planted_answers = [
        deep_gallery.pipeline.identify_photo(load_photo(encode(p))) for p in PLANTED_PHOTOS.values()
    ]
    assert [a.candidates[0].individual_id for a in planted_answers] == list(PLANTED.values())
    evidence = planted_answers[0].candidates[0].evidence
    assert evidence.image_id is None and "centroid" in evidence.source_name
    assert planted_answers[0].models == [f"arcface-effb4-{deep_gallery.embedder.version}"]


def test_centroids_survive_a_restart_and_count_in_stats(
    tmp_path: Path, random_models: RandomModels, centroid_rows: list
) -> None:
    embedder = ArcFaceEmbedder(random_models.models_dir / "arcface-effb4")
    with Gallery.open(tmp_path / "data", embedder=embedder) as gallery:
        assert gallery.catalogue.import_centroids(centroid_rows) == ACTIVE_CLASSES
    with Gallery.open(tmp_path / "data", embedder=embedder) as gallery:
        stats = gallery.stats()
        answer = gallery.pipeline.identify_photo(load_photo(encode(PLANTED_PHOTOS[5])))
    assert stats.centroids == ACTIVE_CLASSES
    assert answer.candidates[0].individual_id == PLANTED[5]
    assert answer.candidates[0].species == "humpback_whale"  # row 5 is odd


def test_enrolled_photos_are_found_beside_the_centroids_and_follow_catalogue_edits(
    deep_gallery: Gallery,
) -> None:
    pixels = PLANTED_PHOTOS[4_321]
    enrolled = deep_gallery.catalogue.enrol(
        load_photo(encode(sighting("planted-4321", 1))), "new-whale"
    )
    assert deep_gallery.stats().embeddings == 1

    answer = deep_gallery.pipeline.identify_photo(load_photo(encode(pixels)))
    names = [c.individual_id for c in answer.candidates]
    assert {"new-whale", PLANTED[4_321]} <= set(names)
    photo_candidate = answer.candidates[names.index("new-whale")]
    assert photo_candidate.evidence.image_id == enrolled.image_id
    assert photo_candidate.similarity is not None

    deep_gallery.catalogue.rename_individual("new-whale", "renamed-whale")
    deep_gallery.catalogue.merge_individuals(PLANTED[4_321], "renamed-whale")
    names = [
        c.individual_id
        for c in deep_gallery.pipeline.identify_photo(load_photo(encode(pixels))).candidates
    ]
    assert "renamed-whale" in names and PLANTED[4_321] not in names and "new-whale" not in names

    deep_gallery.catalogue.delete_individual("renamed-whale")
    names = [
        c.individual_id
        for c in deep_gallery.pipeline.identify_photo(load_photo(encode(pixels))).candidates
    ]
    assert "renamed-whale" not in names
    assert deep_gallery.stats().centroids == ACTIVE_CLASSES - 1


def test_a_follower_and_a_fresh_start_train_the_same_deep_index(
    tmp_path: Path,
    random_models: RandomModels,
    centroid_rows: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The deep index turns PQ when it outgrows exact search. A server that followed the
    # enrolment added the photos after the centroids, one catch-up at a time; one started
    # afterwards read the photos first: each trained on other vectors.
    monkeypatch.setattr(deep_search, "DEEP_EXACT_MAX", ACTIVE_CLASSES + 2)
    embedder = ArcFaceEmbedder(random_models.models_dir / "arcface-effb4")
    data = tmp_path / "data"
    with Gallery.open(data, embedder=embedder, load_index=False) as writer:
        writer.catalogue.import_centroids(centroid_rows)
        with Gallery.open(data, embedder=embedder) as follower:
            for n in range(5):
                writer.catalogue.enrol(load_photo(encode(sighting(f"whale-{n}", n))), f"whale-{n}")
                follower.stats()  # catches up
            follower.deep.index.save(tmp_path / "followed")
    with Gallery.open(data, embedder=embedder) as fresh:
        assert fresh.deep.index.approximate
        fresh.deep.index.save(tmp_path / "fresh")
    assert (tmp_path / "followed").read_bytes() == (tmp_path / "fresh").read_bytes()


def test_a_photo_enrolled_before_the_model_gets_its_embedding_when_enrolled_again(
    tmp_path: Path, random_models: RandomModels
) -> None:
    data = encode(sighting("late", 0))
    with Gallery.open(tmp_path / "data") as gallery:
        first = gallery.catalogue.enrol(load_photo(data), "late")
    embedder = ArcFaceEmbedder(random_models.models_dir / "arcface-effb4")
    with Gallery.open(tmp_path / "data", embedder=embedder) as gallery:
        assert gallery.stats().embeddings == 0
        again = gallery.catalogue.enrol(load_photo(data), "late")
        assert again.image_id == first.image_id and not again.created
        assert gallery.stats().embeddings == 1


def test_importing_centroids_needs_the_deep_model(tmp_path: Path, centroid_rows: list) -> None:
    with Gallery.open(tmp_path / "data") as gallery, pytest.raises(StoreError, match="no deep"):
        gallery.catalogue.import_centroids(centroid_rows[:3])


def test_a_class_list_that_would_run_code_is_refused(
    tmp_path: Path, random_models: RandomModels
) -> None:
    class Exploit:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    path = tmp_path / "encoder_classes.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "|O", "fortran_order": False, "shape": (1,)}
        )
        pickle.dump(Exploit(), f)

    with pytest.raises(ModelFileError, match="refusing to load builtins.print"):
        read_centroids(random_models.checkpoint, path, random_models.species_map)


def test_bad_centroid_inputs_name_the_file(tmp_path: Path, random_models: RandomModels) -> None:
    too_many = tmp_path / "classes.npy"
    np.save(too_many, np.arange(20_000))
    with pytest.raises(ModelFileError, match="20000 classes, but the checkpoint has 15587"):
        read_centroids(random_models.checkpoint, too_many, random_models.species_map)
    repeated = tmp_path / "repeated.npy"
    np.save(repeated, np.array(["a", "a"]))
    with pytest.raises(ModelFileError, match="more than once"):
        read_centroids(random_models.checkpoint, repeated, random_models.species_map)
    bad_csv = tmp_path / "species.csv"
    bad_csv.write_text("id,kind\n")
    with pytest.raises(ModelFileError, match="individual_id,species"):
        read_centroids(random_models.checkpoint, random_models.classes, bad_csv)


def test_fusion_averages_calibrated_probabilities() -> None:
    deep = Calibration(scores=[0.0, 1.0], probabilities=[0.0, 1.0], fitted=True)
    with_photos = {"photographed", "unmatched"}
    hits = {
        "centroid-only": DeepHit(0.8, None),
        "photographed": DeepHit(0.6, 1),
        "unmatched": DeepHit(0.4, 2),
    }

    fused = _fused({"photographed": 0.9, "local-only": 0.7}, hits, deep, with_photos)

    assert fused["photographed"] == pytest.approx((0.9 + 0.6) / 2)
    assert fused["centroid-only"] == pytest.approx(0.8)  # no photo: the embedding alone
    assert fused["unmatched"] == pytest.approx((0.0 + 0.4) / 2)  # photos, nothing matched
    # Not reached by the deep search: bounded by the lowest cosine read (0.4).
    assert fused["local-only"] == pytest.approx((0.7 + 0.4) / 2)
