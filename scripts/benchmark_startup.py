"""Start-up of `whaleid serve`: time to /health and to /ready, on a catalogue whose index
is stale (rebuilt in the background, with the /ready answers seen meanwhile) and on one
whose saved index is current (an ordinary restart).

    python scripts/benchmark_startup.py [--photos 1000] [--runs 3] [--data ../shared/data]
        [--json reports/startup.json]

Enrols `--photos` photos of humpback-flukes and rightwhale into a temporary catalogue
(`whaleid enrol`), then, `--runs` times: deletes the saved index (as after a change of
extractor settings or a lost index folder), starts the server and polls /health and
/ready every 20 ms; then starts it again on the index that start saved. The bar:
/health within 1 s of start. Writes reports/startup.md and the JSON given. Exits 0 with
a message when the data folder is absent.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from reporting import report_meta
from serving import bench_env, free_port

REPORT = Path(__file__).resolve().parents[1] / "reports" / "startup.md"
SETS = ("humpback-flukes", "rightwhale")
HEALTH_BAR_S = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
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
    REPORT.write_text(_markdown(result))
    print(f"wrote {REPORT}")
    return 0


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


if __name__ == "__main__":
    raise SystemExit(main())
