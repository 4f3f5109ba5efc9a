"""A descriptor index too large for one machine, split by photo across Ray actors.

Every shard holds an index with the same training (the same IVF lists), so a query
descriptor probes the same lists in each; the candidates of each shard, merged and cut
as one index cuts them, are the candidates of the whole, and the k nearest of those by
exact distance are the whole index's k nearest. `ShardedIndex` stands in for
`DescriptorIndex` in the local search, so answers are those of the unsharded index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cluster.session import import_ray
from indexer.descriptor_index import Candidates, DescriptorIndex

__all__ = ["ShardedIndex"]


class _Shard:
    """One actor's part of the index."""

    def __init__(self, empty: bytes, exact_max: int, nprobe: int) -> None:
        self.index = DescriptorIndex.from_bytes(empty, exact_max, nprobe)

    def add(self, image_ids: Sequence[int], descriptors: Sequence[np.ndarray]) -> int:
        for image_id, photo in zip(image_ids, descriptors, strict=True):
            self.index.add(image_id, photo)
        return self.index.size

    def remove(self, image_id: int) -> int:
        return self.index.remove(image_id)

    def candidates(self, queries: np.ndarray, k: int) -> Candidates:
        return self.index.candidates(queries, k)


class ShardedIndex:
    """A `DescriptorIndex` whose photos are spread over `shards` actors of the connected
    cluster, photo `i` on shard `i % shards`.

    Args:
        trained: an index with the training to share (its contents are not copied).
        image_ids: photo ids, one per descriptor array.
        descriptors: (N_i, dim) uint8 arrays.
        shards: actors to spread the photos over.
    """

    def __init__(
        self,
        trained: DescriptorIndex,
        image_ids: Sequence[int],
        descriptors: Sequence[np.ndarray],
        shards: int,
    ) -> None:
        ray = import_ray()
        self._ray = ray
        self.approximate = trained.approximate
        empty = ray.put(trained.empty_copy().to_bytes())
        shard = ray.remote(num_cpus=1)(_Shard)
        self._shards = [
            shard.remote(empty, trained.exact_max, trained.nprobe) for _ in range(shards)
        ]
        sizes = ray.get(
            [
                actor.add.remote(image_ids[i::shards], descriptors[i::shards])
                for i, actor in enumerate(self._shards)
            ]
        )
        self.size = int(sum(sizes))

    @property
    def outgrown(self) -> bool:
        """Never: a sharded index is built for its size by its owner, not rebuilt as the
        catalogue grows."""
        return False

    def add(self, image_id: int, descriptors: np.ndarray) -> None:
        actor = self._shards[image_id % len(self._shards)]
        self._ray.get(actor.add.remote([image_id], [descriptors]))
        self.size += len(descriptors)

    def remove(self, image_id: int) -> int:
        actor = self._shards[image_id % len(self._shards)]
        removed = int(self._ray.get(actor.remove.remote(image_id)))
        self.size -= removed
        return removed

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As `DescriptorIndex.search`: the k nearest over every shard."""
        parts = self._ray.get([actor.candidates.remote(queries, k) for actor in self._shards])
        joined = {
            field: np.hstack([getattr(part, field) for part in parts])
            for field in Candidates.__struct_fields__
            if field != "kept"
        }
        # Each shard's candidates include those of the whole index that it holds; the
        # cut in `nearest` keeps those.
        return Candidates(**joined, kept=parts[0].kept).nearest(k)
