"""When a call is repeated: which failures, and how long to wait before each retry."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["CONNECTION_ERRORS", "MAX_RETRY_DELAY", "RETRY_STATUSES", "wait"]

MAX_RETRY_DELAY = 30.0
"""Longest wait, in seconds, before one retry, whatever the backoff or the service asks."""
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# No answer came back: the request may never have reached the service, or the service
# died while handling it. Bad URLs and the like are not in this list: retrying cannot help.
CONNECTION_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def wait(attempt: int, backoff: float, headers: httpx.Headers | None) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry)."""
    asked = _asked_delay(headers) if headers is not None else None
    if asked is not None:
        return min(max(asked, 0.0), MAX_RETRY_DELAY)
    # Jitter spreads out clients that failed together, so they do not retry together.
    delay = backoff * 2**attempt
    return min(random.uniform(delay / 2, delay), MAX_RETRY_DELAY)


def _asked_delay(headers: httpx.Headers) -> float | None:
    """The delay a 429/503 asks for: `Retry-After` (seconds or an HTTP date), else
    `RateLimit-Reset` (seconds, as the service's rate limit sends)."""
    for key in ("retry-after", "ratelimit-reset"):
        value = headers.get(key, "").strip()
        if not value:
            continue
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            continue
    return None
