"""Opening the data folder: the whole gallery, or the database alone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.store import DATABASE_FILE
from service.cli._exits import CommandError
from service.cli._output import progress_bar
from service.config import Settings

if TYPE_CHECKING:  # only for annotations: importing the engine loads FAISS
    from embeddings.registry import LoadedModels
    from indexer.gallery import Gallery
    from indexer.store import Store

__all__ = ["open_gallery", "open_store", "opened_gallery"]


def open_gallery(settings: Settings, models: LoadedModels | None = None) -> Gallery:
    """Open the gallery with the deep embedder of `models` (loaded from the settings when
    not given); a missing or stale index is rebuilt first, with a progress bar."""
    from embeddings.registry import load_models
    from indexer.gallery import Gallery  # loads FAISS; only the commands that search pay

    data_dir = Path(settings.data_dir)
    if models is None:
        models = load_models(settings.models_dir, settings.model_threads)
    try:
        with progress_bar("index", "image") as progress:
            return Gallery.open(
                data_dir,
                features=settings.features.keypoints(),
                engine=settings.engine,
                embedder=models.embedder,
                gate=models.gate,
                max_pixels=settings.max_image_pixels,
                progress=progress,
            )
    except OSError as exc:  # e.g. the data folder is a file, or not writable
        raise CommandError(
            f"cannot open the data folder {data_dir}: {exc.strerror or exc}"
        ) from exc


def open_store(settings: Settings) -> Store:
    """The database alone, for commands that only read or list (no index is loaded)."""
    from indexer.store import Store

    path = Path(settings.data_dir) / DATABASE_FILE
    if not path.exists():
        raise CommandError(f"no catalogue in {settings.data_dir} (nothing enrolled yet)")
    return Store.open(path)


@contextmanager
def opened_gallery(settings: Settings, models: LoadedModels | None = None) -> Iterator[Gallery]:
    gallery = open_gallery(settings, models)
    try:
        yield gallery
    finally:
        gallery.close()
