"""How search scales with the gallery: global embeddings to a million, local descriptors
from a first catalogue to a national one.

    python scripts/benchmark_scalability.py [--json reports/scalability.json]
        [--sizes 1000,10000,100000,1000000] [--queries 200] [--data ../shared/data]
        [--hnsw-max 100000] [--photo-sizes 300,2000] [--replicated-sizes 20000]
        [--descriptors-only] [--keep DIR]

1. Global embeddings (the deep path's index, `indexer.vector_index.VectorIndex` with the
   engine's settings): for each size, build time, index memory, single-query search
   latency p50/p95 (one thread), recall@10 of the index against exact search, a sweep of
   its speed/recall setting, and the time to remove one vector. For comparison, FAISS's
   HNSW graph (Malkov & Yashunin, TPAMI 2018), which the service does not use, is built
   here directly and measured beside it up to `--hnsw-max` vectors (its million-vector
   build takes about 20 min; it cannot delete, so it has no removal time). No real
   embeddings exist here (no real weights can be downloaded), so every size uses
   synthetic vectors, labelled as such: ArcFace-like clusters, one per individual (five
   photos each on average, same-individual cosine about 0.6), in an anisotropic space (a
   decaying spectrum, as trained embeddings have), queries being new photos of known
   individuals.
2. Local descriptors (the weight-free path, `indexer.local_search.LocalSearch` with the
   engine's settings): real RootSIFT of the humpback-flukes and rightwhale photos,
   galleries of `--photo-sizes` real photos and `--replicated-sizes` replicated ones:
   build time, memory per photo, the index search and the whole weight-free
   identification of held-out real photos. `--descriptors-only` measures this part alone
   and keeps the global part of the `--json` file. `--keep DIR` keeps each point's built
   index in DIR and, on a later run with the same settings, times the queries on it
   instead of building it again: a 100 000-photo build takes hours, and need not run on
   the quiet machine that the timing needs.

Fits `latency = a * size^b` to both and draws `reports/scalability.png`. Writes the JSON
given with `--json` and `reports/scalability.md`. Part 2 is skipped, and said so, when
`../shared/data` is absent.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import faiss
import msgspec
import numpy as np
from PIL import Image, ImageDraw
from reporting import report_meta

from embeddings.allocator import retain_freed_memory
from embeddings.images import load_photo_file
from embeddings.keypoints import RootSiftExtractor
from embeddings.protocol import LocalFeatures
from indexer.deep_search import DEEP_EXACT_MAX, DEEP_REFINE_FACTOR
from indexer.descriptor_index import CODES, DescriptorIndex
from indexer.local_search import (
    LocalSearch,
    Rolled,
    SearchParameters,
    positions_of,
    query_features,
)
from indexer.search_threads import cores
from indexer.vector_index import VectorIndex

REPORTS = Path(__file__).resolve().parents[1] / "reports"
DIM = 512
SWEEPS = {"pq": ("refine_factor", (10, 20, 50, 100)), "hnsw": ("ef_search", (128, 256, 512, 1024))}
"""Per approximate kind: the attribute that trades recall for time, and the values
measured."""
HNSW_M = 32
"""Neighbours per node of the comparison graph."""
HNSW_EF_CONSTRUCTION = 100
"""Beam width while building the comparison graph. On 100 000 synthetic 512-d embeddings
(2 cores, M = 32), 100 built in 31 s against 28 s for FAISS's default 40, and raised
recall@10 at efSearch 512 from 0.952 to 0.969."""
HNSW_EF_SEARCH = 512
"""Beam width of the comparison graph's searches (at least k is used)."""
TARGET = {"size": 1_000_000, "search_ms_p50": 10.0, "recall_at_10": 0.95}
DESCRIPTOR_SETS = ("humpback-flukes", "rightwhale")
QUERIES = 50
"""Held-out real photos identified against each local-descriptor gallery."""
REPLICA_NOISE = 8.0
"""Sigma of the noise added to replicated descriptors (uint8 units): copies are new
individuals, not duplicates FAISS could find by exact equality."""
LOCAL_BARS = {"identify_ms_p50": 200.0, "index_kib_per_photo": 50.0}
"""Issue 18's bars for the weight-free path up to 20 000 photos."""
LARGE_PHOTOS, LARGE_IDENTIFY_MS = 100_000, 300.0
"""Issue 18's identify bar from 100 000 photos; between 20 000 and 100 000 it sets none."""


def identify_bar_ms(photos: int) -> float | None:
    """Issue 18's identify p50 bar for a gallery of this many photos, if it sets one."""
    if photos <= 20_000:
        return LOCAL_BARS["identify_ms_p50"]
    return LARGE_IDENTIFY_MS if photos >= LARGE_PHOTOS else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument(
        "--photo-sizes", default="300,2000", help="local-descriptor galleries of real photos"
    )
    parser.add_argument(
        "--replicated-sizes", default="", help="larger ones, real photos replicated (labelled)"
    )
    parser.add_argument(
        "--compare-codes",
        default="PQ64x4fs",
        help="IVF codes also measured on the real galleries, for comparison ('' for none)",
    )
    parser.add_argument(
        "--descriptors-only",
        action="store_true",
        help="measure the local descriptors only; keep the global part of --json",
    )
    parser.add_argument(
        "--passes",
        type=int,
        default=3,
        help="times the queries are identified at each point; p50 is the median of passes",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep each local-descriptor point's built index here, and reuse a kept one",
    )
    parser.add_argument(
        "--hnsw-max", type=int, default=100_000, help="largest size HNSW is measured at too"
    )
    parser.add_argument(
        "--render",
        type=Path,
        help="only refit and redraw the report and plot from this results JSON (rewritten)",
    )
    args = parser.parse_args()
    retain_freed_memory()  # as the service does (`whaleid` at its start)
    args.photo_sizes = [int(s) for s in args.photo_sizes.split(",") if s]
    args.replicated_sizes = [int(s) for s in args.replicated_sizes.split(",") if s]
    if args.descriptors_only and (args.json is None or not args.json.is_file()):
        parser.error("--descriptors-only keeps the global part of --json: give an existing one")
    if args.render is not None:
        results = json.loads(args.render.read_text())
        _finish(results)
        args.render.write_text(json.dumps(results, indent=2) + "\n")
        return 0
    faiss.omp_set_num_threads(1)
    engine = SearchParameters()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {
        **report_meta(),
        "engine": {
            "deep_exact_max": DEEP_EXACT_MAX,
            "deep_refine_factor": DEEP_REFINE_FACTOR,
            "exact_search_max": engine.exact_search_max,
            "nprobe": engine.nprobe,
            "codes": CODES,
        },
        "hnsw": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
        "target": TARGET,
    }
    if args.descriptors_only:
        earlier = json.loads(args.json.read_text())
        results["global"] = earlier["global"]
        results["global_command"] = earlier.get("global_command", earlier["command"])
    else:
        results["global"] = [
            p for n in sizes for p in _global_points(n, args.queries, args.hnsw_max)
        ]

    def measured(descriptors: dict) -> None:
        # Written after every point: a run stopped during a large point (hours) keeps
        # the points it finished, and says which it did not.
        results["descriptors"] = descriptors
        _finish(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")

    measured(_descriptor_points(args, engine, measured))
    print(json.dumps({k: results[k] for k in ("global", "global_fit", "target_met")}, indent=2))
    return 0


def _finish(results: dict) -> None:
    """Fit the growth curves, judge the target, write the report and the plot. Each curve
    is fitted on the approximate-index points only: below the exact limits the search is
    a different algorithm, and mixing the two would describe neither."""
    engine_points = [p for p in results["global"] if p["engine_index"]]
    fitted = [p for p in engine_points if p["structure"] == "approximate"]
    results["global_fit"] = _fit([p["size"] for p in fitted], [p["search_ms_p50"] for p in fitted])
    if results["descriptors"]["measured"]:
        points = [
            p
            for p in results["descriptors"]["points"]
            if p["structure"] == "approximate" and p["engine_index"]
        ]
        results["descriptors"]["fit"] = _fit(
            [p["descriptors"] for p in points], [p["search_ms_p50"] for p in points]
        )
    largest = max(engine_points, key=lambda p: p["size"])
    results["target_met"] = (
        largest["size"] >= TARGET["size"]
        and largest["search_ms_p50"] <= TARGET["search_ms_p50"]
        and largest["recall_at_10"] >= TARGET["recall_at_10"]
    )
    _plot(results, REPORTS / "scalability.png")
    (REPORTS / "scalability.md").write_text(_markdown(results))


# ---------------------------------------------------------------------- global embeddings


def synthetic_embeddings(n: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 512) gallery and (queries, 512) query vectors, unit length, ArcFace-like."""
    rng = np.random.default_rng(seed)
    # Anisotropy: coordinates scaled by a decaying spectrum, so the vectors crowd into a
    # few hundred effective dimensions, as trained embeddings do.
    spectrum = (1.0 + np.arange(DIM)) ** -0.5
    individuals = max(1, n // 5)
    centres = rng.standard_normal((individuals, DIM), dtype=np.float32) * spectrum
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def photos(count: int) -> np.ndarray:
        owner = rng.integers(0, individuals, count)
        noise = rng.standard_normal((count, DIM), dtype=np.float32) * spectrum
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        # Equal parts centre and noise: same-individual cosine about 0.6.
        v = centres[owner] + 0.8 * noise
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    gallery = np.concatenate([photos(min(n, 100_000)) for _ in range(0, n, 100_000)])[:n]
    return gallery, photos(queries)


class _Hnsw:
    """FAISS's HNSW graph over ids 0..n-1, searched like a `VectorIndex`: the comparison."""

    approximate = True

    def __init__(self, dim: int) -> None:
        self._graph = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        self._graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        self.ef_search = HNSW_EF_SEARCH

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        # The graph numbers its vectors in order of addition; the ids here are 0..n-1.
        assert (ids == np.arange(self._graph.ntotal, self._graph.ntotal + len(ids))).all()
        self._graph.add(vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
        return self._graph.search(queries, k, params=params)

    def save(self, path: Path) -> None:
        faiss.write_index(self._graph, str(path))


def _global_points(n: int, queries: int, hnsw_max: int) -> list[dict]:
    """The engine's index at size n, and HNSW beside it up to `hnsw_max` vectors."""
    print(f"global embeddings: {n} synthetic vectors ...", file=sys.stderr)
    gallery, query = synthetic_embeddings(n, queries)
    exact = faiss.IndexFlatIP(DIM)
    exact.add(gallery)
    _, truth = exact.search(query, 10)
    del exact
    kinds = ["pq"]
    if DEEP_EXACT_MAX < n <= hnsw_max:
        kinds.append("hnsw")
    points = []
    for kind in kinds:
        index: VectorIndex | _Hnsw
        if kind == "hnsw":
            index = _Hnsw(DIM)
        else:
            index = VectorIndex(DIM, DEEP_EXACT_MAX, refine_factor=DEEP_REFINE_FACTOR)
        started = time.perf_counter()
        index.add(np.arange(n, dtype=np.int64), gallery)
        build_s = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            index.save(Path(tmp) / "index.faiss")
            index_bytes = (Path(tmp) / "index.faiss").stat().st_size
        times, recall = _timed_search(index, query, truth)
        point = {
            "size": n,
            "data": "synthetic",
            "structure": "approximate" if index.approximate else "exact",
            "index_kind": kind if index.approximate else "flat",
            "engine_index": kind == "pq",
            "build_s": build_s,
            "index_mib": index_bytes / 2**20,
            "search_ms_p50": statistics.median(times),
            "search_ms_p95": float(np.percentile(times, 95)),
            "recall_at_10": recall,
            "remove_one_s": None,
        }
        if index.approximate:
            point["sweep"] = _sweep(index, kind, query, truth)
        if isinstance(index, VectorIndex):
            started = time.perf_counter()
            index.remove(np.array([n // 2], dtype=np.int64))
            point["remove_one_s"] = time.perf_counter() - started
        print(f"  {point}", file=sys.stderr)
        points.append(point)
        del index
    return points


def _sweep(index: VectorIndex | _Hnsw, kind: str, query: np.ndarray, truth: np.ndarray) -> dict:
    """Speed and recall at each value of the kind's recall/time setting; the engine's
    default is among them."""
    setting, values = SWEEPS[kind]
    default = getattr(index, setting)
    rows = []
    for value in values:
        setattr(index, setting, value)
        times, recall = _timed_search(index, query, truth)
        rows.append(
            {"value": value, "search_ms_p50": statistics.median(times), "recall_at_10": recall}
        )
    setattr(index, setting, default)
    return {"setting": setting, "default": default, "points": rows}


def _timed_search(
    index: VectorIndex | _Hnsw, query: np.ndarray, truth: np.ndarray
) -> tuple[list[float], float]:
    """Per-query ms and recall@10 against `truth` (the exact top 10)."""
    times, found = [], []
    for q in query:
        started = time.perf_counter()
        _, ids = index.search(q[None], 10)
        times.append(1000 * (time.perf_counter() - started))
        found.append(ids[0])
    recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))
    return times, recall


# ---------------------------------------------------------------------- local descriptors


def _descriptor_points(
    args: argparse.Namespace, engine: SearchParameters, measured: Callable[[dict], None]
) -> dict:
    """The local-descriptor points, each also given to `measured` with those before it."""
    rows = [
        (args.data / name / row["path"], f"{name}/{row['individual_id']}")
        for name in DESCRIPTOR_SETS
        if (args.data / name / "manifest.csv").is_file()
        for row in csv.DictReader((args.data / name / "manifest.csv").open())
    ]
    if len(rows) < QUERIES + max(args.photo_sizes):
        return {
            "measured": False,
            "why": f"not enough real photos at {args.data} (not distributed)",
        }
    rng = np.random.default_rng(0)
    rows = [rows[i] for i in rng.permutation(len(rows))]
    queries, pool = rows[:QUERIES], rows[QUERIES : QUERIES + max(args.photo_sizes)]
    print(f"describing {len(pool)} photos of {', '.join(DESCRIPTOR_SETS)} ...", file=sys.stderr)
    with ProcessPoolExecutor() as workers:
        described = list(workers.map(_describe, [path for path, _ in pool], chunksize=16))
    gallery = [(label, f) for (_, label), f in zip(pool, described, strict=True)]
    runs = [(photos, engine) for photos in args.photo_sizes + args.replicated_sizes]
    runs += [
        (photos, msgspec.structs.replace(engine, codes=codes))
        for codes in args.compare_codes.split(",")
        if codes
        for photos in args.photo_sizes
    ]
    points = []
    for done, (photos, params) in enumerate(runs, start=1):
        # Each point replicates with its own seed, so a kept index is the one a run
        # building every point would have built.
        replicas = np.random.default_rng(photos)
        point = _descriptor_point(
            partial(_gallery_of, gallery, photos, replicas),
            queries,
            params,
            args.passes,
            kept=_kept_folder(args.keep, photos, len(gallery), params),
        )
        point["data"] = "real" if photos <= len(gallery) else "replicated"
        point["identify_bar_ms"] = identify_bar_ms(photos)
        point["codes"] = params.codes
        point["engine_index"] = params == engine
        print(f"  descriptors: {point}", file=sys.stderr)
        points.append(point)
        unfinished = [f"{n:,} photos ({p.codes})" for n, p in runs[done:]]
        measured({"measured": True, "data": "real", "points": points, "unfinished": unfinished})
    return {"measured": True, "data": "real", "points": points, "unfinished": []}


def _describe(path: Path) -> LocalFeatures:
    return RootSiftExtractor().extract(load_photo_file(path))


def _gallery_of(
    real: list[tuple[str, LocalFeatures]], photos: int, rng: np.random.Generator
) -> Iterator[tuple[str, LocalFeatures]]:
    """`photos` gallery photos: real ones, then, past the real count, copies of them as
    new individuals with every descriptor perturbed (Gaussian, sigma `REPLICA_NOISE`).
    Made one at a time as the build reads them: 100 000 photos hold 12 GB of descriptors."""
    yield from real[:photos]
    for number in range(len(real), photos):
        label, features = real[number % len(real)]
        yield f"{label}/copy-{number}", perturbed(features, rng)


def perturbed(features: LocalFeatures, rng: np.random.Generator) -> LocalFeatures:
    """A replicated photo's features: the same keypoints, every descriptor perturbed."""
    noise = rng.normal(0, REPLICA_NOISE, features.descriptors.shape)
    descriptors = np.clip(features.descriptors + noise, 0, 255).astype(np.uint8)
    return LocalFeatures(keypoints=features.keypoints, descriptors=descriptors)


def _kept_folder(
    keep: Path | None, photos: int, real: int, engine: SearchParameters
) -> Path | None:
    """Where a point's index is kept: named by everything that decides its contents
    (not the settings of a search), among them how many real photos (`real`, the
    largest real gallery asked for) a replicated gallery copies."""
    if keep is None:
        return None
    made_from = min(photos, real)
    built_by = [engine.exact_search_max, engine.codes]
    settings = msgspec.json.encode(
        [built_by, RootSiftExtractor().version, REPLICA_NOISE, made_from]
    )
    return keep / f"{photos}-{hashlib.sha256(settings).hexdigest()[:10]}"


def _descriptor_point(
    gallery: Callable[[], Iterable[tuple[str, LocalFeatures]]],
    queries: list[tuple[Path, str]],
    engine: SearchParameters,
    passes: int,
    kept: Path | None = None,
) -> dict:
    """Build the engine's local search over `gallery` (or take the one kept in `kept`),
    then identify each query photo the way the weight-free stage does (decode, describe,
    search, verify, roll if needed), `passes` times."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = kept or Path(scratch)
        built = folder / "built.json"
        if built.is_file():
            print(f"  reusing the index kept in {folder}", file=sys.stderr)
        else:
            _build_point(gallery(), engine, folder)
        point = json.loads(built.read_text())
        saved = folder / "d.faiss"
        # As a restarted server holds it: loaded from its files, exact rows mapped.
        loading = time.perf_counter()
        index = DescriptorIndex.load(saved, engine.exact_search_max, engine.nprobe)
        with np.load(folder / "photos.npz") as photos:
            labels, ends, positions = photos["labels"], photos["ends"], photos["positions"]
        search = LocalSearch(engine, upright=True)
        search.resume(
            index,
            [
                (image_id, str(label), *positions_of(part))
                for image_id, (label, part) in enumerate(
                    zip(labels, np.split(positions, ends[:-1]), strict=True), start=1
                )
            ],
        )
        load_s = time.perf_counter() - loading
        disk_bytes = sum(p.stat().st_size for p in DescriptorIndex.files(saved) if p.is_file())
        # The FAISS file is the index's serialisation: its size, without a second copy.
        index_bytes = saved.stat().st_size + index.rows_memory_bytes
        photo_count = len(labels)
        point |= {
            "load_s": load_s,
            "index_kib_per_photo": (index_bytes + positions.nbytes) / photo_count / 1024,
            "disk_kib_per_photo": disk_bytes / photo_count / 1024,
            **_identify_queries(search, queries, engine, passes),
        }
    return point


def _build_point(
    gallery: Iterable[tuple[str, LocalFeatures]], engine: SearchParameters, folder: Path
) -> None:
    """Build the index of `gallery` and save it in `folder` with each photo's label and
    keypoint positions; `built.json`, written last, holds the build's figures."""
    folder.mkdir(parents=True, exist_ok=True)
    labels: list[str] = []
    positions: list[np.ndarray] = []

    def numbered() -> Iterator[tuple[int, str, LocalFeatures]]:
        for image_id, (label, features) in enumerate(gallery, start=1):
            labels.append(label)
            positions.append(features.keypoints[:, :2].astype(np.float32))
            yield image_id, label, features

    rss_before = _rss_bytes()
    started = time.perf_counter()
    search = LocalSearch(engine, upright=True, scratch=folder)
    faiss.omp_set_num_threads(cores())  # build time is not the bar: every core
    search.build(numbered())
    build_s = time.perf_counter() - started
    rss_after = _rss_bytes()
    search.index.save(folder / "d.faiss")
    np.savez(
        folder / "photos.npz",
        labels=np.array(labels),
        ends=np.cumsum([len(p) for p in positions]),
        positions=np.concatenate(positions),
    )
    point = {
        "photos": len(labels),
        "descriptors": search.descriptors,
        "structure": "approximate" if search.index.approximate else "exact",
        "build_s": build_s,
        "built": datetime.now(UTC).isoformat(timespec="seconds"),
        "rss_kib_per_photo": (rss_after - rss_before) / len(labels) / 1024,
    }
    (folder / "built.json").write_text(json.dumps(point, indent=2) + "\n")


def _identify_queries(
    search: LocalSearch, queries: list[tuple[Path, str]], engine: SearchParameters, passes: int
) -> dict:
    """Each pass identifies every query once. The p50s are medians over the passes' p50s:
    on a shared machine one pass's p50 moves by 15 % from one minute to the next."""
    extractor = RootSiftExtractor()
    search_p50, features_p50, identify_p50, identify_all = [], [], [], []
    upright_ms, rolled_ms = [], []
    for _ in range(passes):
        search_ms, features_ms, identify_ms = [], [], []
        described = []
        for path, _label in queries:
            started = time.perf_counter()
            detection = extractor.detect(load_photo_file(path))
            features = query_features(detection, engine)
            features_ms.append(1000 * (time.perf_counter() - started))
            rolls: list[Sequence[float]] = []
            search.rank(features, rolled=_noted(detection.describe_rolls, rolls))
            identify_ms.append(1000 * (time.perf_counter() - started))
            (rolled_ms if rolls else upright_ms).append(identify_ms[-1])
            described.append(features.descriptors)
        # The index search alone, timed apart: searching a photo's descriptors just before
        # identifying it would leave its lists and exact rows in the caches, which a
        # server's one search of a new photo does not find there.
        for descriptors in described:
            started = time.perf_counter()
            search.index.search(descriptors, engine.neighbours + 1)
            search_ms.append(1000 * (time.perf_counter() - started))
        search_p50.append(statistics.median(search_ms))
        features_p50.append(statistics.median(features_ms))
        identify_p50.append(statistics.median(identify_ms))
        identify_all += identify_ms
    return {
        "search_ms_p50": statistics.median(search_p50),
        "features_ms_p50": statistics.median(features_p50),
        "identify_ms_p50": statistics.median(identify_p50),
        "identify_ms_p50_passes": identify_p50,
        "identify_ms_p95": float(np.percentile(identify_all, 95)),
        "rolled_share": len(rolled_ms) / len(identify_all),
        "identify_ms_p50_upright": statistics.median(upright_ms) if upright_ms else None,
        "identify_ms_p50_rolled": statistics.median(rolled_ms) if rolled_ms else None,
    }


def _noted(rolled: Rolled, calls: list[Sequence[float]]) -> Rolled:
    """`rolled`, each call's angles appended to `calls`."""

    def noted(angles: Sequence[float], strongest: int) -> list[LocalFeatures]:
        calls.append(angles)
        return rolled(angles, strongest)

    return noted


def _passes(point: dict) -> str:
    """Each pass's identify p50; points of earlier runs were identified once."""
    return " / ".join(f"{ms:.0f}" for ms in point.get("identify_ms_p50_passes", [])) or "1 pass"


def _optional(point: dict, key: str, digits: int = 1) -> str:
    """A figure that earlier runs did not measure, or that no query gave."""
    return f"{point[key]:.{digits}f}" if point.get(key) is not None else "-"


def _rolled(point: dict) -> str:
    """Share of the queries that fell back to the roll hypotheses."""
    return f"{point['rolled_share']:.0%}" if "rolled_share" in point else "-"


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------- fit, plot, report


def _fit(sizes: list[float], ms: list[float]) -> dict:
    """Least squares of log(ms) = log(a) + b log(size)."""
    if len(sizes) < 2:
        return {"a": float("nan"), "b": float("nan")}
    b, log_a = np.polyfit(np.log(sizes), np.log(ms), 1)
    return {"a": float(np.exp(log_a)), "b": float(b), "formula": "search_ms = a * size^b"}


def _plot(results: dict, path: Path) -> None:
    """Log-log latency against size, points and fitted lines; Pillow only."""
    width, height, margin = 900, 560, 80
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    series = [
        (
            "global embeddings (synthetic)",
            "size",
            [p for p in results["global"] if p["engine_index"]],
            results["global_fit"],
            (30, 90, 200),
        )
    ]
    if results["descriptors"]["measured"]:
        d = results["descriptors"]
        series.append(
            (
                "local descriptors (real)",
                "descriptors",
                [p for p in d["points"] if p["engine_index"]],
                d["fit"],
                (200, 80, 30),
            )
        )
    xs = [p[key] for _, key, points, _, _ in series for p in points]
    ys = [p["search_ms_p50"] for _, _, points, _, _ in series for p in points]
    x0, x1 = np.log10(min(xs)) - 0.2, np.log10(max(xs)) + 0.2
    y0, y1 = np.log10(min(ys)) - 0.3, np.log10(max(ys)) + 0.3

    def at(x: float, y: float) -> tuple[float, float]:
        px = margin + (np.log10(x) - x0) / (x1 - x0) * (width - 2 * margin)
        py = height - margin - (np.log10(y) - y0) / (y1 - y0) * (height - 2 * margin)
        return float(px), float(py)

    draw.rectangle([margin, margin, width - margin, height - margin], outline="black")
    for e in range(int(np.ceil(x0)), int(np.floor(x1)) + 1):
        px, _ = at(10**e, 10**y0)
        draw.line([px, height - margin, px, height - margin + 6], fill="black")
        draw.text((px - 12, height - margin + 10), f"1e{e}", fill="black")
    for e in range(int(np.ceil(y0)), int(np.floor(y1)) + 1):
        _, py = at(10**x0, 10**e)
        draw.line([margin - 6, py, margin, py], fill="black")
        draw.text((margin - 60, py - 6), f"{10.0**e:g} ms", fill="black")
    draw.text((width / 2 - 120, height - 35), "gallery size (vectors or descriptors)", fill="black")
    draw.text((margin, 20), "search latency p50 per query (one thread), log-log", fill="black")
    for row, (label, key, points, fit, colour) in enumerate(series):
        coords = [at(p[key], p["search_ms_p50"]) for p in points]
        for cx, cy in coords:
            draw.ellipse([cx - 5, cy - 5, cx + 5, cy + 5], fill=colour)
        if np.isfinite(fit["b"]):
            fitted = [p[key] for p in points if p["structure"] == "approximate"]
            line = [
                at(x, fit["a"] * x ** fit["b"]) for x in np.geomspace(min(fitted), max(fitted), 20)
            ]
            draw.line(line, fill=colour, width=2)
        draw.text(
            (margin + 10, margin + 10 + 18 * row),
            f"{label}: ms = {fit['a']:.3g} * n^{fit['b']:.2f}",
            fill=colour,
        )
    image.save(path)


def _markdown(r: dict) -> str:
    lines = [
        "# Search scalability",
        "",
        f"- command: `{r['command']}`",
        f"- date: {r['date']}",
        (
            f"- machine: {r['machine']}; each FAISS search on one thread, a query photo's"
            " descriptors split over the cores (`indexer.search_threads`)"
        ),
        "- plot: [scalability.png](scalability.png)",
        "",
        "## Global embeddings (deep path): synthetic vectors",
        "",
        "No real embeddings exist in this workplace (no real weights), so every size is",
        "synthetic: ArcFace-like clusters of five photos per individual on average, in an anisotropic",
        "512-d space, queries being new photos of known individuals.",
        "",
        "The engine's index is `pq` above `deep_exact_max` ="
        f" {r['engine']['deep_exact_max']:,} vectors (flat, exact, up to it); FAISS's HNSW,"
        " built by this script alone, is measured beside it for comparison. *remove 1 s*:"
        " time to remove one vector (HNSW cannot delete).",
        "",
        "| vectors | data | index | build s | index MiB | search ms p50 | p95 | recall@10"
        " | remove 1 s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in r["global"]:
        engine_mark = "" if p["engine_index"] else " (comparison)"
        remove = "-" if p["remove_one_s"] is None else f"{p['remove_one_s']:.3f}"
        lines.append(
            f"| {p['size']:,} | {p['data']} | {p['index_kind']}{engine_mark} |"
            f" {p['build_s']:.1f} | {p['index_mib']:.0f} | {p['search_ms_p50']:.2f} |"
            f" {p['search_ms_p95']:.2f} | {p['recall_at_10']:.3f} | {remove} |"
        )
    for p in r["global"]:
        if "sweep" in p:
            sweep = p["sweep"]
            lines += [
                "",
                f"{p['index_kind']} at {p['size']:,} vectors, `{sweep['setting']}` (default"
                f" {sweep['default']}):",
                "",
                f"| {sweep['setting']} | search ms p50 | recall@10 |",
                "|---|---|---|",
            ]
            lines += [
                f"| {s['value']} | {s['search_ms_p50']:.2f} | {s['recall_at_10']:.3f} |"
                for s in sweep["points"]
            ]
    fit = r["global_fit"]
    target = r["target"]
    lines += [
        "",
        f"Fitted growth on the engine's approximate points: search ms = {fit['a']:.3g} x"
        f" size^{fit['b']:.2f}.",
        f"Target at {target['size']:,} vectors: p50 <= {target['search_ms_p50']} ms and"
        f" recall@10 >= {target['recall_at_10']}: {'met' if r['target_met'] else 'NOT met'}.",
        "",
        "## Local descriptors (weight-free path): real RootSIFT",
        "",
    ]
    d = r["descriptors"]
    if not d["measured"]:
        lines.append(f"Not measured: {d['why']}.")
    else:
        lines += [
            f"Galleries of real photos from {', '.join(DESCRIPTOR_SETS)}, each photo described"
            " once; larger galleries are those photos replicated as new individuals, every"
            f" descriptor perturbed (Gaussian, sigma {REPLICA_NOISE:g}), and are marked"
            f" *replicated*. {QUERIES} other real photos are identified against each, as the"
            " weight-free stage does it: *identify* is decode, RootSIFT, index search,"
            " LNBNN, RANSAC verification of the shortlist and the roll hypotheses when"
            " nothing verifies upright (no gate; its descriptors searched in parts on every"
            " core, as the service searches them); *search* is the index search"
            " alone; *features* is decode, detection and upright description, the part of"
            " identify that no gallery size changes: it tells how fast the host was while"
            " each size was measured. Each pass identifies every query once; *identify ms"
            " p50* is the median of the passes' p50s, each listed under *passes*, and p95 is"
            " over every pass."
            " *rolled*: the share of queries whose best photo verified too few inliers"
            " upright, so that the roll hypotheses were described and searched too;"
            " *upright* and *rolled p50* are the identify p50s of the other queries and of"
            " those, over every pass. Where about half the queries roll, the p50 lies"
            " between the two groups and moves with a query or two."
            " The index is measured as a restarted server holds it, loaded from its"
            " saved files; *load s* is that loading, the FAISS file read, the exact rows"
            " mapped and each photo's keypoint positions taken in (the service reads them"
            " from its points file and the database as well). *index KiB/photo*: what it"
            " keeps in memory, the FAISS index"
            " plus any exact rows held in memory plus the keypoint positions kept for"
            " verification; *disk KiB/photo*: its files, the exact rows that re-score"
            " an IVF index's candidates included, which are memory-mapped and read a few"
            " rows a search; *RSS KiB/photo*: the process's resident"
            " growth while building, build garbage included (a later row may reuse memory"
            " an earlier gallery freed, and read low or negative).",
            *([d["note"]] if d.get("note") else []),
            *(
                [f"This run stopped before measuring: {', '.join(d['unfinished'])}."]
                if d.get("unfinished")
                else []
            ),
            "",
            "| photos | data | descriptors | index | codes | build s | load s | index KiB/photo"
            " | disk KiB/photo | RSS KiB/photo | search ms p50 | features ms p50 | identify ms p50"
            " | passes | p95"
            " | rolled | upright p50 | rolled p50 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in d["points"]:
            lines.append(
                f"| {p['photos']:,} | {p['data']} | {p['descriptors']:,} | {p['structure']} |"
                f" {p['codes']}{'' if p['engine_index'] else ' (comparison)'} | {p['build_s']:.1f} | {_optional(p, 'load_s')} | {p['index_kib_per_photo']:.1f} |"
                f" {_optional(p, 'disk_kib_per_photo')} | {p['rss_kib_per_photo']:.1f} | {p['search_ms_p50']:.0f} |"
                f" {_optional(p, 'features_ms_p50', 0)} | {p['identify_ms_p50']:.0f} | {_passes(p)} | {p['identify_ms_p95']:.0f} |"
                f" {_rolled(p)} | {_optional(p, 'identify_ms_p50_upright', 0)} |"
                f" {_optional(p, 'identify_ms_p50_rolled', 0)} |"
            )
        f = d["fit"]
        bars = LOCAL_BARS
        lines += [
            "",
            f"Codes in the IVF lists: `{r['engine']['codes']}`. Fitted growth of the search on"
            f" the IVF points: search ms = {f['a']:.3g} x descriptors^{f['b']:.2f}.",
            "",
            f"Bars (issue 18): index <= {bars['index_kib_per_photo']:g} KiB a photo at every"
            f" size, identify p50 <= {bars['identify_ms_p50']:g} ms up to 20,000 photos and"
            f" <= {LARGE_IDENTIFY_MS:g} ms at {LARGE_PHOTOS:,} (none between):",
            "",
        ]
        for p in d["points"]:
            if not p["engine_index"]:
                continue
            memory = p["index_kib_per_photo"] <= bars["index_kib_per_photo"]
            bar = p["identify_bar_ms"]  # as the run that measured the point stored it
            speed = (
                "no bar at this size"
                if bar is None
                else f"speed {'met' if p['identify_ms_p50'] <= bar else 'NOT met'}"
            )
            lines.append(
                f"- {p['photos']:,} photos: memory {'met' if memory else 'NOT met'}, {speed}"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
