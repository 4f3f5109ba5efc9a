"""The leave-one-out evaluation protocol on a synthetic catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.leave_one_out import _rank_scores, evaluate
from service.photo_sources import ManifestEntry
from tests.synthetic import write_folder

INDIVIDUALS = [f"ind-{i}" for i in range(10)]


@pytest.fixture(scope="module")
def entries(tmp_path_factory: pytest.TempPathFactory) -> list[ManifestEntry]:
    root = tmp_path_factory.mktemp("catalogue")
    paths = write_folder(root, INDIVIDUALS, photos=3)
    rows = [
        ManifestEntry(path=p, individual_id=p.parent.name, species="humpback_whale") for p in paths
    ]
    # One photo of an individual seen once (never a closed-set query), one unlabelled
    # photo (ignored) and one unreadable file (reported, not fatal).
    lonely = write_folder(root, ["lonely"], photos=1)[0]
    rows.append(ManifestEntry(path=lonely, individual_id="lonely", species=None))
    rows.append(ManifestEntry(path=paths[0], individual_id="", species=None))
    broken = root / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    rows.append(ManifestEntry(path=broken, individual_id="ind-0", species=None))
    return rows


def test_rank_scores_follow_the_definitions() -> None:
    scores = _rank_scores([1, 2, 0, 5, 6])
    assert scores.n_queries == 5
    assert scores.top1 == pytest.approx(1 / 5)
    assert scores.top5 == pytest.approx(3 / 5)
    assert scores.map5 == pytest.approx((1 + 1 / 2 + 1 / 5) / 5)
    assert _rank_scores([]).n_queries == 0


def test_closed_set_finds_every_individual(entries: list[ManifestEntry]) -> None:
    seen: list[tuple[int, int]] = []
    report = evaluate(entries, progress=lambda done, total: seen.append((done, total)))
    assert report.n_queries == 3 * len(INDIVIDUALS)
    assert report.n_individuals == len(INDIVIDUALS) + 1
    assert report.top1 == 1.0 and report.map5 == 1.0
    assert report.query_ms_p50 > 0 and report.query_ms_p50 >= report.stage_ms_p50["local search"]
    assert report.peak_rss_mib > 0
    assert report.calibrated is True
    assert report.new_individual_precision is None
    assert len(report.unreadable) == 1 and "broken.jpg: corrupted_image" in report.unreadable[0]
    assert report.per_species["humpback_whale"].n_queries == 3 * len(INDIVIDUALS)
    assert seen[-1][0] == seen[-1][1]
    assert report.stages == ["decode", "local search", "decision"]
    assert report.rejected == {}
    # Every query's best candidate was right: each bin observed 1.0 at its own level.
    assert sum(b.queries for b in report.reliability) == report.n_queries
    assert all(b.observed == 1.0 and b.low <= b.predicted <= b.high for b in report.reliability)
    assert report.known_called_new == pytest.approx(0.0)


def test_open_set_holds_out_individuals(entries: list[ManifestEntry]) -> None:
    report = evaluate(entries, open_set=True, seed=3)
    held_out = round(0.2 * (len(INDIVIDUALS) + 1))
    assert report.open_set is True
    assert report.n_new_queries >= held_out
    assert report.n_queries + report.n_new_queries <= 3 * len(INDIVIDUALS) + 1
    assert report.new_individual_recall == pytest.approx(1.0)
    assert report.new_individual_precision == pytest.approx(1.0)
    assert report.known_match_rate == pytest.approx(1.0)
    default = next(p for p in report.new_individual_curve if p.threshold == 0.5)
    assert default.recall == pytest.approx(report.new_individual_recall)
    assert default.precision == pytest.approx(report.new_individual_precision)
    recalls = [p.recall for p in report.new_individual_curve]
    assert recalls == sorted(recalls)


def test_distractors_are_enrolled_never_queried_and_scenes_are_skipped(
    entries: list[ManifestEntry], tmp_path: Path
) -> None:
    others = write_folder(tmp_path, ["other-a", "other-b"], photos=2)
    distractors = [ManifestEntry(path=p, individual_id="", species="dolphin") for p in others]
    scene = ManifestEntry(path=others[0], individual_id="", species="not_cetacean:street")

    report = evaluate(entries, distractors=[*distractors, scene])

    assert report.n_distractors == len(others)
    assert report.n_queries == 3 * len(INDIVIDUALS)  # none of them was a query
    assert report.top1 == 1.0
