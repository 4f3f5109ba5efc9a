"""Prometheus text exposition: counts, cumulative buckets, escaping, threads, format."""

from __future__ import annotations

import math
import re
import sys
import threading
from collections.abc import Iterator

import pytest

from service.metrics import CONTENT_TYPE, DURATION_BUCKETS, Metrics

Sample = tuple[str, dict[str, str], float]

_SAMPLE = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse(text: str) -> tuple[dict[str, str], dict[str, str], list[Sample]]:
    """A strict reader of the 0.0.4 text format, enough for what `Metrics` writes.

    Returns:
        (family -> HELP text, family -> TYPE, samples in order).
    """
    assert text.endswith("\n")
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    samples: list[Sample] = []
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, help_text = line[len("# HELP ") :].partition(" ")
            assert name not in helps, f"second HELP for {name}"
            helps[name] = help_text
            continue
        if line.startswith("# TYPE "):
            name, kind = line[len("# TYPE ") :].split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in types, f"second TYPE for {name}"
            types[name] = kind
            continue
        match = _SAMPLE.fullmatch(line)
        assert match is not None, f"not a sample line: {line!r}"
        labels: dict[str, str] = {}
        rest = match["labels"] or ""
        while rest:
            label = _LABEL.match(rest)
            assert label is not None, f"bad labels in {line!r}"
            value = re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m[0]], label[2])
            labels[label[1]] = value
            rest = rest[label.end() :]
        family = re.sub(r"_(bucket|sum|count)$", "", match["name"])
        family = family if family in types else match["name"]
        assert family in types, f"sample before its TYPE line: {line!r}"
        samples.append((match["name"], labels, float(match["value"])))
    return helps, types, samples


def values(samples: list[Sample], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(labels.items())): v for n, labels, v in samples if n == name}


def test_content_type_is_the_0_0_4_text_format() -> None:
    assert CONTENT_TYPE == "text/plain; version=0.0.4"  # Litestar adds the charset once


def test_empty_metrics_still_declare_every_family() -> None:
    helps, types, samples = parse(Metrics().render({}))

    assert types == {
        "whaleid_requests_total": "counter",
        "whaleid_request_duration_seconds": "histogram",
        "whaleid_rejections_total": "counter",
    }
    assert set(helps) == set(types)
    assert samples == []


def test_requests_are_counted_per_route_method_and_status() -> None:
    metrics = Metrics()
    for status in (200, 200, 422):
        metrics.observe_request("/v1/identify", "POST", status, 0.2)
    metrics.observe_request("/health", "GET", 200, 0.001)

    _, _, samples = parse(metrics.render({}))

    assert values(samples, "whaleid_requests_total") == {
        (("method", "POST"), ("route", "/v1/identify"), ("status", "200")): 2,
        (("method", "POST"), ("route", "/v1/identify"), ("status", "422")): 1,
        (("method", "GET"), ("route", "/health"), ("status", "200")): 1,
    }


def test_histogram_buckets_are_cumulative_and_bounds_inclusive() -> None:
    metrics = Metrics()
    durations = [0.0, 0.005, 0.0051, 0.3, 1.0, 7.0, 11.0, 400.0]
    for seconds in durations:
        metrics.observe_request("/v1/identify", "POST", 200, seconds)

    _, _, samples = parse(metrics.render({}))

    buckets = [
        (labels["le"], v)
        for n, labels, v in samples
        if n == "whaleid_request_duration_seconds_bucket"
    ]
    assert [float(le) for le, _ in buckets] == [*DURATION_BUCKETS, math.inf]
    assert buckets[-1][0] == "+Inf"
    expected = [sum(1 for d in durations if d <= bound) for bound in DURATION_BUCKETS]
    assert [v for _, v in buckets] == [*expected, len(durations)]
    # 0.005 sits in the 0.005 bucket, 0.0051 only from 0.01 on.
    assert [v for _, v in buckets[:2]] == [2, 3]
    key = (("method", "POST"), ("route", "/v1/identify"))
    assert values(samples, "whaleid_request_duration_seconds_count") == {key: 8}
    assert values(samples, "whaleid_request_duration_seconds_sum")[key] == pytest.approx(
        sum(durations)
    )


def test_histogram_buckets_list_the_bounds_in_order() -> None:
    assert DURATION_BUCKETS == (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@pytest.mark.parametrize("seconds", [-0.001, math.nan])
def test_negative_or_nan_duration_is_refused(seconds: float) -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="seconds"):
        metrics.observe_request("/health", "GET", 200, seconds)

    assert parse(metrics.render({}))[2] == []


def test_rejections_are_counted_by_reason() -> None:
    metrics = Metrics()
    for reason in ("corrupted_image", "too_large", "corrupted_image"):
        metrics.count_rejection(reason)

    _, _, samples = parse(metrics.render({}))

    assert values(samples, "whaleid_rejections_total") == {
        (("reason", "corrupted_image"),): 2,
        (("reason", "too_large"),): 1,
    }


def test_gauges_are_rendered_with_their_help() -> None:
    text = Metrics().render(
        {
            "whaleid_gallery_individuals": ("Individuals in the gallery.", 412),
            "whaleid_index_age_seconds": ('Age of the "index".\nRebuilt at start.', 2.5),
        }
    )

    helps, types, samples = parse(text)

    assert types["whaleid_gallery_individuals"] == "gauge"
    assert helps["whaleid_gallery_individuals"] == "Individuals in the gallery."
    assert helps["whaleid_index_age_seconds"] == 'Age of the "index".\\nRebuilt at start.'
    assert ("whaleid_gallery_individuals", {}, 412.0) in samples
    assert ("whaleid_index_age_seconds", {}, 2.5) in samples
    assert "whaleid_gallery_individuals 412\n" in text


@pytest.mark.parametrize(
    "name", ["", "9lives", "whaleid gallery", "whaleid-gallery", "whaleid_requests_total"]
)
def test_invalid_or_reserved_gauge_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="gauge name"):
        Metrics().render({name: ("help", 1.0)})


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    route = 'C:\\photos\\"new"\nline'
    metrics.observe_request(route, "GET", 404, 0.01)
    metrics.count_rejection('a"b\\c\nd')

    text = metrics.render({})
    _, _, samples = parse(text)

    assert 'route="C:\\\\photos\\\\\\"new\\"\\nline"' in text
    assert {labels.get("route") for n, labels, _ in samples if "request" in n} == {route}
    assert values(samples, "whaleid_rejections_total") == {(("reason", 'a"b\\c\nd'),): 1}


def test_render_is_deterministic_and_independent_of_insertion_order() -> None:
    first, second = Metrics(), Metrics()
    calls = [("/b", "GET", 200, 0.1), ("/a", "POST", 500, 3.0), ("/a", "GET", 200, 0.02)]
    for call in calls:
        first.observe_request(*call)
    for call in reversed(calls):
        second.observe_request(*call)

    assert first.render({}) == second.render({})


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Switch threads as often as possible, so an unguarded read-modify-write loses updates."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_concurrent_observations_lose_nothing() -> None:
    metrics = Metrics()
    threads, per_thread = 8, 2_000
    start = threading.Barrier(threads)

    def work(i: int) -> None:
        start.wait()
        for j in range(per_thread):
            metrics.observe_request("/v1/identify", "POST", 200 if j % 2 else 422, 0.01 * i)
            metrics.count_rejection("too_large")

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    _, _, samples = parse(metrics.render({}))
    total = threads * per_thread
    assert sum(values(samples, "whaleid_requests_total").values()) == total
    assert values(samples, "whaleid_rejections_total") == {(("reason", "too_large"),): total}
    key = (("method", "POST"), ("route", "/v1/identify"))
    assert values(samples, "whaleid_request_duration_seconds_count") == {key: total}
    plus_inf = [
        v
        for n, labels, v in samples
        if n == "whaleid_request_duration_seconds_bucket" and labels["le"] == "+Inf"
    ]
    assert plus_inf == [total]
    expected_sum = per_thread * sum(0.01 * i for i in range(threads))
    assert values(samples, "whaleid_request_duration_seconds_sum")[key] == pytest.approx(
        expected_sum
    )
