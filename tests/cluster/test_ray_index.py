"""The descriptor index on a real Ray cluster (see conftest): filled in shards on the
workers and merged, or split across actors and searched there, it must be the index,
and give the answers, of one process."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from ray.cluster_utils import Cluster

from cluster.index_build import fill_on_cluster
from cluster.session import connected
from cluster.sharded_search import ShardedIndex
from embeddings.protocol import LocalFeatures
from indexer.gallery import Gallery
from indexer.local_search import SearchParameters, positions_of
from indexer.results import Identification

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")]

# Below the synthetic catalogue's descriptor count, so that its index is an IVF.
_EXACT_MAX = 2_000


@pytest.fixture
def gallery(one_process: Path, tmp_path: Path) -> Iterator[Gallery]:
    """The one-process catalogue, copied, on an IVF index built here."""
    data = tmp_path / "data"
    shutil.copytree(one_process, data)
    search = SearchParameters(exact_search_max=_EXACT_MAX)
    with Gallery.open(data, search=search, max_pixels=50_000_000) as opened:
        opened.rebuild()
        assert opened.local.index.approximate
        yield opened


def answers(gallery: Gallery, photos: Path) -> list[Identification]:
    return [
        msgspec.structs.replace(
            gallery.pipeline.identify(path.read_bytes(), name=path.name), timings_ms={}
        )
        for path in sorted(photos.rglob("*.jpg"))
    ]


def test_an_index_filled_on_the_cluster_is_the_one_built_here(
    cluster: Cluster, gallery: Gallery
) -> None:
    built_here = gallery.local.index.to_bytes()

    with connected(cluster.address) as cpus:
        gallery.rebuild(fill=fill_on_cluster(cpus))

    assert cpus == 2
    assert gallery.local.index.to_bytes() == built_here


def test_a_sharded_index_answers_as_the_whole_index(
    cluster: Cluster, gallery: Gallery, photos: Path
) -> None:
    whole = answers(gallery, photos)
    descriptors = gallery.local.descriptors
    labels = gallery.store.image_labels()
    rows = [
        (row.image_id, labels[row.image_id], row.features)
        for row in gallery.store.iter_features(gallery.extractor.name, gallery.extractor.version)
        if isinstance(row.features, LocalFeatures)
    ]

    with connected(cluster.address):
        sharded = ShardedIndex(
            gallery.local.index,
            [image_id for image_id, _, _ in rows],
            [features.descriptors for _, _, features in rows],
            shards=2,
        )
        positions = [(image_id, label, *positions_of(f.keypoints)) for image_id, label, f in rows]
        gallery.local.resume(sharded, positions, indexed=labels)  # type: ignore[arg-type]
        assert sharded.size == descriptors
        split = answers(gallery, photos)

    assert split == whole
    # Every photo is enrolled, so its own individual comes first: answers worth comparing.
    assert all(a.candidates[0].individual_id == a.image.rsplit("_", 1)[0] for a in whole)
