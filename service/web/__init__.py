"""The web interface: one HTML page with its scripts and styles, served by the API's own
app at `/` (no other server, no build step, nothing fetched from elsewhere).

The page and its files are public: they load while the catalogue opens and before any
API key is given. Everything they show comes from the API, under the API's own rules.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from litestar import Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.enums import MediaType
from litestar.static_files import create_static_files_router

__all__ = ["STATIC", "web_handlers"]

STATIC = Path(__file__).parent / "static"
"""The page's files (package data)."""
_PUBLIC = {"public": True}
# The page runs only its own files: no inline script, no other origin (a photo's name or
# an individual's id can never become code).
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:;"
    " object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@get("/", include_in_schema=False, opt=_PUBLIC, sync_to_thread=False, media_type=MediaType.HTML)
def index() -> Response[str]:
    """The interface's one page; its views are chosen by the URL's fragment."""
    return Response(_page(), headers=_PAGE_HEADERS)


@cache
def _page() -> str:
    try:
        installed = version("whaleid")
    except PackageNotFoundError:  # run from a checkout that was never installed
        installed = "unknown"
    return (STATIC / "index.html").read_text(encoding="utf-8").replace("{{version}}", installed)


def web_handlers() -> list[object]:
    """The page at `/` and its files under `/ui/`; none of them in the OpenAPI document.
    Files are revalidated on each load, so an upgrade is seen at once."""
    files: Router = create_static_files_router(
        path="/ui",
        directories=[STATIC],
        name="ui",
        opt=_PUBLIC,
        include_in_schema=False,
        cache_control=CacheControlHeader(no_cache=True),
    )
    return [index, files]
