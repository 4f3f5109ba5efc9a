"""One job per photo on Ray Data actors, results back in input order.

Each actor builds its job once (`make()`: loading models and opening the catalogue are
the expensive part) and then runs it on batches of items. Ray restarts an actor that
dies, with its machine or otherwise, and retries the batches it held, so a killed worker
costs time, not photos.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from cluster.session import import_ray
from embeddings.allocator import retain_freed_memory

__all__ = ["BATCH", "Job", "run_on_actors"]

Job = Callable[[str], bytes]
"""item (a photo's path) -> its result, serialised by the job."""

BATCH = 4
"""Items per Ray task: few enough that a dead worker's retried batch is cheap, enough
that scheduling (a few ms) stays small beside the work (hundreds of ms a photo)."""


def _actor_class(make: Callable[[], Job]) -> type:
    """A Ray Data actor class that builds its job with `make`. `make` travels inside the
    class, not as a constructor argument: Ray keeps those in the object store, from
    which a restarted actor could not get them back if they were lost."""

    class Actor:
        def __init__(self) -> None:
            retain_freed_memory()  # a worker process describes photo after photo
            self.job = make()

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            results = np.empty(len(batch["item"]), dtype=object)
            results[:] = [self.job(str(item)) for item in batch["item"]]
            return {"item": batch["item"], "result": results}

    return Actor


def run_on_actors(items: Sequence[str], make: Callable[[], Job], actors: int) -> Iterator[bytes]:
    """job(item) for every item, computed on up to `actors` actors of the connected
    cluster (`cluster.session.connected`), yielded in the order of `items`."""
    if not items:
        return
    ray = import_ray()
    dataset = ray.data.from_items([{"item": item} for item in items]).map_batches(
        _actor_class(make),
        batch_size=BATCH,
        batch_format="numpy",
        # One CPU an actor: extraction and search are single-threaded per photo.
        num_cpus=1,
        # Down to one actor: a run goes on when a machine, and its actors, are lost.
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
    )
    for row in dataset.iter_rows():
        yield row["result"]
