"""The service's refusals and the one handler that turns any exception into JSON.

Domain code (embeddings, indexer) raises its own typed errors and never sees an HTTP
status; `error_status` is the one place statuses are chosen.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from embeddings.photo import ImageError
from indexer.store import Conflict, InvalidInput, NotFound, StoreError
from service.archive import ArchiveError

__all__ = [
    "BadRequest",
    "ErrorBody",
    "PayloadTooLarge",
    "ServiceError",
    "Unauthorized",
    "Unavailable",
    "UnknownReference",
    "error_status",
    "errors",
    "handle_error",
]

_log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A request the service refuses; subclasses set the HTTP status and error code."""

    status_code: int = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal_error"


class BadRequest(ServiceError):
    """A malformed request: a missing or empty field, a value out of range."""

    status_code = HTTPStatus.BAD_REQUEST
    code = "bad_request"


class Unauthorized(ServiceError):
    """A missing or wrong API key where one is required."""

    status_code = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"


class UnknownReference(ServiceError):
    """The body names an individual that does not exist (the path's one does)."""

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "unknown_individual"


class PayloadTooLarge(ServiceError):
    """An upload above the configured size limits."""

    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


class Unavailable(ServiceError):
    """The catalogue is not open yet (its index is being rebuilt); try again later."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "unavailable"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after)}


# Litestar's own refusals get the same codes as ours (HTTP's phrase for 413 is the
# older "Request Entity Too Large").
_HTTP_CODES = {HTTPStatus.REQUEST_ENTITY_TOO_LARGE: PayloadTooLarge.code}
_ARCHIVE_STATUS = {
    "too_many_entries": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    "too_large": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
}


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body of every 4xx and 5xx answer."""

    status_code: int
    error: str
    """Machine-readable code, e.g. "bad_request", "payload_too_large", "corrupted_image"."""
    detail: str
    """What went wrong, for a person."""


_DESCRIPTIONS = {
    400: "Malformed request: a missing or empty field, a value out of range",
    401: "A write (or, with protect_reads, any request) without the right API key",
    404: "No such individual or image",
    409: "Conflicts with the catalogue: an id already taken, or a photo already stored"
    " under another individual (the detail names it)",
    413: "Upload above the size limits",
    422: "A photo that cannot be used (corrupted_image, unsupported_format, too_large,"
    " low_confidence), a batch that is not a ZIP, or a body naming an individual that"
    " does not exist (unknown_individual); the code says which",
    429: "Too many requests from this address (see the RateLimit-* headers)",
    503: "The catalogue is still opening (its index is being rebuilt); see Retry-After",
}
# What any route that needs the catalogue may answer, whatever it does.
_EVERY_ROUTE = (400, 401, 429, 503)


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries of the error answers a route gives: those every route may give,
    and `codes`; each with the `ErrorBody` schema the handler really sends."""
    return {
        code: ResponseSpec(ErrorBody, description=_DESCRIPTIONS[code])
        for code in sorted({*_EVERY_ROUTE, *codes})
    }


def error_status(exc: Exception) -> tuple[int, str, str]:
    """(status, code, detail) for any exception."""
    if isinstance(exc, ServiceError):
        return int(exc.status_code), exc.code, str(exc)
    if isinstance(exc, ImageError):
        # Enrolment needs a usable photo; identification answers 200 "rejected" instead.
        return HTTPStatus.UNPROCESSABLE_ENTITY, exc.reason, exc.message
    if isinstance(exc, ArchiveError):
        status = _ARCHIVE_STATUS.get(exc.reason, HTTPStatus.UNPROCESSABLE_ENTITY)
        return status, exc.reason, str(exc)
    if isinstance(exc, NotFound):
        return HTTPStatus.NOT_FOUND, "not_found", str(exc)
    if isinstance(exc, Conflict):
        return HTTPStatus.CONFLICT, "conflict", str(exc)
    if isinstance(exc, ValidationException):
        problems = "; ".join(
            f"{item.get('key', '?')}: {item.get('message', '')}"
            for item in (exc.extra if isinstance(exc.extra, list) else [])
            if isinstance(item, dict)
        )
        detail = f"{exc.detail}: {problems}" if problems else str(exc.detail)
        return exc.status_code, "bad_request", detail
    if isinstance(exc, HTTPException):
        status = HTTPStatus(exc.status_code)
        code = _HTTP_CODES.get(status, status.phrase.lower().replace(" ", "_"))
        return status, code, str(exc.detail)
    if isinstance(exc, UnicodeDecodeError):
        # A multipart text field that is not UTF-8: the client's encoding, not ours.
        return HTTPStatus.BAD_REQUEST, "bad_request", f"a form field is not UTF-8 text: {exc}"
    if isinstance(exc, InvalidInput):
        return HTTPStatus.BAD_REQUEST, "bad_request", str(exc)
    if isinstance(exc, StoreError):
        _log.error("database error: %s", exc)
        return HTTPStatus.INTERNAL_SERVER_ERROR, "database_error", "the database failed"
    _log.exception("unhandled error", exc_info=exc)
    return HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal server error"


def handle_error(request: Request, exc: Exception) -> Response[ErrorBody]:
    """The app's only exception handler: every error becomes an `ErrorBody`."""
    status, code, detail = error_status(exc)
    headers = getattr(exc, "headers", None) or {}
    return Response(
        ErrorBody(status_code=int(status), error=code, detail=detail),
        status_code=int(status),
        headers=headers,
    )
