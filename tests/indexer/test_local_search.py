"""The local search under concurrent use (searches side by side, changes between them),
and how a query is described for it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from embeddings.images import load_photo
from embeddings.keypoints import RootSiftExtractor
from embeddings.protocol import LocalFeatures
from indexer.local_search import LocalSearch, RankedImage, SearchParameters, query_features
from tests.indexer.test_descriptor_index import clustered
from tests.synthetic import encode, fluke

PARAMS = SearchParameters(exact_search_max=1_000)
"""Small enough that 20 photos of 200 descriptors get an IVF index."""


def _photos(count: int) -> list[LocalFeatures]:
    rng = np.random.default_rng(7)
    return [
        LocalFeatures(
            keypoints=np.hstack(
                [rng.uniform(0, 600, (len(d), 2)), np.ones((len(d), 1)), np.zeros((len(d), 1))]
            ).astype(np.float32),
            descriptors=d,
        )
        for d in clustered(rng, count, 200)
    ]


def _noisy(features: LocalFeatures, seed: int) -> LocalFeatures:
    noise = np.random.default_rng(seed).normal(0, 6, features.descriptors.shape)
    descriptors = np.clip(features.descriptors + noise, 0, 255).astype(np.uint8)
    return LocalFeatures(keypoints=features.keypoints, descriptors=descriptors)


def _answers(ranked: list[RankedImage]) -> list[tuple[int, float, int]]:
    return [(r.image_id, round(r.score, 4), r.inliers) for r in ranked]


def test_searches_beside_each_other_and_beside_changes_answer_as_one_at_a_time() -> None:
    photos = _photos(40)
    queries = [_noisy(photos[i], seed=i) for i in range(10)]
    search = LocalSearch(PARAMS, upright=True)
    search.build((i, f"ind-{i}", photos[i]) for i in range(20))
    assert search.index.approximate
    alone = [_answers(search.rank(q)) for q in queries]

    with ThreadPoolExecutor(4) as pool:
        side_by_side = list(pool.map(lambda q: _answers(search.rank(q)), queries))
        # Photos added while searches run: each search sees the index before or after an
        # addition, never half of one.
        during = [pool.submit(search.rank, q) for q in queries * 3]
        for i in range(20, 40):
            pool.submit(search.add, i, f"ind-{i}", photos[i])
        assert all(len(f.result()) > 0 for f in during)
    assert side_by_side == alone

    one_by_one = LocalSearch(PARAMS, upright=True)
    one_by_one.build((i, f"ind-{i}", photos[i]) for i in range(20))
    for i in range(20, 40):
        one_by_one.add(i, f"ind-{i}", photos[i])
    assert search.labels() == one_by_one.labels()
    assert [_answers(search.rank(q)) for q in queries] == [
        _answers(one_by_one.rank(q)) for q in queries
    ]


def test_a_query_crop_is_searched_by_its_strongest_keypoints_and_a_frame_by_all() -> None:
    extractor = RootSiftExtractor()
    params = SearchParameters(query_keypoints=40)
    levels = 1 + len(extractor.config.coarse_levels)
    crop = extractor.detect(load_photo(encode(fluke("crop"))))  # 480 px: enlarged
    assert crop.enlarged
    capped = query_features(crop, params)
    assert 0 < len(capped.descriptors) <= levels * params.query_keypoints
    assert len(capped.descriptors) < len(crop.describe().descriptors)
    # A frame is shrunk to the working size: its animal's keypoints may be the fainter.
    frame = extractor.detect(load_photo(encode(fluke("frame", width=1600, height=1000))))
    assert not frame.enlarged
    every = frame.describe()
    assert len(every.descriptors) > levels * params.query_keypoints
    assert np.array_equal(query_features(frame, params).descriptors, every.descriptors)
