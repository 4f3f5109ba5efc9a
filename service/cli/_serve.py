"""The serve command: the HTTP service, until interrupted."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import msgspec

from service.cli._exits import EXIT_OK, EXIT_USAGE, fail
from service.config import Settings

__all__ = ["serve"]


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the HTTP service until interrupted. What would stop it at once (a data
    folder that is a file, an address in use) is said in one line first (exit 2)."""
    import uvicorn

    from service.app import create_app
    from service.opening import load_configured_models

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = msgspec.structs.replace(settings, **overrides)
    data_dir = Path(settings.data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        return fail(f"the data folder {data_dir} is not a folder", EXIT_USAGE)
    try:
        with socket.create_server((settings.host, settings.port)):
            pass
    except OSError as exc:
        return fail(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
            " (another whaleid serve? choose one with --port)",
            EXIT_USAGE,
        )
    models = load_configured_models(settings)
    uvicorn.run(
        create_app(settings, models),
        host=settings.host,
        port=settings.port,
        access_log=settings.access_log,
    )
    return EXIT_OK
