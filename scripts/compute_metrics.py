"""Identification and gate metrics, speed and memory on the sets in ../shared/data.

Runs `whaleid evaluate` (leave-one-out, see ../shared/data/README.md) once per run of
`evaluation.accuracy_report.RUNS`, each in its own process so that its peak memory is its
own: top-1, top-5, MAP@5, open-set `new_individual` precision and recall, per species.
Runs of the default install get a data folder with the Lite0 network built in it
(`whaleid models install`); the others run weight-free. Then scores the `gate` manifest
with the default Lite0 gate, or the CLIP gate of `--models` when it has one (TP/FP/TN/FN,
TPR, TNR, precision, F1, ROC-AUC at the model's threshold), and the share of each
identified set the gate accepts. Writes `reports/accuracy.json` and
`reports/accuracy.md`.

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
from embeddings.lite0 import Lite0Gate, Lite0Net, install_lite0, lite0_folder
from embeddings.model_files import ModelFileError
from evaluation.accuracy_report import (
    ACCEPTANCE_SETS,
    NOT_MEASURED,
    RUNS,
    TIMED_RUN,
    Run,
    markdown,
    summary,
)


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
    selected = [r for r in RUNS if not args.only or r.label in args.only]
    with tempfile.TemporaryDirectory(prefix="whaleid-metrics-") as tmp:
        folders = {False: Path(tmp) / "weight-free", True: Path(tmp) / "default"}
        install_lite0(lite0_folder(folders[True]))
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            reports = list(pool.map(lambda run: _run(args.data, run, folders[run.lite0]), selected))
        if not args.only or TIMED_RUN.label in args.only:
            selected.append(TIMED_RUN)
            reports.append(_run(args.data, TIMED_RUN, folders[TIMED_RUN.lite0]))
        gate = _gate(args.data, args.models, folders[True])
    results = {run.label: report for run, report in zip(selected, reports, strict=True)}
    previous = args.out / "accuracy.json"
    if args.only and previous.exists():
        # A partial re-run replaces its own rows and keeps the others with their dates.
        earlier = json.loads(previous.read_text())
        for report in earlier["runs"].values():
            report.setdefault("date", earlier["meta"]["date"])
        results = {**earlier["runs"], **results}
        results = {
            label: results[label]
            for label in [*(r.label for r in RUNS), TIMED_RUN.label]
            if label in results
        }
    meta = report_meta()
    report = {"meta": meta, "runs": results, "gate": gate, "not_measured": NOT_MEASURED}
    (args.out / "accuracy.json").write_text(json.dumps(report, indent=2))
    (args.out / "accuracy.md").write_text(markdown(meta, results, gate))
    print(f"wrote {args.out / 'accuracy.md'}")
    return 0


def _run(data: Path, run: Run, data_dir: Path) -> dict:
    """One `whaleid evaluate` in its own process; returns its JSON report."""
    manifests = [str(data / name / "manifest.csv") for name in run.sets]
    # `--distractors NAME` names a set of the data folder.
    extra = [
        str(data / arg / "manifest.csv") if before == "--distractors" else arg
        for before, arg in zip(["", *run.extra], run.extra, strict=False)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        command = ["whaleid", "evaluate", *manifests, *extra, "--json", str(out)]
        print("$", " ".join(command), flush=True)
        started = time.perf_counter()
        # Progress bars of parallel runs would interleave: keep stderr, show it on failure.
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", *command[1:], "--data", str(data_dir)],
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"{run.label} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        report = json.loads(out.read_text())
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    models = " (in a data folder after `whaleid models install`)" if run.lite0 else ""
    report["command"] = " ".join(command[:-2] + ["--json", "OUT.json"]) + models
    print(summary(run.label, report), flush=True)
    return report


def _gate(data: Path, models: Path | None, default: Path) -> dict:
    """Gate metrics on the gate set at the gate's threshold, and its acceptance of each
    identified set: the CLIP gate of `models` if installed, else the default Lite0 gate
    built in the data folder `default`."""
    manifest = data / "gate" / "manifest.csv"
    if not manifest.is_file():
        return {"measured": False, "why": f"no gate manifest at {manifest}"}
    try:
        if models is not None and (models / GATE_MODEL).is_dir():
            gate: ClipGate | Lite0Gate = ClipGate(models / GATE_MODEL)
        else:
            gate = Lite0Gate(Lite0Net(lite0_folder(default)))
    except ModelFileError as exc:
        return {"measured": False, "why": str(exc)}
    scored = score_manifest(gate.score, manifest)
    metrics = gate_metrics(scored.scores, scored.cetacean, gate.threshold)
    acceptance = {}
    for name in ACCEPTANCE_SETS:
        if (data / name / "manifest.csv").is_file():
            sample = score_manifest(gate.score, data / name / "manifest.csv")
            acceptance[name] = {
                "photos": len(sample.scores),
                "accepted": float((sample.scores >= gate.threshold).mean()),
            }
    print(f"gate {gate.name}: TPR {metrics.tpr:.3f} TNR {metrics.tnr:.3f}", flush=True)
    return {
        "measured": True,
        "model": f"{gate.name}-{gate.version}",
        "threshold_source": gate.calibration,
        "photos": len(scored.scores),
        "unreadable": scored.unreadable,
        **msgspec.to_builtins(metrics),
        "acceptance": acceptance,
    }


if __name__ == "__main__":
    raise SystemExit(main())
