"""The system's Chromium, for the scripts that drive the web interface (Playwright with
Debian's `chromium`; no browser is ever downloaded). Imported by the scripts beside it."""

from __future__ import annotations

import shutil
from typing import Any

__all__ = ["VIEWPORT", "launch_chromium", "missing_browser"]

VIEWPORT = {"width": 1280, "height": 800}
# No sandbox: the scripts may run as root. Nothing is fetched but from the local server.
_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _executable() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing_browser() -> str | None:
    """Why the interface cannot be driven here, or None when it can."""
    if _executable() is None:
        return "no Chromium found (install Debian's chromium package)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    return None


def launch_chromium(playwright: Any) -> Any:
    """A headless Chromium browser from a started `sync_playwright()`."""
    return playwright.chromium.launch(executable_path=_executable(), args=_ARGS)
