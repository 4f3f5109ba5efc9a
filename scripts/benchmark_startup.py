"""Start-up of `whaleid serve`: time to /health and to /ready, on a catalogue whose index
is stale (rebuilt in the background, with the /ready answers seen meanwhile) and on one
whose saved index is current (an ordinary restart).

    python scripts/benchmark_startup.py [--photos 1000] [--runs 3] [--data ../shared/data]
        [--json reports/startup.json] [--replicated 20000 --report reports/startup-large.md]

Enrols `--photos` photos of humpback-flukes and rightwhale into a temporary catalogue
(`whaleid enrol`), then, `--runs` times: deletes the saved index (as after a change of
extractor settings or a lost index folder), starts the server and polls /health and
/ready every 20 ms; then starts it again on the index that start saved. The bar:
/health within 1 s of start. Writes reports/startup.md (or `--report`) and the JSON
given. Exits 0 with a message when the data folder is absent.

With `--replicated N`, the catalogue is grown to N photos with copies of the enrolled
ones as new individuals, every feature perturbed (as `benchmark_scalability` replicates
photos), written straight to its database; its index is built once offline (`whaleid
index rebuild`, timed) and only restarts are timed: a large catalogue's rebuild is the
offline command's work, and a restart is what its users wait for.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import httpx
import numpy as np
from benchmark_scalability import perturbed
from reporting import report_meta
from serving import bench_env, free_port

from embeddings.protocol import GlobalEmbedding, LocalFeatures
from indexer.store import DATABASE_FILE, NewImage, Store

REPORT = Path(__file__).resolve().parents[1] / "reports" / "startup.md"
SETS = ("humpback-flukes", "rightwhale")
HEALTH_BAR_S = 1.0
EMBEDDING_NOISE = 0.02
"""Sigma of the noise added to each component of a replicated photo's unit embedding: a
noise vector of norm 0.7 over Lite0's 1 280 dimensions, a new individual, not a copy."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--replicated", type=int, default=0, help="grow the catalogue to this many photos"
    )
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    if not all((args.data / name / "manifest.csv").is_file() for name in SETS):
        print(f"skipped: no data folder at {args.data} (it is not distributed)")
        return 0
    with tempfile.TemporaryDirectory(prefix="whaleid-startup-") as tmp:
        root = Path(tmp)
        env = bench_env(root)
        catalogue = root / "data"
        manifest = _manifest(args.data, args.photos, root)
        print(f"enrolling {args.photos} photos ...", flush=True)
        whaleid = str(Path(sys.executable).parent / "whaleid")
        subprocess.run(
            [whaleid, "enrol", str(manifest), "--data", str(catalogue)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if args.replicated:
            result = _large(whaleid, catalogue, env, args.photos, args.replicated, args.runs)
        else:
            runs, restarts = [], []
            for _ in range(args.runs):
                runs.append(_start(whaleid, catalogue, env, stale=True))
                restarts.append(_start(whaleid, catalogue, env, stale=False))
            result = {
                "meta": report_meta(),
                "photos": args.photos,
                "runs": runs,
                "health_s_median": statistics.median(r["health_s"] for r in runs),
                "ready_s_median": statistics.median(r["ready_s"] for r in runs),
                "restarts": restarts,
                "restart_ready_s_median": statistics.median(r["ready_s"] for r in restarts),
            }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    args.report.write_text(_large_markdown(result) if args.replicated else _markdown(result))
    print(f"wrote {args.report}")
    return 0


def _large(
    whaleid: str, catalogue: Path, env: dict[str, str], real: int, photos: int, runs: int
) -> dict:
    """Grow the catalogue to `photos`, build its index offline, then time `runs` restarts."""
    print(f"replicating {real} photos to {photos} ...", flush=True)
    _replicate(catalogue / DATABASE_FILE, photos, np.random.default_rng(0))
    print("building the index (whaleid index rebuild) ...", flush=True)
    started = time.monotonic()
    subprocess.run(
        [whaleid, "index", "rebuild", "--data", str(catalogue)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    rebuild_s = time.monotonic() - started
    print(f"timing {runs} restarts ...", flush=True)
    restarts = [_start(whaleid, catalogue, env, stale=False) for _ in range(runs)]
    return {
        "meta": report_meta(),
        "photos": photos,
        "real_photos": real,
        "rebuild_s": rebuild_s,
        "index_bytes": sum(
            p.stat().st_size for p in (catalogue / "index").rglob("*") if p.is_file()
        ),
        "database_bytes": (catalogue / DATABASE_FILE).stat().st_size,
        "restarts": restarts,
        "health_s_median": statistics.median(r["health_s"] for r in restarts),
        "restart_ready_s_median": statistics.median(r["ready_s"] for r in restarts),
    }


def _replicate(database: Path, photos: int, rng: np.random.Generator) -> None:
    """Copies of the catalogue's photos, in turn, as new individuals until it holds
    `photos`: every feature of every extractor perturbed, no photo file."""
    with closing(sqlite3.connect(database)) as conn:
        kinds = conn.execute("SELECT DISTINCT extractor, version FROM features").fetchall()
    store = Store.open(database)
    try:
        sources = sorted(store.image_labels())
        for number in range(len(sources), photos):
            source = store.image(sources[number % len(sources)])
            assert source is not None
            features = []
            for extractor, version in kinds:
                row = store.feature(source.id, extractor, version)
                if row is not None:
                    features.append((extractor, version, _perturbed_feature(row.features, rng)))
            individual = store.individual(source.individual_id)
            store.add_image(
                NewImage(
                    sha256=hashlib.sha256(f"copy-{number}".encode()).hexdigest(),
                    source_name=f"copy-{number}-{source.source_name}",
                    individual_id=f"{source.individual_id}-copy-{number}",
                    width=source.width,
                    height=source.height,
                ),
                individual.species if individual else None,
                features,
            )
            if (number + 1) % 5000 == 0:
                print(f"  {number + 1} of {photos}", flush=True)
    finally:
        store.close()


def _perturbed_feature(
    features: LocalFeatures | GlobalEmbedding, rng: np.random.Generator
) -> LocalFeatures | GlobalEmbedding:
    if isinstance(features, LocalFeatures):
        return perturbed(features, rng)
    vector = features.vector + rng.normal(0, EMBEDDING_NOISE, features.vector.shape)
    return GlobalEmbedding(vector=(vector / np.linalg.norm(vector)).astype(np.float32))


def _manifest(data: Path, photos: int, root: Path) -> Path:
    rows = []
    for name in SETS:
        with open(data / name / "manifest.csv", newline="", encoding="utf-8-sig") as f:
            for row in csv.DictReader(f):
                if row.get("individual_id"):
                    rows.append(
                        {
                            "path": str((data / name / row["path"]).resolve()),
                            "individual_id": f"{name}:{row['individual_id']}",
                            "species": row.get("species", ""),
                        }
                    )
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "individual_id", "species"])
        writer.writeheader()
        writer.writerows(rows[:photos])
    return manifest


def _start(whaleid: str, catalogue: Path, env: dict[str, str], *, stale: bool) -> dict:
    if stale:
        shutil.rmtree(catalogue / "index", ignore_errors=True)  # rebuilt at start
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    process = subprocess.Popen(
        [whaleid, "serve", "--data", str(catalogue), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    health = ready = None
    starting: list[dict] = []
    try:
        while ready is None and time.monotonic() - started < 1800:
            now = time.monotonic() - started
            try:
                if health is None and httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    health = now
                if health is not None:
                    answer = httpx.get(f"{url}/ready", timeout=5)
                    if answer.status_code == 200:
                        ready = time.monotonic() - started
                    elif len(starting) < 200:
                        starting.append({"s": round(now, 2), **answer.json()})
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    finally:
        process.terminate()
        process.wait(timeout=120)
    if health is None or ready is None:
        raise SystemExit("the server did not become ready")
    return {
        "health_s": health,
        "ready_s": ready,
        "starting": starting[:: max(1, len(starting) // 10)],
    }


def _markdown(r: dict) -> str:
    meta = r["meta"]
    ok = r["health_s_median"] <= HEALTH_BAR_S
    lines = [
        "# Start-up: a stale index, and a restart",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        f"- catalogue: {r['photos']} photos of {', '.join(SETS)}; the saved index deleted"
        " before each first start, so the server rebuilds it (and fits the calibration if"
        " the database has none) in the background; each restart then finds the index"
        " that start saved",
        "",
        "| run | /health answered (s) | /ready 200 (s) | restart: /health (s) | /ready (s) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {i} | {run['health_s']:.2f} | {run['ready_s']:.1f} | {again['health_s']:.2f} |"
        f" {again['ready_s']:.1f} |"
        for i, (run, again) in enumerate(zip(r["runs"], r["restarts"], strict=True), start=1)
    ]
    lines += [
        "",
        f"Median: /health after {r['health_s_median']:.2f} s (bar <= {HEALTH_BAR_S:.0f} s:"
        f" {'met' if ok else 'NOT met'}), /ready after {r['ready_s_median']:.1f} s; on a"
        f" restart with the saved index, /ready after {r['restart_ready_s_median']:.1f} s.",
        "",
        "What /ready answered meanwhile (first run, a sample):",
        "",
    ]
    lines += [
        f"- {s['s']} s: 503 `{s.get('status')}`: {s.get('detail')}"
        for s in r["runs"][0]["starting"]
    ]
    return "\n".join(lines) + "\n"


def _large_markdown(r: dict) -> str:
    meta = r["meta"]
    lines = [
        f"# Start-up of a {r['photos']:,}-photo catalogue: a restart",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        (
            f"- catalogue: {r['real_photos']:,} real photos of {', '.join(SETS)} enrolled"
            f" with `whaleid enrol`, then *replicated* to {r['photos']:,}: copies as new"
            " individuals, every stored feature perturbed, written to the database (no"
            f" photo files); database {r['database_bytes'] / 2**30:.1f} GiB, saved index"
            f" {r['index_bytes'] / 2**30:.1f} GiB"
        ),
        f"- index built once offline by `whaleid index rebuild`: {r['rebuild_s'] / 60:.1f} min",
        *([f"- {r['note']}"] if r.get("note") else []),
        "",
        "| restart | /health answered (s) | /ready 200 (s) |",
        "|---|---|---|",
    ]
    lines += [
        f"| {i} | {run['health_s']:.2f} | {run['ready_s']:.1f} |"
        for i, run in enumerate(r["restarts"], start=1)
    ]
    lines += [
        "",
        (
            f"Median: /health after {r['health_s_median']:.2f} s, /ready after"
            f" {r['restart_ready_s_median']:.1f} s."
        ),
        "",
    ]
    seen = [(i, run["starting"]) for i, run in enumerate(r["restarts"], start=1) if run["starting"]]
    lines += (
        [
            f"What /ready answered meanwhile (restart {seen[0][0]}, a sample):",
            "",
            *(f"- {s['s']} s: 503 `{s.get('status')}`: {s.get('detail')}" for s in seen[0][1]),
        ]
        if seen
        else ["/ready answered 200 at its first poll after /health, in each restart."]
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
