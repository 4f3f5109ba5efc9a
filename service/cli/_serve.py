"""The serve command: the HTTP service, until interrupted."""

from __future__ import annotations

import argparse

import msgspec

from service.cli._exits import EXIT_OK
from service.config import Settings

__all__ = ["serve"]


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the HTTP service until interrupted."""
    import uvicorn

    from embeddings.registry import load_models
    from service.app import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = msgspec.structs.replace(settings, **overrides)
    models = load_models(settings.models_dir, settings.model_threads)
    uvicorn.run(
        create_app(settings, models),
        host=settings.host,
        port=settings.port,
        access_log=settings.access_log,
    )
    return EXIT_OK
