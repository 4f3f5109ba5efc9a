"""Opening a data folder's gallery as the settings and the installed models say: one
place for the service and the CLI."""

from __future__ import annotations

import logging
from pathlib import Path

from embeddings.registry import LoadedModels, load_models
from indexer.gallery import Gallery
from indexer.results import Progress, Stages
from service.config import Settings

__all__ = ["load_configured_models", "open_gallery", "open_served_gallery"]

_log = logging.getLogger(__name__)


def load_configured_models(settings: Settings, models_dir: Path | None = None) -> LoadedModels:
    """The models the settings ask for: those of `models_dir` (default: the settings')
    and the Lite0 network built in the data folder.

    Raises:
        ModelFileError: an installed model's file is missing, truncated or altered.
    """
    return load_models(
        models_dir or settings.models_dir,
        settings.model_threads,
        data_dir=settings.data_dir,
        locate=settings.locator,
        lite0_embedding=settings.lite0_embedding,
        features=settings.features.keypoints(),
    )


def open_gallery(
    settings: Settings,
    models: LoadedModels,
    rebuilding: Stages | None = None,
    calibrating: Progress | None = None,
    *,
    load_index: bool = True,
) -> Gallery:
    """The gallery of `settings.data_dir` with the extractor settings, engine settings
    and models given; `rebuilding` follows the stages of a rebuild if one is needed, and
    calibrating(done, total) a calibration fit (`load_index`: see `Gallery.open`)."""
    return Gallery.open(
        Path(settings.data_dir),
        features=settings.features.keypoints(),
        engine=settings.engine,
        embedder=models.embedder,
        gate=models.gate,
        locator=models.locator,
        max_pixels=settings.max_image_pixels,
        rebuilding=rebuilding,
        calibrating=calibrating,
        load_index=load_index,
    )


def open_served_gallery(
    settings: Settings,
    models: LoadedModels,
    rebuilding: Stages | None = None,
    calibrating: Progress | None = None,
    describing: Progress | None = None,
) -> Gallery:
    """`open_gallery`, then the stored photos that lack the features searched now
    (`Gallery.lacking`) described again from their files and the searches rebuilt: a
    service started on a catalogue of an earlier version, or with other `[features]`,
    searches every photo it holds instead of answering "new individual" for those it
    would skip.

    Args:
        rebuilding: the stages of a rebuild (`Follower.rebuild`).
        calibrating: progress(done, total) of a calibration fit.
        describing: progress(done, total) of describing the photos again.
    """
    gallery = open_gallery(settings, models, rebuilding, calibrating)
    try:
        if gallery.lacking():
            done = gallery.catalogue.reextract(describing)
            if done.extracted:
                gallery.rebuild(rebuilding, calibrating=calibrating)
            _log.log(
                logging.WARNING if done.unextracted else logging.INFO,
                "described %d stored photos again for these extractor settings and models;"
                " %d could not be (`whaleid index rebuild` lists them)",
                done.extracted,
                len(done.unextracted),
            )
    except BaseException:
        gallery.close()
        raise
    return gallery
