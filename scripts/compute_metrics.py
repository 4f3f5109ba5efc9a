"""Identification and gate metrics, speed and memory on the sets in ../shared/data.

Runs `whaleid evaluate` (leave-one-out, see ../shared/data/README.md) once per identified
set, each in its own process so that its peak memory is its own: top-1, top-5, MAP@5,
open-set `new_individual` precision and recall, per species. Then scores the `gate`
manifest with the installed cetacean gate (TP/FP/TN/FN, TPR, TNR, precision, F1,
ROC-AUC at the model's threshold), or says why the gate was not measured. Writes
`reports/accuracy.json` and `reports/accuracy.md`.

    python scripts/compute_metrics.py [--data ../shared/data] [--out reports]
        [--models models] [--jobs 2] [--only LABEL]

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

import msgspec
from reporting import report_meta

from embeddings.gate import GATE_MODEL, ClipGate
from embeddings.gate_calibration import gate_metrics, score_manifest
from embeddings.model_files import ModelFileError

# (label, manifests, extra arguments). The last run carries the latency and memory bar,
# so it runs alone, after the others, whatever --jobs says.
RUNS: list[tuple[str, list[str], list[str]]] = [
    ("humpback-flukes", ["humpback-flukes"], []),
    ("rightwhale", ["rightwhale"], []),
    ("happywhale", ["happywhale"], []),
    ("humpback-flukes open set", ["humpback-flukes"], ["--open-set"]),
]
TIMED_RUN = ("humpback-flukes + rightwhale (one gallery)", ["humpback-flukes", "rightwhale"], [])
NOT_MEASURED = {
    "dolphin-fins": "one identified individual (1056) among unidentified fins: leave-one-out"
    " top-1 would be 1.0 by construction, and its impostor protocol is not implemented",
}
"""Sets of ../shared/data left out of the identification runs, and why."""
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
    parser.add_argument(
        "--models", type=Path, help="models folder; its clip-gate/ is scored on the gate set"
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
    gate = _gate(args.data / "gate" / "manifest.csv", args.models)
    report = {"meta": meta, "runs": results, "gate": gate, "not_measured": NOT_MEASURED}
    (args.out / "accuracy.json").write_text(json.dumps(report, indent=2))
    (args.out / "accuracy.md").write_text(_markdown(meta, results, gate))
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


def _gate(manifest: Path, models: Path | None) -> dict:
    """Gate metrics at the installed gate's threshold, or why there are none."""
    if models is None or not (models / GATE_MODEL).is_dir():
        return {
            "measured": False,
            "why": "no gate model installed (pass --models with an exported clip-gate/;"
            " real CLIP weights cannot be downloaded in the development workplace)",
        }
    if not manifest.is_file():
        return {"measured": False, "why": f"no gate manifest at {manifest}"}
    try:
        gate = ClipGate(models / GATE_MODEL)
    except ModelFileError as exc:
        return {"measured": False, "why": str(exc)}
    scored = score_manifest(gate.score, manifest)
    metrics = gate_metrics(scored.scores, scored.cetacean, gate.threshold)
    return {
        "measured": True,
        "model": f"{gate.name}-{gate.version}",
        "threshold_source": gate.calibration,
        "photos": len(scored.scores),
        "unreadable": scored.unreadable,
        **msgspec.to_builtins(metrics),
    }


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


def _markdown(meta: dict, results: dict, gate: dict) -> str:
    lines = [
        "# Identification and gate metrics (weight-free RootSIFT path)",
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
    lines += ["", "Not measured:", ""]
    lines += [f"- {name}: {why}" for name, why in NOT_MEASURED.items()]
    lines += ["", "## Cetacean gate", ""]
    if gate["measured"]:
        lines += [
            f"Model {gate['model']} at threshold {gate['threshold']:.3f}"
            f" ({gate['threshold_source']}), {gate['photos']} photos of the gate set:",
            "",
            "| TP | FP | TN | FN | TPR | TNR | precision | F1 | ROC-AUC |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {gate['tp']} | {gate['fp']} | {gate['tn']} | {gate['fn']} | {gate['tpr']:.3f} |"
            f" {gate['tnr']:.3f} | {gate['precision']:.3f} | {gate['f1']:.3f} |"
            f" {gate['roc_auc']:.3f} |",
        ]
    else:
        lines.append(f"Not measured: {gate['why']}.")
    lines += ["", "Commands of each run:", ""]
    lines += [
        f"- {label}: `{r['command']}` ({r['wall_s']} s, {r.get('date', meta['date'])})"
        for label, r in results.items()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
