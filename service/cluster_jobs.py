"""What a cluster worker does to one photo: describe it for enrolment, or identify it.

Each job is built once per Ray actor from the same settings as the command that started
the run (models loaded, catalogue opened), so a worker computes exactly what the command
would on one process. Results travel pickled: they go between processes of one run,
never to storage.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import cv2
import msgspec

from cluster.batches import run_on_actors
from embeddings.images import load_photo_file
from embeddings.keypoints import RootSiftExtractor
from embeddings.photo import ImageError
from indexer.catalogue import DescribeFiles
from indexer.describer import DescribedPhoto, Describer
from indexer.local_search import SearchParameters
from service.config import Settings
from service.opening import load_configured_models, open_gallery

__all__ = ["Unreadable", "Unusable", "describe_job", "described_on_cluster", "identify_job"]


class Unusable(msgspec.Struct, frozen=True):
    """A photo that cannot be enrolled: `ImageError`'s reason and message."""

    reason: str
    message: str


class Unreadable(msgspec.Struct, frozen=True):
    """A file that could not be read, with the operating system's reason."""

    message: str


def describe_job(settings: Settings) -> Callable[[str], bytes]:
    """path -> the photo described for enrolment (`DescribedPhoto`), or `Unusable`."""
    settings = _one_thread(settings)
    models = load_configured_models(settings)
    describer = Describer(
        RootSiftExtractor(settings.features.keypoints()),
        models.embedder,
        models.locator,
        SearchParameters().min_query_features,
    )

    def describe(path: str) -> bytes:
        try:
            photo = load_photo_file(Path(path), max_pixels=settings.max_image_pixels)
            result: DescribedPhoto | Unusable = describer.described(photo)
        except ImageError as exc:
            result = Unusable(exc.reason, exc.message)
        return pickle.dumps(result)

    return describe


def described_on_cluster(settings: Settings, cpus: int) -> DescribeFiles:
    """Photo files described by `describe_job` on up to `cpus` actors of the connected
    cluster: each a `DescribedPhoto`, or the `ImageError` that refused it, in order."""

    def describe(paths: list[Path]) -> Iterator[DescribedPhoto | ImageError]:
        job = partial(describe_job, settings)
        for data in run_on_actors([str(path) for path in paths], job, cpus):
            described = pickle.loads(data)
            if isinstance(described, Unusable):
                yield ImageError(described.reason, described.message)  # type: ignore[arg-type]
            else:
                yield described

    return describe


def identify_job(settings: Settings, top_k: int | None) -> Callable[[str], bytes]:
    """path -> the pipeline's answer (`Identification`), or `Unreadable`. The worker
    opens the catalogue of `settings.data_dir`, which it must see at the same path."""
    settings = _one_thread(settings)
    gallery = open_gallery(settings, load_configured_models(settings))

    def identify(path: str) -> bytes:
        try:
            content = Path(path).read_bytes()
        except OSError as exc:
            return pickle.dumps(Unreadable(f"{path}: {exc.strerror or exc}"))
        return pickle.dumps(gallery.pipeline.identify(content, name=path, top_k=top_k))

    return identify


def _one_thread(settings: Settings) -> Settings:
    """An actor holds one CPU of the cluster: OpenCV's and the models' own thread pools
    would take the CPUs of the actors beside it (the features do not change)."""
    cv2.setNumThreads(1)
    return msgspec.structs.replace(settings, model_threads=1)
