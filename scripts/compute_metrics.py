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
from evaluation.accuracy_report import NOT_MEASURED, RUNS, TIMED_RUN, markdown, summary


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
    parser.add_argument(
        "--render", action="store_true", help="only rewrite accuracy.md from accuracy.json"
    )
    args = parser.parse_args()
    if args.render:
        saved = json.loads((args.out / "accuracy.json").read_text())
        (args.out / "accuracy.md").write_text(markdown(saved["meta"], saved["runs"], saved["gate"]))
        return 0
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
    (args.out / "accuracy.md").write_text(markdown(meta, results, gate))
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
    print(summary(label, report), flush=True)
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


if __name__ == "__main__":
    raise SystemExit(main())
