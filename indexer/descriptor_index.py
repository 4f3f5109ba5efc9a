"""FAISS index over every local descriptor of the gallery.

One query photo is matched against all gallery photos at once (one-vs-many), the way
HotSpotter does it (Crall et al., "HotSpotter — patterned species instance recognition",
WACV 2013): each query descriptor's nearest gallery descriptors vote for their photos.
A FAISS id packs the photo and the keypoint, `image_id << 16 | keypoint`, so a search
result needs no side table to find either.

Past a few photos the index is an IVF of 16-byte codes, an eighth of a descriptor's 128
bytes: enough to find candidates, not to rank them, so the best candidates are re-scored
against the exact descriptors (`indexer.descriptor_rows`), which a saved index keeps on
disk, memory-mapped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import faiss
import msgspec
import numpy as np

from indexer.descriptor_rows import DescriptorRows
from indexer.files import replacing
from indexer.results import BuildStage, Stages
from indexer.search_threads import in_parts

__all__ = ["CODES", "KEYPOINT_BITS", "RESCORED", "Candidates", "DescriptorIndex", "Fill"]

KEYPOINT_BITS = 16
"""Bits of a FAISS id that number the keypoint; an extractor keeps at most 65 535."""
_KEYPOINT_MASK = (1 << KEYPOINT_BITS) - 1
RESCORED = 6
"""Candidates taken from an IVF index's codes per neighbour wanted, then re-scored
against the exact descriptors (`DescriptorRows`). Leave-one-out top-1 with `CODES`
against 8-bit scalar codes (SQ8), 2026-12-03: without roll hypotheses, x3 cost flukes
0.005 and right whales 0.004, x4 both 0.002. With x6, against the uncompressed index
(the same lists of exact descriptors) over k-means training samples, the mean paired
difference is -0.001 on flukes and +0.001 on right whales; Happywhale's 65 queries move
more between samples than between codes (reports/codes.md)."""
_TIE_SLACK = 1
"""Candidates per neighbour fetched beyond those re-scored: the cut is then made among
them by code distance and id, the same cut whether or not the index is split into
shards, unless more than k candidates tie at it."""
CODES = "PQ32x4fs"
"""FAISS name of the IVF lists' codes: fast-scan product quantisation, 16 bytes a
descriptor (32 sub-vectors of 4 dimensions, 4 bits each), searched with SIMD lookup
tables. Alone they cost several points of top-1 (flukes 0.795 against 0.811 for 8-bit
scalar codes, right whales 0.528 against 0.545, even with 32 bytes); re-scoring their
`RESCORED` x k best exactly brings it back. With its 8-byte id, a descriptor takes 24
bytes of memory against 136 with SQ8 codes."""


class DescriptorIndex:
    """Exact L2 search up to `exact_max` descriptors; beyond, an IVF index whose lists hold
    each descriptor as a `CODES` code instead of 512 bytes of float32, its candidates
    re-scored against the exact descriptors.

    Args:
        dim: descriptor length.
        exact_max: largest descriptor count searched exactly.
        nprobe: IVF lists visited per query descriptor.
        codes: FAISS name of the IVF lists' codes (`CODES`; others for comparison).
    """

    def __init__(self, dim: int, exact_max: int, nprobe: int, codes: str = CODES) -> None:
        self.dim = dim
        self.exact_max = exact_max
        self.nprobe = nprobe
        self.codes = codes
        self._index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatL2(dim))
        self._rows: DescriptorRows | None = None
        """The exact descriptors, to re-score an IVF index's candidates (None if exact)."""

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def rows_memory_bytes(self) -> int:
        """Memory held for exact rows: those added since the index was last saved."""
        return 0 if self._rows is None else self._rows.memory_bytes

    @property
    def approximate(self) -> bool:
        return not isinstance(self._index, faiss.IndexIDMap2)

    @property
    def outgrown(self) -> bool:
        """Whether the index no longer suits its size and should be built again (from the
        database): an exact index past `exact_max`, or an IVF index whose size has
        reached the next `trained_size` step, where its lists have grown twice as long as
        `_list_count` makes them and each search scans twice as much."""
        return self.outgrown_at(self.size)

    def outgrown_at(self, size: int) -> bool:
        """Whether the index would be `outgrown` holding `size` descriptors."""
        if not self.approximate:
            return size > self.exact_max
        trained = faiss.extract_index_ivf(self._index).nlist
        return trained < _MAX_LISTS and _list_count(self.trained_size(size)) > trained

    def trained_size(self, size: int) -> int:
        """How many descriptors an IVF index of `size` is trained on, the first ones
        added: the largest `exact_max` x 4^k not above `size`. Fixed steps, rather than
        whatever size a process happened to catch up at, make the index a function of
        the catalogue alone: the server following `whaleid enrol`, the CLI itself and a
        rebuild after a restart search the same lists and give the same answers."""
        trained = max(1, self.exact_max)
        while trained * _GROWTH <= size:
            trained *= _GROWTH
        return trained

    def add(self, image_id: int, descriptors: np.ndarray) -> None:
        """Add one photo's descriptors, (N, dim) uint8."""
        if len(descriptors) == 0:
            return
        if len(descriptors) > _KEYPOINT_MASK:
            raise ValueError(f"{len(descriptors)} keypoints, at most {_KEYPOINT_MASK} fit an id")
        ids = (np.int64(image_id) << KEYPOINT_BITS) | np.arange(len(descriptors), dtype=np.int64)
        self._index.add_with_ids(_as_float(descriptors), ids)
        if self._rows is not None:
            self._rows.add(image_id, descriptors)

    def build(
        self,
        photos: Iterable[tuple[int, np.ndarray]],
        seed: int = 0,
        fill: Fill | None = None,
        scratch: Path | None = None,
        stages: Stages | None = None,
    ) -> None:
        """Replace the index with one over these photos, IVF when they are many.

        Args:
            photos: (photo id, (N, dim) uint8 descriptors) in the order they were
                enrolled (the first `trained_size` rows train the IVF), read once: their
                exact rows are written to a file without a name in `scratch` (None: the
                system's temporary folder), not held in memory, then trained on and added.
            seed: seed of the k-means training sample.
            fill: adds the photos to a trained IVF index in some other way than one by
                one here (`cluster.index_build`); it must give the same index.
            stages: told of the training, then of the adding, photo by photo (`fill`
                reports its start and end only); the reading of `photos` is the caller's.
        """
        rows = DescriptorRows.spilled(photos, self.dim, scratch)
        image_ids = rows.held()
        self._rows = None
        approximate = rows.written > self.exact_max
        if approximate:
            if stages is not None:
                stages(BuildStage.TRAINING)(0, 0)
            self._index = _train_ivf(
                rows, self.trained_size(rows.written), self.dim, seed, self.codes
            )
        else:
            self._index = faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))
        adding = stages(BuildStage.ADDING) if stages is not None else _unreported
        total = len(image_ids)
        # Codes alone are added (`add` without rows): the exact rows are in place.
        if approximate and fill is not None:
            adding(0, total)
            fill(self, image_ids, rows.photo)
            adding(total, total)
        else:
            for done, image_id in enumerate(image_ids, start=1):
                self.add(image_id, rows.photo(image_id))
                adding(done, total)
        if approximate:
            self._rows = rows

    def empty_copy(self) -> DescriptorIndex:
        """An index of the same kind and training (the same IVF lists), holding nothing."""
        copy = DescriptorIndex(self.dim, self.exact_max, self.nprobe, self.codes)
        copy._index = faiss.clone_index(self._index)
        copy._index.reset()
        copy._rows = None if self._rows is None else DescriptorRows(self.dim)
        return copy

    def merge(self, other: DescriptorIndex) -> None:
        """Append every descriptor of `other`, an index with the same training (from
        `empty_copy`); IVF lists are appended list by list, so adding photos in shards
        and merging the shards in order gives the index that adding them here would."""
        if self.approximate:
            ivf = faiss.extract_index_ivf(self._index)
            ivf.merge_from(faiss.extract_index_ivf(other._index), 0)
            _clear_free_slots(ivf, list(range(ivf.nlist)))
        else:
            self._index.merge_from(other._index, 0)
        if self._rows is not None and other._rows is not None:
            self._rows.extend(other._rows)

    def to_bytes(self) -> bytes:
        """The index serialised, exact rows included, to send to another process."""
        rows = self._rows
        photos = None
        if rows is not None:
            photos = [(image_id, rows.photo(image_id).tobytes()) for image_id in rows.held()]
        index = faiss.serialize_index(self._index).tobytes()
        return msgspec.msgpack.encode(_Serialised(index=index, photos=photos))

    @classmethod
    def from_bytes(cls, data: bytes, exact_max: int, nprobe: int) -> DescriptorIndex:
        decoded = msgspec.msgpack.decode(data, type=_Serialised)
        index = faiss.deserialize_index(np.frombuffer(decoded.index, np.uint8))
        wrapped = cls._wrapping(index, exact_max, nprobe)
        if decoded.photos is not None:
            wrapped._rows = DescriptorRows(wrapped.dim)
            for image_id, rows in decoded.photos:
                wrapped._rows.add(image_id, np.frombuffer(rows, np.uint8).reshape(-1, wrapped.dim))
        return wrapped

    def remove(self, image_id: int) -> int:
        """Remove every descriptor of one photo.

        Returns:
            How many descriptors were removed.
        """
        first = image_id << KEYPOINT_BITS
        selector = faiss.IDSelectorRange(first, first + _KEYPOINT_MASK + 1)
        if self._rows is None or image_id not in self._rows:
            return int(self._index.remove_ids(selector))
        ivf = faiss.extract_index_ivf(self._index)
        # The lists that held the photo: where the quantiser put its descriptors.
        lists = ivf.quantizer.assign(_as_float(self._rows.photo(image_id)), 1)
        removed = int(self._index.remove_ids(selector))
        _clear_free_slots(ivf, np.unique(lists).tolist())
        self._rows.remove(image_id)
        return removed

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """k nearest gallery descriptors of each query descriptor.

        Args:
            queries: (M, dim) uint8.
            k: neighbours per query descriptor.

        Returns:
            distances (M, k) float32 Euclidean (not squared), image ids (M, k) int64 and
            keypoint numbers (M, k) int64, nearest first; missing neighbours have image
            id -1 and distance +inf.
        """
        return self.candidates(queries, k).nearest(k)

    def candidates(self, queries: np.ndarray, k: int) -> Candidates:
        """The descriptors from which `search` picks the k nearest: for an IVF index the
        (`RESCORED` + `_TIE_SLACK`) x k nearest by their codes, with exact distances;
        otherwise the k nearest."""
        parts = in_parts(queries, lambda part: self._candidates_of(part, k))
        if len(parts) == 1:
            return parts[0]
        return Candidates(
            coded=np.concatenate([p.coded for p in parts]),
            exact=np.concatenate([p.exact for p in parts]),
            image_ids=np.concatenate([p.image_ids for p in parts]),
            keypoints=np.concatenate([p.keypoints for p in parts]),
            kept=parts[0].kept,
        )

    def _candidates_of(self, queries: np.ndarray, k: int) -> Candidates:
        # Per-call parameters, not attributes set on the shared index: searches may run
        # in several threads at once.
        params = None
        if self.approximate:
            params = faiss.SearchParametersIVF(nprobe=self.nprobe)
            quantizer = faiss.downcast_index(faiss.extract_index_ivf(self._index).quantizer)
            if isinstance(quantizer, faiss.IndexHNSW):
                # Given per call, so that indexes saved with another width search with this one.
                params.quantizer_params = faiss.SearchParametersHNSW(efSearch=_GRAPH_WIDTH)
        kept = k if self._rows is None else RESCORED * k
        wanted = k if self._rows is None else (RESCORED + _TIE_SLACK) * k
        squared, ids = self._index.search(_as_float(queries), wanted, params=params)
        missing = ids < 0
        image_ids = np.where(missing, -1, ids >> KEYPOINT_BITS)
        keypoints = np.where(missing, -1, ids & _KEYPOINT_MASK)
        coded = np.sqrt(np.maximum(squared, 0.0, dtype=np.float32))
        coded[missing] = np.inf
        exact = coded if self._rows is None else self._rows.distances(queries, image_ids, keypoints)
        return Candidates(
            coded=coded, exact=exact, image_ids=image_ids, keypoints=keypoints, kept=kept
        )

    def save(self, path: Path) -> None:
        """Write the FAISS file at `path` and the exact rows beside it (`files`), each
        atomically; the rows then stay on disk, memory-mapped, instead of in memory."""
        if self._rows is not None:
            self._rows = self._rows.save(_rows_path(path))
        with replacing(path) as tmp:
            faiss.write_index(self._index, str(tmp))

    @staticmethod
    def files(path: Path) -> list[Path]:
        """Every file `save(path)` may write."""
        return [path, *DescriptorRows.files(_rows_path(path))]

    @classmethod
    def load(cls, path: Path, exact_max: int, nprobe: int) -> DescriptorIndex:
        """Raises:
        RuntimeError: a file is missing, damaged, or does not match the other."""
        index = cls._wrapping(faiss.read_index(str(path)), exact_max, nprobe)
        if index.approximate:
            try:
                index._rows = DescriptorRows.load(_rows_path(path), index.dim)
            except (OSError, ValueError) as error:
                raise RuntimeError(f"exact rows of {path}: {error}") from error
            if index._rows.size != index.size:
                raise RuntimeError(f"{path}: {index.size} codes but {index._rows.size} rows")
        return index

    @classmethod
    def _wrapping(cls, index: faiss.Index, exact_max: int, nprobe: int) -> DescriptorIndex:
        wrapped = cls(index.d, exact_max, nprobe)
        wrapped._index = index
        return wrapped


def _unreported(done: int, total: int) -> None:
    """The progress of a build nobody follows."""


class Candidates(msgspec.Struct, frozen=True, kw_only=True):
    """Candidate neighbours of each query descriptor, (M, C) arrays; missing ones have
    image id -1 and distances +inf."""

    coded: np.ndarray
    """float32 Euclidean distances as the index's codes give them."""
    exact: np.ndarray
    """float32 Euclidean distances to the exact descriptors."""
    image_ids: np.ndarray
    keypoints: np.ndarray
    kept: int
    """How many, nearest by code, are re-scored."""

    def nearest(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distances, image ids, keypoints) of the k nearest by exact distance among the
        `kept` nearest by code."""
        rows = np.arange(len(self.coded))[:, None]
        # Equal code distances (frequent with 4-bit codes) ordered by id, so that the cut
        # does not depend on how FAISS, or the shards of a sharded index, ordered them.
        cut = np.lexsort((self.keypoints, self.image_ids, self.coded), axis=1)[:, : self.kept]
        order = cut[rows, np.argsort(self.exact[rows, cut], axis=1, kind="stable")[:, :k]]
        return self.exact[rows, order], self.image_ids[rows, order], self.keypoints[rows, order]


class _Serialised(msgspec.Struct, array_like=True):
    index: bytes
    """FAISS's serialisation."""
    photos: list[tuple[int, bytes]] | None
    """Exact rows, (image id, its rows) in the order held."""


Fill = Callable[[DescriptorIndex, list[int], Callable[[int], np.ndarray]], None]
"""fill(trained empty index, image ids, descriptors of an image id): add the photos' codes
to the index (it holds no exact rows while it is filled)."""


def _clear_free_slots(ivf: faiss.IndexIVF, lists: list[int]) -> None:
    """Zero the unused slots of these lists' last blocks of fast-scan codes. FAISS 1.15
    leaves stale bits there after a removal or a merge, and packing codes ORs them in: a
    photo added after removals no longer found most of its own descriptors, and an
    index merged from shards searched differently, once photos were added, from one
    built by adding. The last block is zeroed whole and its codes packed into it again
    (packing a zero code into a slot cannot clear it)."""
    if not isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFastScan):
        return
    packer = ivf.get_CodePacker()
    code = np.zeros(packer.code_size, np.uint8)
    for list_no in lists:
        size = ivf.invlists.list_size(list_no)
        first = size - size % packer.nvec  # first slot of the last, partial block
        if first == size:
            continue
        pointer = ivf.invlists.get_codes(list_no)
        codes = faiss.rev_swig_ptr(pointer, (first // packer.nvec + 1) * packer.block_size)
        kept = []
        for slot in range(first, size):
            packer.unpack_1_c(pointer, slot, faiss.swig_ptr(code))
            kept.append(code.copy())
        codes[len(codes) - packer.block_size :] = 0
        for slot, value in enumerate(kept, start=first):
            packer.pack_1_c(faiss.swig_ptr(value), slot, pointer)


def _rows_path(path: Path) -> Path:
    return path.with_name(path.name + ".rows")


def _as_float(descriptors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(descriptors, dtype=np.float32)


def _list_count(total: int) -> int:
    # While each query descriptor is compared with every list centre, those comparisons
    # cost more than the `nprobe` lists scanned, so fewer, longer lists: 2 sqrt(N). Against
    # 4 sqrt(N) (2-core Intel Xeon, 2026-12-06): a 1 000-descriptor query at 2 000 real
    # photos searched in 49 ms instead of 82. Flukes top-1 with the index built once over
    # the set: 0.814 -> 0.822; enrolled photo by photo (`whaleid evaluate`, then trained
    # where the index outgrew itself): 0.822 -> 0.818. Once the centres are found through a
    # graph they are cheap and long lists are not, so 4 sqrt(N): at 20 000 replicated
    # photos, 2 sqrt(N) lists (8 757) took the search p50 from 77 to 102 ms. 12 sqrt(N)
    # lists with 8 probes searched 3.6x faster than 4 sqrt(N) but cost 1.6 points of
    # flukes top-1. k-means needs several points a list, so small galleries get fewer.
    lists = int(2 * np.sqrt(total))
    if lists > _GRAPH_LISTS:
        lists = int(4 * np.sqrt(total))
    return max(1, min(_MAX_LISTS, lists, total // 39))


_GROWTH = 4
"""Growth in descriptors from one `trained_size` step to the next: the lists double
(`_list_count` goes as the square root), and the rebuilds, each from the whole database,
add up to a third of the last one's work."""
_MAX_LISTS = 65536
"""Most IVF lists; 4 sqrt(N) reaches it at 268 M descriptors (about 260 000 photos)."""
_GRAPH_LISTS = 4096
"""Most lists whose centres are compared one by one (2 sqrt(N) lists, up to 4.2 M
descriptors, about 4 400 photos). Beyond, a descriptor finds its nearest list centres
through an HNSW graph over them (Malkov & Yashunin, TPAMI 2018): at 16 384 centres
comparing all of them is 2 G multiply-adds a query photo, and 40 T to add 20 M
descriptors. The development sets (at most 2 975 lists) stay below it."""
_GRAPH_LINKS = 32
"""Neighbours per node of that graph."""
_GRAPH_WIDTH = 32
"""Candidates the graph search keeps (efSearch), twice `nprobe`. At 20 000 replicated
photos (18 214 lists, 2-core AMD EPYC, 50 real queries x 2, paired): 64 -> 32 took identify
p50 from 309 to 261 ms and kept all 50 top-1 answers; 16 changed 5 of them."""


def _train_ivf(
    rows: DescriptorRows, trained_size: int, dim: int, seed: int, codes: str
) -> faiss.Index:
    """An empty IVF index trained on a sample of the first `trained_size` rows."""
    nlist = _list_count(trained_size)
    sample = min(trained_size, 40 * nlist)
    picks = np.sort(np.random.default_rng(seed).choice(trained_size, sample, replace=False))
    training = rows.take(picks).astype(np.float32)
    if nlist <= _GRAPH_LISTS:
        index = faiss.index_factory(dim, f"IVF{nlist},{codes}", faiss.METRIC_L2)
        index.train(training)
        return index
    index = faiss.index_factory(dim, f"IVF{nlist}_HNSW{_GRAPH_LINKS},{codes}", faiss.METRIC_L2)
    # k-means itself runs on exact distances; the graph is built once over its result.
    # Held in a variable: FAISS keeps only a pointer to it while training.
    exact = faiss.IndexFlatL2(dim)
    index.clustering_index = exact
    index.train(training)
    index.clustering_index = None
    # Descriptors added (and looked up on removal) are assigned to lists this wide too:
    # FAISS's default, 16, missed the nearest list for 0.35 % of descriptors.
    faiss.downcast_index(index.quantizer).hnsw.efSearch = _GRAPH_WIDTH
    return index
