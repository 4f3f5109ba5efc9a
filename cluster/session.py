"""Connecting to a Ray cluster, with errors a user can act on."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["ClusterError", "connected", "import_ray"]


class ClusterError(Exception):
    """Ray is missing, or the cluster cannot be reached."""


def import_ray() -> ModuleType:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ClusterError(
            "Ray is not installed: pip install 'whaleid[cluster]' (on every machine of the cluster)"
        ) from exc
    return ray


@contextmanager
def connected(address: str) -> Iterator[int]:
    """Connect to the running cluster at `address` (HOST:PORT of its head, as `ray start
    --head` printed it) for the duration of the block, which is given its CPU count."""
    ray = import_ray()
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc}") from exc
    try:
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # the command reports
        context = ray.data.DataContext.get_current()
        # Results come back in input order, so the single writer stores photos in the
        # same order, with the same ids, as a run on one process.
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False  # the command draws its own
        context.print_on_execution_start = False
        yield max(1, int(ray.cluster_resources().get("CPU", 1)))
    finally:
        ray.shutdown()
