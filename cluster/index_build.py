"""Building a large descriptor index on the cluster: the IVF is trained once, here; each
worker adds a shard of the photos to a copy of it, and the shards are merged in order,
which gives the same index as adding every photo in one process."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from cluster.session import import_ray
from indexer.descriptor_index import DescriptorIndex, Fill

__all__ = ["fill_on_cluster"]


def fill_on_cluster(shards: int) -> Fill:
    """A `Fill` that adds photos in `shards` Ray tasks of the connected cluster."""
    ray = import_ray()
    add_shard = ray.remote(num_cpus=1)(_add_shard)

    def fill(
        index: DescriptorIndex, image_ids: list[int], descriptors: Callable[[int], np.ndarray]
    ) -> None:
        empty = ray.put(index.to_bytes())  # trained, empty, without exact rows
        bounds = np.linspace(0, len(image_ids), shards + 1).round().astype(int)
        pending = [
            add_shard.remote(
                empty, image_ids[start:end], [descriptors(i) for i in image_ids[start:end]]
            )
            for start, end in itertools.pairwise(bounds)
            if end > start
        ]
        for data in ray.get(pending):  # in shard order: the lists keep the photos' order
            index.merge(DescriptorIndex.from_bytes(data, index.exact_max, index.nprobe))

    return fill


def _add_shard(empty: bytes, image_ids: list[int], descriptors: list[np.ndarray]) -> bytes:
    shard = DescriptorIndex.from_bytes(empty, exact_max=0, nprobe=1)
    for image_id, photo in zip(image_ids, descriptors, strict=True):
        shard.add(image_id, photo)
    return shard.to_bytes()
