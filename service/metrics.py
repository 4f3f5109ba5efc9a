"""Prometheus metrics of the HTTP service, written by hand in text format 0.0.4.

`Metrics` holds the request counter, the request-duration histogram and the rejection
counter; the app's lifespan creates one instance and injects it, so there is no
module-level state. Gallery sizes and other values read at scrape time are passed to
`Metrics.render` as gauges.

Format: https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from collections.abc import Mapping

__all__ = ["CONTENT_TYPE", "DURATION_BUCKETS", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4"
"""Prometheus' text format (Litestar adds `; charset=utf-8` to every text type)."""
"""The Content-Type of `Metrics.render`'s text."""

DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""Upper bounds (seconds) of the request-duration histogram; "+Inf" is added."""

_REQUESTS = "whaleid_requests_total"
_DURATION = "whaleid_request_duration_seconds"
_REJECTIONS = "whaleid_rejections_total"
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class _Histogram:
    """One series: per-bucket counts (not cumulative: cumulated when rendered)."""

    def __init__(self) -> None:
        # One more than the bounds: the last slot is above every bound (+Inf only).
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.sum = 0.0


class Metrics:
    """Counters and histograms of one service process. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._durations: dict[tuple[str, str], _Histogram] = {}
        self._rejections: dict[str, int] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration.

        Args:
            route: the route template (e.g. "/v1/identify"), not the raw path, so that
                the number of series stays bounded.
            method: HTTP method, e.g. "POST".
            status: HTTP status code sent.
            seconds: time from receiving the request to answering it (>= 0).

        Raises:
            ValueError: `seconds` is negative or NaN.
        """
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        # Bounds are inclusive ("le"): a duration equal to a bound falls in its bucket.
        slot = bisect.bisect_left(DURATION_BUCKETS, seconds)
        with self._lock:
            key = (route, method, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            histogram = self._durations.get((route, method))
            if histogram is None:
                histogram = self._durations[(route, method)] = _Histogram()
            histogram.counts[slot] += 1
            histogram.sum += seconds

    def count_rejection(self, reason: str) -> None:
        """Count one photo rejected, e.g. reason "corrupted_image"."""
        with self._lock:
            self._rejections[reason] = self._rejections.get(reason, 0) + 1

    def render(self, gauges: Mapping[str, tuple[str, float]]) -> str:
        """The whole exposition text, to serve with `CONTENT_TYPE`.

        Args:
            gauges: gauge name -> (help text, value), read at scrape time, e.g.
                {"whaleid_gallery_individuals": ("Individuals in the gallery.", 412)}.

        Returns:
            The text, one sample per line, ending with a newline. Series are sorted by
            their labels, so two renders of the same counts are identical.

        Raises:
            ValueError: a gauge name is not a valid metric name or is one of the
                metrics rendered here.
        """
        for name in gauges:
            if not _METRIC_NAME.fullmatch(name) or name in (_REQUESTS, _DURATION, _REJECTIONS):
                raise ValueError(f"invalid or reserved gauge name {name!r}")
        with self._lock:
            requests = sorted(self._requests.items())
            durations = sorted((key, list(h.counts), h.sum) for key, h in self._durations.items())
            rejections = sorted(self._rejections.items())

        lines = _header(_REQUESTS, "counter", "HTTP requests answered.")
        for (route, method, status), count in requests:
            labels = {"route": route, "method": method, "status": status}
            lines.append(_sample(_REQUESTS, labels, count))

        lines += _header(_DURATION, "histogram", "Time to answer an HTTP request, in seconds.")
        for (route, method), counts, total in durations:
            labels = {"route": route, "method": method}
            cumulative = 0
            for bound, count in zip((*DURATION_BUCKETS, math.inf), counts, strict=True):
                cumulative += count
                lines.append(
                    _sample(f"{_DURATION}_bucket", {**labels, "le": _number(bound)}, cumulative)
                )
            lines.append(_sample(f"{_DURATION}_sum", labels, total))
            lines.append(_sample(f"{_DURATION}_count", labels, cumulative))

        lines += _header(_REJECTIONS, "counter", "Photos rejected, by reason.")
        for reason, count in rejections:
            lines.append(_sample(_REJECTIONS, {"reason": reason}, count))

        for name, (help_text, value) in gauges.items():
            lines += _header(name, "gauge", help_text)
            lines.append(_sample(name, {}, value))
        return "\n".join(lines) + "\n"


def _header(name: str, kind: str, help_text: str) -> list[str]:
    # HELP text escapes only backslash and newline; quotes are literal there.
    escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return [f"# HELP {name} {escaped}", f"# TYPE {name} {kind}"]


def _sample(name: str, labels: Mapping[str, str], value: float) -> str:
    if not labels:
        return f"{name} {_number(value)}"
    inner = ",".join(f'{key}="{_escape_label(val)}"' for key, val in labels.items())
    return f"{name}{{{inner}}} {_number(value)}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(int(value))  # int() also turns a bool into 0 or 1
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
