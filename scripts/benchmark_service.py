"""Latency and throughput of the live HTTP service, driven by concurrent clients.

    python scripts/benchmark_service.py [--json reports/service.json] [--clients 16]
        [--gallery-size 2000] [--requests 400] [--data ../shared/data] [--gallery DIR]

1. Framework overhead: a server on an empty gallery answers `POST /v1/identify` of a
   tiny featureless photo, one request at a time; its p50 is what the HTTP stack, upload
   parsing and decoding cost on their own.
2. Load: a server on a gallery of `--gallery-size` photos (the humpback-flukes and
   rightwhale photos of `--data`; synthetic photos when that folder is absent, said so
   in the report) receives `--requests` identifications of other photos from
   `--clients` concurrent clients. Reported: p50/p95/p99 latency as the clients see it,
   requests per second and the error count (any non-200 answer or failed connection).

Writes the JSON given with `--json` and `reports/service.md`. Enrolling the gallery runs
`whaleid enrol` first (several minutes for 2,000 photos); `--gallery DIR` reuses a data
folder enrolled by an earlier run.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from reporting import report_meta
from serving import bench_env, percentiles, server

SETS = ("humpback-flukes", "rightwhale")
OVERHEAD_REQUESTS = 200
OVERHEAD_BAR_MS = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("reports/service.json"))
    parser.add_argument("--markdown", type=Path, default=Path("reports/service.md"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--gallery", type=Path, help="reuse this enrolled data folder")
    parser.add_argument("--gallery-size", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="whaleid-bench-") as tmp:
        root = Path(tmp)
        env = bench_env(root)
        overhead = _overhead(root / "empty", env)
        photos = _photos(args.data, args.gallery_size, root)
        load = None
        if photos is None:
            print(f"load run skipped: fewer than {args.gallery_size} photos under {args.data}")
        else:
            manifest, queries = photos
            gallery = args.gallery or root / "gallery"
            if args.gallery is None:
                print(f"enrolling {args.gallery_size} photos ...", flush=True)
                _enrol(manifest, gallery, env)
            load = _load(gallery, queries, args.clients, args.requests, env)

    result = {
        "meta": {**report_meta(), "data": str(args.data)},
        "overhead": overhead,
        "load": load,
        "overhead_bar_met": overhead["p50_ms"] <= OVERHEAD_BAR_MS,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    args.markdown.write_text(_markdown(result))
    print(args.markdown.read_text())
    return 0 if load is None or load["errors"] == 0 else 1


# ---------------------------------------------------------------------- runs


def _overhead(data: Path, env: dict[str, str]) -> dict:
    tiny = _png(np.full((32, 32, 3), 128, np.uint8))
    with server(data, env) as url, httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(20):  # warm-up: first requests compile and allocate
            client.post("/v1/identify", files={"file": ("tiny.png", tiny)})
        times = []
        for _ in range(OVERHEAD_REQUESTS):
            started = time.perf_counter()
            response = client.post("/v1/identify", files={"file": ("tiny.png", tiny)})
            times.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return {"requests": OVERHEAD_REQUESTS, **percentiles(times)}


def _load(
    gallery: Path, queries: list[bytes], clients: int, requests: int, env: dict[str, str]
) -> dict:
    with server(gallery, env) as url:
        ready = httpx.get(f"{url}/ready", timeout=30).json()

        def one(i: int) -> tuple[float, float | None]:
            """Client-side ms, and the server's own ms for the photo (None on failure)."""
            started = time.perf_counter()
            try:
                response = pool_clients[i % clients].post(
                    "/v1/identify", files={"file": (f"q{i}.jpg", queries[i % len(queries)])}
                )
                served = response.json()["timings_ms"]["total"] if response.is_success else None
            except httpx.HTTPError:
                served = None
            return (time.perf_counter() - started) * 1000, served

        pool_clients = [httpx.Client(base_url=url, timeout=300) for _ in range(clients)]
        try:
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=clients) as pool:
                outcomes = list(pool.map(one, range(requests)))
            elapsed = time.perf_counter() - started
        finally:
            for client in pool_clients:
                client.close()
    times = [t for t, _ in outcomes]
    served = [s for _, s in outcomes if s is not None]
    return {
        "clients": clients,
        "requests": requests,
        "gallery": ready["counts"],
        "errors": requests - len(served),
        "requests_per_s": requests / elapsed,
        **percentiles(times),
        "server_ms_p50": float(np.median(served)) if served else None,
    }


# ---------------------------------------------------------------------- helpers


def _photos(data: Path, size: int, root: Path) -> tuple[Path, list[bytes]] | None:
    """A manifest of `size` gallery photos and the other photos to query with; None when
    the data folder lacks enough photos (it is not distributed with the code)."""
    rows: list[tuple[Path, str, str]] = []
    for name in SETS:
        manifest = data / name / "manifest.csv"
        if manifest.is_file():
            with manifest.open(newline="") as f:
                rows += [
                    (manifest.parent / r["path"], r["individual_id"], r["species"])
                    for r in csv.DictReader(f)
                    if r["individual_id"]
                ]
    if len(rows) <= size:
        return None
    order = np.random.default_rng(0).permutation(len(rows))
    queries = [rows[i][0].read_bytes() for i in order[size:]]
    manifest = root / "gallery.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "individual_id", "species"])
        writer.writerows((str(rows[i][0].resolve()), rows[i][1], rows[i][2]) for i in order[:size])
    return manifest, queries


def _enrol(manifest: Path, data: Path, env: dict[str, str]) -> None:
    whaleid = str(Path(sys.executable).parent / "whaleid")
    subprocess.run([whaleid, "enrol", str(manifest), "--data", str(data)], env=env, check=True)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _markdown(result: dict) -> str:
    meta, load, overhead = result["meta"], result["load"], result["overhead"]
    bar = "met" if result["overhead_bar_met"] else "NOT met"
    lines = [
        "# HTTP service benchmark (weight-free path)",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        "- latency is what the clients measured, queueing included; server on its defaults"
        " except rate limit and access log off",
    ]
    if load is not None:
        lines.append(
            f"- gallery: {', '.join(SETS)} photos from {meta['data']}:"
            f" {load['gallery']['images']} photos, {load['gallery']['individuals']} individuals,"
            f" {load['gallery']['descriptors']} descriptors; queries are the sets' other photos"
        )
    lines += [
        "",
        "| run | requests | clients | p50 ms | p95 ms | p99 ms | requests/s | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    if load is not None:
        lines.append(
            f"| identify, loaded gallery | {load['requests']} | {load['clients']}"
            f" | {load['p50_ms']:.0f} | {load['p95_ms']:.0f} | {load['p99_ms']:.0f}"
            f" | {load['requests_per_s']:.2f} | {load['errors']} |"
        )
    lines += [
        f"| framework overhead (tiny photo, empty gallery) | {overhead['requests']} | 1"
        f" | {overhead['p50_ms']:.1f} | {overhead['p95_ms']:.1f} | {overhead['p99_ms']:.1f}"
        " | | |",
        "",
        f"Framework overhead p50 <= {OVERHEAD_BAR_MS:.0f} ms: {bar}.",
    ]
    if load is not None and load["server_ms_p50"] is not None:
        lines += [
            "",
            f"Under load, the server itself spent a median {load['server_ms_p50']:.0f} ms on a"
            " photo (decoding, features, search: its `timings_ms.total`); the rest of the"
            f" clients' latency is queueing: {load['clients']} clients share"
            " `workers` = 2 threads on 2 cores, so a request waits for the ones ahead of it.",
        ]
    if load is None:
        lines.append(f"The load run was skipped: no data folder at {meta['data']}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
