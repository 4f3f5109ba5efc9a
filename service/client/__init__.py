"""Typed Python clients for the whaleid HTTP API: `WhaleIdClient` (blocking) and
`AsyncWhaleIdClient` (asyncio), with the same methods.

Answers are decoded into the service's own schema Structs, so a client and the service it
talks to can never disagree about a field. Every 4xx or 5xx answer raises `ApiError` with
the service's error code; no answer at all raises `ServiceUnavailable`.

Retries: only calls that change nothing are retried (GET, DELETE, and identification,
which is a POST but only reads), on connection failures, 429 and 502/503/504, with
exponential backoff and jitter, or after the delay the service asks for in `Retry-After`
or `RateLimit-Reset` (capped at `MAX_RETRY_DELAY`). Enrolment, review, creation, merges
and edits are sent once: repeating them after a lost answer could apply them twice.

Example:
    with WhaleIdClient("http://127.0.0.1:8000", api_key="...") as client:
        client.enrol(Path("HW-0042_1.jpg"), "HW-0042", species="humpback_whale")
        answer = client.identify(Path("IMG_1234.jpg"), top_k=5)
        print(answer.decision, answer.candidates[0].individual_id)
"""

from service.client._async import AsyncWhaleIdClient
from service.client._errors import ApiError, ServiceUnavailable
from service.client._retry import MAX_RETRY_DELAY
from service.client._sync import WhaleIdClient

__all__ = [
    "MAX_RETRY_DELAY",
    "ApiError",
    "AsyncWhaleIdClient",
    "ServiceUnavailable",
    "WhaleIdClient",
]
