"""The models command: build the default gate's ONNX model into the data folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from service.cli._exits import EXIT_OK, CommandError
from service.config import Settings

__all__ = ["install"]


def install(args: argparse.Namespace, settings: Settings) -> int:
    """Build EfficientNet-Lite0 from the installed package's weights into
    `<data>/models/lite0/` (kept when an intact build of the same weights is there), so
    that the service and the CLI run it as their cetacean gate."""
    from embeddings.lite0 import install_lite0, lite0_folder
    from embeddings.model_files import ModelFileError

    folder = lite0_folder(Path(settings.data_dir))
    try:
        card = install_lite0(folder)
    except ModelFileError as exc:
        raise CommandError(str(exc)) from exc
    except OSError as exc:
        raise CommandError(f"cannot write {folder}: {exc.strerror or exc}") from exc
    print(
        f"{card.name}-{card.version} in {folder}"
        f" (gate threshold {card.params.get('threshold')}, from {card.source})"
    )
    return EXIT_OK
