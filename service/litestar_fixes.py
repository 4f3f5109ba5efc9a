"""Work-arounds for Litestar 2 bugs, applied only to the app built in `service.app`.

- The automatic OPTIONS answer lists only the methods of the first handler registered
  on a path (litestar-org/litestar#4169, fixed in Litestar 3 only): `GET` and `DELETE`
  of /v1/images/{id} answered `Allow: GET, OPTIONS`. `fix_allow_header` sets it from the
  route, which does know every method.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

__all__ = ["fix_allow_header"]


async def fix_allow_header(message: Message, scope: Scope) -> None:
    """A `before_send` hook: the automatic OPTIONS answer's `Allow` names every method
    of the path."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    template = scope.get("path_template")
    methods = {
        method
        for route in scope["app"].routes
        if getattr(route, "path_format", None) == template
        for method in getattr(route, "methods", ())
    }
    if methods:
        MutableScopeHeaders.from_message(message)["Allow"] = ", ".join(sorted(methods))
