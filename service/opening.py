"""Opening a data folder's gallery as the settings and the installed models say: one
place for the service and the CLI."""

from __future__ import annotations

from pathlib import Path

from embeddings.registry import LoadedModels
from indexer.gallery import Gallery
from indexer.results import Progress
from service.config import Settings

__all__ = ["open_gallery"]


def open_gallery(
    settings: Settings, models: LoadedModels, progress: Progress | None = None
) -> Gallery:
    """The gallery of `settings.data_dir` with the extractor settings, engine settings
    and models given; progress(done, total) follows a rebuild if one is needed."""
    return Gallery.open(
        Path(settings.data_dir),
        features=settings.features.keypoints(),
        engine=settings.engine,
        embedder=models.embedder,
        gate=models.gate,
        max_pixels=settings.max_image_pixels,
        progress=progress,
    )
