"""Opening the data folder: the whole gallery, or the database alone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.store import DATABASE_FILE
from service.cli._exits import CommandError
from service.cli._output import progress_bar, stage_bars
from service.config import Settings

if TYPE_CHECKING:  # only for annotations: importing the engine loads FAISS
    from embeddings.registry import LoadedModels
    from indexer.gallery import Gallery
    from indexer.store import Store

__all__ = ["open_gallery", "open_store", "opened_gallery", "require_catalogue"]


def open_gallery(
    settings: Settings,
    models: LoadedModels | None = None,
    *,
    create: bool = False,
    load_index: bool = True,
) -> Gallery:
    """Open the gallery with the deep embedder of `models` (loaded from the settings when
    not given); a missing or stale index is rebuilt first, with a progress bar.

    Args:
        create: start a new catalogue if the folder has none (enrolment); otherwise a
            folder without one is an error, so a mistyped `--data` never answers "new
            individual" from an empty catalogue.
        load_index: see `Gallery.open`.
    """
    from service.opening import load_configured_models
    from service.opening import open_gallery as open_configured  # loads FAISS: only
    # the commands that search pay for it

    data_dir = Path(settings.data_dir)
    if not create:
        require_catalogue(settings)
    if models is None:
        models = load_configured_models(settings)
    try:
        with (
            stage_bars("image") as rebuilding,
            progress_bar("calibrate", "query") as calibrating,
        ):
            return open_configured(settings, models, rebuilding, calibrating, load_index=load_index)
    except OSError as exc:  # e.g. the data folder is a file, or not writable
        raise CommandError(
            f"cannot open the data folder {data_dir}: {exc.strerror or exc}"
        ) from exc


def open_store(settings: Settings) -> Store:
    """The database alone, for commands that only read or list (no index is loaded)."""
    from indexer.store import Store

    require_catalogue(settings)
    return Store.open(Path(settings.data_dir) / DATABASE_FILE)


def require_catalogue(settings: Settings) -> None:
    """Refuse a data folder that holds no catalogue, naming it and how it was chosen."""
    if not (Path(settings.data_dir) / DATABASE_FILE).is_file():
        raise CommandError(
            f"no catalogue in {settings.data_dir}: enrol photos first (whaleid enrol), or"
            " give the right folder with --data or WHALEID_DATA"
        )


@contextmanager
def opened_gallery(
    settings: Settings,
    models: LoadedModels | None = None,
    *,
    create: bool = False,
    load_index: bool = True,
) -> Iterator[Gallery]:
    gallery = open_gallery(settings, models, create=create, load_index=load_index)
    try:
        yield gallery
    finally:
        gallery.close()
