"""Access control: the API key guard.

Writes (any method but GET/HEAD/OPTIONS) need the key when `Settings.api_key` is set;
reads need it too with `Settings.protect_reads`. Handlers marked `opt={"public": True}`
(probes, metrics) are always open. Identification is a POST but changes nothing, so
its handlers are marked `opt={"read": True}`.
"""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.errors import Unauthorized

__all__ = ["require_api_key"]

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def require_api_key(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Litestar guard; raises `Unauthorized` when the request lacks a needed key."""
    settings = connection.app.state.settings
    if settings.api_key is None or handler.opt.get("public"):
        return
    is_read = connection.scope.get("method", "GET") in _READ_METHODS or handler.opt.get("read")
    if is_read and not settings.protect_reads:
        return
    supplied = connection.headers.get("x-api-key")
    if supplied is None:
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        supplied = token.strip() if scheme.lower() == "bearer" else None
    # Constant-time comparison: response timing must not reveal the key byte by byte.
    if supplied is None or not hmac.compare_digest(supplied.encode(), settings.api_key.encode()):
        raise Unauthorized(
            "this request needs the API key in the X-API-Key header (or Authorization: Bearer)"
        )
