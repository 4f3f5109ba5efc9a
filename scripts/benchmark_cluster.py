"""Throughput of enrolment and batch identification on one process against a local
two-worker Ray cluster, and what it predicts for a 1 M-photo archive.

    python scripts/benchmark_cluster.py [--data ../shared/data] [--sets humpback-flukes]
        [--photos 150] [--queries 75] [--runs 3] [--json reports/cluster.json] [--render]

For each set: enrols its first `--photos` labelled photos into a fresh catalogue, then
identifies the next `--queries` photos, once on one process and once with every photo
sent to a Ray cluster of two one-CPU nodes (a head and a worker process on loopback,
started here), `--runs` times each; the catalogue is weight-free (no model installed).
The timings cover what `whaleid enrol` and `whaleid identify --out` do per photo (decode,
describe or identify, store or write), not opening the catalogue or the calibration
refit after an enrolment. The cluster's runs include connecting and starting its actors.
Writes reports/cluster.md and the JSON given. Exits 0 with a message when the data
folder, or Ray (`whaleid[cluster]`), is absent.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from reporting import report_meta

REPORT = Path(__file__).resolve().parents[1] / "reports" / "cluster.md"
ARCHIVE = 1_000_000
"""Photos of the archive the per-photo cost is scaled to."""
DAY_S = 86_400


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--sets", default="humpback-flukes")
    parser.add_argument("--photos", type=int, default=150)
    parser.add_argument("--queries", type=int, default=75)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--render", action="store_true", help="only write the report again from --json"
    )
    args = parser.parse_args()
    if args.render:
        REPORT.write_text(_markdown(json.loads(args.json.read_text())))
        return 0
    sets = args.sets.split(",")
    if not all((args.data / name / "manifest.csv").is_file() for name in sets):
        print(f"skipped: no data folder at {args.data} (it is not distributed)")
        return 0
    # Loopback only: Ray otherwise advertises the machine's outward address. Read by Ray
    # when imported.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        print("skipped: Ray is not installed (pip install 'whaleid[cluster]')")
        return 0
    node = {"num_cpus": 1, "object_store_memory": 200 * 2**20, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    try:
        rows = [
            _measure(args.data / name, args.photos, args.queries, args.runs, cluster.address)
            for name in sets
        ]
    finally:
        cluster.shutdown()
    result = {"meta": report_meta(), "workers": 2, "runs": args.runs, "sets": rows}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    REPORT.write_text(_markdown(result))
    print(REPORT.read_text())
    return 0


def _measure(folder: Path, photos: int, queries: int, runs: int, address: str) -> dict:
    from service.config import Settings

    with (folder / "manifest.csv").open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["individual_id"]]
    enrolled = rows[:photos]
    asked = [str(folder / r["path"]) for r in rows[photos : photos + queries]]
    timings: dict[str, list[float]] = {}
    cpu_s: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="whaleid-cluster-") as tmp:
        for run in range(runs):
            for where in ("one process", "cluster"):
                settings = Settings(data_dir=f"{tmp}/{where.replace(' ', '-')}-{run}")
                on = address if where == "cluster" else None
                seconds, cpu = _enrol(settings, folder, enrolled, on)
                timings.setdefault(f"enrol, {where}", []).append(len(enrolled) / seconds)
                cpu_s.setdefault(f"enrol, {where}", []).append(cpu / len(enrolled))
                seconds, cpu = _identify(settings, asked, on)
                timings.setdefault(f"identify, {where}", []).append(len(asked) / seconds)
                cpu_s.setdefault(f"identify, {where}", []).append(cpu / len(asked))
                print(f"{folder.name} run {run + 1} {where}: done", flush=True)
    rates = {key: statistics.median(values) for key, values in timings.items()}
    return {
        "set": folder.name,
        "enrolled": len(enrolled),
        "identified": len(asked),
        "photos_per_s": rates,
        "cpu_s_per_photo": {key: statistics.median(values) for key, values in cpu_s.items()},
        "all_runs": timings,
    }


def _enrol(
    settings: object, folder: Path, rows: list[dict], address: str | None
) -> tuple[float, float]:
    """Seconds, and CPU seconds of this process, to enrol `rows` into a new catalogue, as
    `whaleid enrol` does."""
    from cluster.session import connected
    from embeddings.images import load_photo_file
    from service.cli._data import opened_gallery
    from service.cluster_jobs import described_on_cluster

    paths = [folder / r["path"] for r in rows]
    with opened_gallery(settings, create=True) as gallery:
        start, cpu = time.perf_counter(), time.process_time()
        if address is None:
            for path, row in zip(paths, rows, strict=True):
                photo = load_photo_file(path, max_pixels=settings.max_image_pixels)
                gallery.catalogue.enrol(photo, row["individual_id"], source_name=path.name)
        else:
            with connected(address) as cpus:
                described = described_on_cluster(settings, cpus)(paths)
                for path, row, photo in zip(paths, rows, described, strict=True):
                    if isinstance(photo, Exception):  # no photo of the set is refused
                        raise photo
                    gallery.catalogue.enrol_described(
                        photo, row["individual_id"], source_name=path.name
                    )
        return time.perf_counter() - start, time.process_time() - cpu


def _identify(settings: object, paths: list[str], address: str | None) -> tuple[float, float]:
    """Seconds, and CPU seconds of this process, to identify `paths` against the
    catalogue, as `whaleid identify --out` does."""
    from cluster.batches import run_on_actors
    from cluster.session import connected
    from service.cli._data import opened_gallery
    from service.cluster_jobs import identify_job

    with opened_gallery(settings) as gallery:
        gallery.save()
        start, cpu = time.perf_counter(), time.process_time()
        if address is None:
            for path in paths:
                gallery.pipeline.identify(Path(path).read_bytes(), name=path)
        else:
            with connected(address) as cpus:
                for data in run_on_actors(paths, partial(identify_job, settings, None), cpus):
                    pickle.loads(data)
        return time.perf_counter() - start, time.process_time() - cpu


def _markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [
        "# Throughput: one process against a local Ray cluster",
        "",
        f"{meta['date']}, {meta['machine']}.",
        f"Command: `{meta['command']}`.",
        "",
        (
            f"Photos per second, median of {result['runs']} runs. The cluster is"
            f" {result['workers']} one-CPU nodes (a head and a worker process, loopback) on"
            " the same machine, with the command's own process beside them; the catalogue is"
            " weight-free. Cluster runs include connecting and starting the actors."
        ),
        "",
        "| set | work | photos | one process | 2-worker cluster | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["sets"]:
        rates = row["photos_per_s"]
        for work, count in (("enrol", row["enrolled"]), ("identify", row["identified"])):
            one, many = rates[f"{work}, one process"], rates[f"{work}, cluster"]
            lines.append(
                f"| {row['set']} | {work} | {count} | {one:.2f} | {many:.2f} | {many / one:.2f}x |"
            )
    lines += [
        "",
        (
            "One process already keeps more than one core busy (OpenCV's own threads in SIFT),"
            " while each cluster actor is held to the one CPU Ray gives it; on this 2-core"
            " machine the command's own process (storing, or writing answers) shares the same"
            " cores. The speed-up of a cluster of separate machines is better predicted by the"
            " CPU cost below than by this table."
        ),
        "",
        "## What it predicts for 1 M photos",
        "",
    ]
    for row in result["sets"]:
        for work in ("enrol", "identify"):
            cpu = row["cpu_s_per_photo"][f"{work}, one process"]
            driver = row["cpu_s_per_photo"][f"{work}, cluster"]
            one = row["photos_per_s"][f"{work}, one process"]
            cpu_hours = ARCHIVE * cpu / 3600
            lines.append(
                f"- {row['set']}, {work}: {1000 * cpu:.0f} ms of CPU a photo on one process"
                f" ({1000 / one:.0f} ms of wall time), so {cpu_hours:,.0f} CPU-hours for"
                f" {ARCHIVE:,} photos: about {cpu_hours / 24:.0f} worker CPUs to finish in a"
                " day if they scale linearly. The command's own process, the single writer,"
                f" spent {1000 * driver:.0f} ms of CPU a photo on the cluster runs, so one"
                f" keeps up with about {1 / driver:.0f} photos a second."
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
