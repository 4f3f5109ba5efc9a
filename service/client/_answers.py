"""Decoding the service's answers: successes into its schema Structs, 4xx/5xx into
`ApiError`, and the NDJSON lines of a batch."""

from __future__ import annotations

from typing import TypeVar

import httpx
import msgspec

from service.client._errors import ApiError
from service.errors import ErrorBody
from service.schemas import IdentifyResponse

__all__ = ["api_error", "batch_line", "decode"]

_T = TypeVar("_T")


def decode(response: httpx.Response, kind: type[_T]) -> _T:
    try:
        return msgspec.json.decode(response.content, type=kind)
    except msgspec.DecodeError as exc:
        raise ApiError(
            response.status_code, "invalid_response", f"unexpected answer: {exc}"
        ) from exc


def api_error(status_code: int, content: bytes, reason: str) -> ApiError:
    """The error of a 4xx/5xx answer, from the service's `ErrorBody` when it sent one."""
    try:
        body = msgspec.json.decode(content, type=ErrorBody)
    except msgspec.DecodeError:
        # Not the service's own body: a proxy's page, or an answer from something else.
        text = content.decode("utf-8", "replace").strip()
        return ApiError(status_code, reason.lower().replace(" ", "_") or "error", text or reason)
    return ApiError(status_code, body.error, body.detail)


def batch_line(line: str) -> IdentifyResponse:
    """One NDJSON line of a batch answer; the error line that may end it is raised."""
    try:
        return msgspec.json.decode(line, type=IdentifyResponse)
    except msgspec.DecodeError:
        pass
    try:
        body = msgspec.json.decode(line, type=ErrorBody)
    except msgspec.DecodeError:
        raise ApiError(200, "invalid_response", f"unexpected batch line: {line!r}") from None
    raise ApiError(body.status_code, body.error, body.detail)
