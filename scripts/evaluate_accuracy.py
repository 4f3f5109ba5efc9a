"""Identification accuracy, speed and memory on the development sets in ../shared/data.

Runs `whaleid evaluate` (leave-one-out, see ../shared/data/README.md) once per set, each
in its own process so that its peak memory is its own, and writes
`reports/accuracy.json` and `reports/accuracy.md`.

    python scripts/evaluate_accuracy.py [--data ../shared/data] [--out reports]

Skips cleanly (exit 0, a message) when the data folder is absent: the photos are not
ours to redistribute and a fresh clone does not have them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from reporting import report_meta

# (label, manifests, extra arguments). The last run carries the latency and memory bar,
# so it runs alone, after the others, whatever --jobs says.
RUNS: list[tuple[str, list[str], list[str]]] = [
    ("humpback-flukes", ["humpback-flukes"], []),
    ("rightwhale", ["rightwhale"], []),
    ("happywhale", ["happywhale"], []),
    ("humpback-flukes open set", ["humpback-flukes"], ["--open-set"]),
]
TIMED_RUN = ("humpback-flukes + rightwhale (one gallery)", ["humpback-flukes", "rightwhale"], [])
BARS = {
    "humpback-flukes": ("top1", 0.80),
    "rightwhale": ("top1", 0.60),
    "happywhale": ("top1", 0.60),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--only", action="append", help="run only runs with this label")
    parser.add_argument(
        "--jobs", type=int, default=1, help="untimed runs to execute at once (default 1)"
    )
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: no data folder at {args.data} (it is not distributed)")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    selected = [r for r in RUNS if not args.only or r[0] in args.only]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        reports = list(pool.map(lambda run: _run(args.data, *run), selected))
    if not args.only or TIMED_RUN[0] in args.only:
        selected.append(TIMED_RUN)
        reports.append(_run(args.data, *TIMED_RUN))
    results = {run[0]: report for run, report in zip(selected, reports, strict=True)}
    previous = args.out / "accuracy.json"
    if args.only and previous.exists():
        # A partial re-run replaces its own rows and keeps the others with their dates.
        earlier = json.loads(previous.read_text())
        for report in earlier["runs"].values():
            report.setdefault("date", earlier["meta"]["date"])
        results = {**earlier["runs"], **results}
        results = {
            label: results[label]
            for label in [*(r[0] for r in RUNS), TIMED_RUN[0]]
            if label in results
        }
    meta = report_meta()
    (args.out / "accuracy.json").write_text(json.dumps({"meta": meta, "runs": results}, indent=2))
    (args.out / "accuracy.md").write_text(_markdown(meta, results))
    print(f"wrote {args.out / 'accuracy.md'}")
    return 0


def _run(data: Path, label: str, sets: list[str], extra: list[str]) -> dict:
    """One `whaleid evaluate` in its own process; returns its JSON report."""
    manifests = [str(data / name / "manifest.csv") for name in sets]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        command = ["whaleid", "evaluate", *manifests, *extra, "--json", str(out)]
        print("$", " ".join(command), flush=True)
        started = time.perf_counter()
        # Progress bars of parallel runs would interleave: keep stderr, show it on failure.
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", *command[1:]],
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"{label} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        report = json.loads(out.read_text())
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["command"] = " ".join(command[:-2] + ["--json", "OUT.json"])
    print(_summary(label, report), flush=True)
    return report


def _summary(label: str, r: dict) -> str:
    text = (
        f"{label}: top1={r['top1']:.3f} top5={r['top5']:.3f} map5={r['map5']:.3f}"
        f" n={r['n_queries']} query_ms_p50={r['query_ms_p50']:.0f}"
        f" peak_rss={r['peak_rss_mib']:.0f} MiB"
    )
    if r.get("open_set"):
        text += (
            f" new_individual precision={r['new_individual_precision']:.3f}"
            f" recall={r['new_individual_recall']:.3f}"
        )
    return text


def _markdown(meta: dict, results: dict) -> str:
    lines = [
        "# Identification accuracy (weight-free RootSIFT path)",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        "- protocol: leave-one-out of `../shared/data/README.md`; query time includes feature"
        " extraction; peak memory is the evaluating process's maximum RSS. The last run"
        " (one gallery) ran alone; the others may have shared the 2 cores.",
        "",
        "| run | queries | top-1 | top-5 | MAP@5 | query ms p50 | p95 | peak MiB | bar |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        bar = ""
        if label in BARS:
            metric, target = BARS[label]
            bar = f"{metric} >= {target}: {'met' if r[metric] >= target else 'NOT met'}"
        if label.endswith("(one gallery)"):
            ok = r["query_ms_p50"] <= 200 and r["peak_rss_mib"] < 2048
            bar = f"p50 <= 200 ms and < 2 GiB: {'met' if ok else 'NOT met'}"
        if r.get("open_set"):
            p, rc = r["new_individual_precision"] or 0, r["new_individual_recall"] or 0
            bar = (
                f"new_individual P={p:.3f} R={rc:.3f} (bar R >= 0.7 at P >= 0.7:"
                f" {'met' if p >= 0.7 and rc >= 0.7 else 'NOT met'})"
            )
        lines.append(
            f"| {label} | {r['n_queries']} | {r['top1']:.3f} | {r['top5']:.3f} |"
            f" {r['map5']:.3f} | {r['query_ms_p50']:.0f} | {r['query_ms_p95']:.0f} |"
            f" {r['peak_rss_mib']:.0f} | {bar} |"
        )
    lines += ["", "Per species (top-1):", ""]
    for label, r in results.items():
        parts = ", ".join(
            f"{name} {s['top1']:.2f} (n={s['n_queries']})" for name, s in r["per_species"].items()
        )
        lines.append(f"- {label}: {parts}")
    for label, r in results.items():
        if r.get("new_individual_curve"):
            lines += [
                "",
                f"Open set, {label}: `new_individual` precision / recall if"
                " `engine.new_individual_threshold` were set to each value (the run used"
                f" {r['engine']['new_individual_threshold']}):",
                "",
                "| threshold | precision | recall |",
                "|---|---|---|",
            ]
            lines += [
                f"| {p['threshold']:.2f} | {p['precision']:.3f} | {p['recall']:.3f} |"
                for p in r["new_individual_curve"]
            ]
    lines += ["", "Commands of each run:", ""]
    lines += [
        f"- {label}: `{r['command']}` ({r['wall_s']} s, {r.get('date', meta['date'])})"
        for label, r in results.items()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
