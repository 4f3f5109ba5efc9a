"""End-to-end latency of one photo through the HTTP service, weight-free and deep paths.

    python scripts/benchmark_latency.py [--json reports/latency.json] [--photos 300]
        [--requests 100] [--data ../shared/data]

One gallery serves both paths: `--photos` humpback-flukes photos enrolled with the deep
embedder loaded (so each has RootSIFT features and an embedding), plus 13 837 random
unit centroids (the size of the Happywhale import). The deep models have random weights
in the real architectures (ONNX Runtime; speed does not depend on the values), so the
deep path's answers are meaningless and only its timing is measured. Each path gets its
own `whaleid serve` on that folder, with and without `models_dir`, and answers
`--requests` identifications of other photos sent one at a time by one client: p50, p95
and p99 as the client sees them, and the server's own stage timings.

Without `../shared/data` the photos are synthetic textures, and the report says so.
Writes the JSON given with `--json` and `reports/latency.md`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image
from reporting import report_meta
from serving import bench_env, percentiles, server

from embeddings.arcface import ArcFaceEmbedder
from embeddings.images import load_photo
from embeddings.reference.clip_vit import Clip
from embeddings.reference.efficientnet import ArcFaceNet
from embeddings.reference.onnx_export import export_arcface, export_clip_gate
from indexer.gallery import Gallery

REPORT = Path(__file__).resolve().parents[1] / "reports" / "latency.md"
CENTROIDS = 13_837


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--photos", type=int, default=300, help="gallery photos")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    gallery_photos, queries, source = _photos(args.data, args.photos, args.requests)
    with tempfile.TemporaryDirectory(prefix="whaleid-latency-") as tmp:
        root = Path(tmp)
        models = root / "models"
        print("exporting random-weight models ...", file=sys.stderr)
        torch.manual_seed(0)
        export_arcface(ArcFaceNet(classes=4), models / "arcface-effb4", source="random")
        export_clip_gate(Clip(), models / "clip-gate", source="random", threshold=0.0)
        data = root / "data"
        _enrol(data, models, gallery_photos)
        paths = {}
        for label, env in (
            ("weight-free", bench_env(root)),
            ("deep (random weights)", bench_env(root, models)),
        ):
            print(f"serving the {label} path ...", file=sys.stderr)
            paths[label] = _measure(data, env, queries)
    results = {
        **report_meta(),
        "photos": source,
        "gallery_photos": len(gallery_photos),
        "centroids": CENTROIDS,
        "requests": len(queries),
        "paths": paths,
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    REPORT.write_text(_markdown(results))
    print(REPORT.read_text())
    return 0


def _photos(
    data: Path, gallery: int, queries: int
) -> tuple[list[tuple[bytes, str]], list[bytes], str]:
    manifest = data / "humpback-flukes" / "manifest.csv"
    if manifest.is_file():
        with manifest.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["individual_id"]]
        order = np.random.default_rng(0).permutation(len(rows))
        chosen = [rows[i] for i in order[: gallery + queries]]
        files = [((manifest.parent / r["path"]).read_bytes(), r["individual_id"]) for r in chosen]
        return files[:gallery], [b for b, _ in files[gallery:]], f"real ({manifest.parent})"
    rng = np.random.default_rng(0)
    files = []
    for i in range(gallery + queries):
        pixels = (rng.random((300, 480, 3)) * 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        files.append((buffer.getvalue(), f"synthetic-{i % 100}"))
    return (
        files[:gallery],
        [b for b, _ in files[gallery:]],
        "synthetic textures (no ../shared/data)",
    )


def _enrol(data: Path, models: Path, photos: list[tuple[bytes, str]]) -> None:
    embedder = ArcFaceEmbedder(models / "arcface-effb4")
    rng = np.random.default_rng(0)
    centroids = rng.standard_normal((CENTROIDS, embedder.dim)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    with Gallery.open(data, embedder=embedder) as gallery:
        for i, (content, individual) in enumerate(photos, start=1):
            gallery.catalogue.enrol(load_photo(content), individual)
            if i % 50 == 0:
                print(f"enrolled {i}/{len(photos)}", file=sys.stderr)
        gallery.catalogue.import_centroids(
            [(f"centroid-{i:05d}", None, centroids[i]) for i in range(CENTROIDS)]
        )
        gallery.rebuild()


def _measure(data: Path, env: dict[str, str], queries: list[bytes]) -> dict:
    with server(data, env) as url, httpx.Client(base_url=url, timeout=300) as client:
        ready = client.get("/ready").json()
        for content in queries[:3]:  # warm-up: first calls allocate
            client.post("/v1/identify", files={"file": ("q.jpg", content)})
        times, stages = [], []
        for content in queries:
            started = time.perf_counter()
            response = client.post("/v1/identify", files={"file": ("q.jpg", content)})
            times.append(1000 * (time.perf_counter() - started))
            response.raise_for_status()
            stages.append(response.json()["timings_ms"])
    names = sorted({k for s in stages for k in s})
    return {
        "identification": ready["identification"],
        "models": ready["models"],
        "counts": ready["counts"],
        **percentiles(times),
        "server_stages_ms_p50": {
            k: float(np.median([s[k] for s in stages if k in s])) for k in names
        },
    }


def _markdown(r: dict) -> str:
    lines = [
        "# End-to-end latency per photo through the HTTP service",
        "",
        f"- command: `{r['command']}`",
        f"- date: {r['date']}",
        f"- machine: {r['machine']}",
        f"- gallery: {r['gallery_photos']} photos ({r['photos']}) and {r['centroids']:,}"
        " random unit centroids; queries: other photos of the same set, one at a time from"
        f" one client, {r['requests']} per path after 3 warm-up requests",
        "- deep path: random weights in the real architectures through ONNX Runtime (timing"
        " only; its answers mean nothing)",
        "",
        "| path | p50 ms | p95 ms | p99 ms | server stages, p50 ms |",
        "|---|---|---|---|---|",
    ]
    for label, p in r["paths"].items():
        stages = ", ".join(f"{k} {v:.0f}" for k, v in p["server_stages_ms_p50"].items())
        lines.append(
            f"| {label} | {p['p50_ms']:.0f} | {p['p95_ms']:.0f} | {p['p99_ms']:.0f} | {stages} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
