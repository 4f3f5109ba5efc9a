"""Fit the cetacean gate's threshold on labelled photos and store it with the model.

    python scripts/calibrate_gate.py ../shared/data/gate/manifest.csv --models models \
        [--json reports/gate_calibration.json]

The manifest has `path` (relative to the manifest's folder) and `species`; a species
starting with `not_cetacean` marks a photo without any cetacean. Every photo is scored by
the installed gate (`MODELS/clip-gate`), the threshold of highest balanced accuracy is
chosen (see `embeddings.gate_calibration.choose_threshold`), and the threshold with its
TPR, TNR, precision, F1 and ROC-AUC on this manifest is written into the gate's
`model.json`; the service uses it from its next start.

Exits 0 without writing anything when the manifest is absent (a fresh clone has no
`../shared/data`).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np

from embeddings.gate import GATE_MODEL, ClipGate
from embeddings.gate_calibration import choose_threshold, gate_metrics
from embeddings.images import load_photo_file
from embeddings.model_files import ModelFileError, read_card, write_card
from embeddings.photo import ImageError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="CSV with path,species")
    parser.add_argument("--models", type=Path, default=Path("models"), help="models folder")
    parser.add_argument("--json", type=Path, help="write the scores and metrics here too")
    args = parser.parse_args()
    if not args.manifest.is_file():
        print(f"calibrate_gate: {args.manifest} not found; nothing calibrated", file=sys.stderr)
        return 0
    folder = args.models / GATE_MODEL
    try:
        gate = ClipGate(folder)
    except ModelFileError as exc:
        print(f"calibrate_gate: {exc}", file=sys.stderr)
        return 1
    with open(args.manifest, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    scores, labels = [], []
    for row in rows:
        path = args.manifest.parent / row["path"]
        try:
            photo = load_photo_file(path)
        except (ImageError, OSError) as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        scores.append(gate.score(photo))
        labels.append(not (row.get("species") or "").startswith("not_cetacean"))
    score_array, label_array = np.array(scores), np.array(labels, dtype=bool)
    try:
        threshold = choose_threshold(score_array, label_array)
    except ValueError as exc:
        print(f"calibrate_gate: {args.manifest}: {exc}", file=sys.stderr)
        return 1
    metrics = gate_metrics(score_array, label_array, threshold)
    card = read_card(folder, GATE_MODEL)
    calibration = {
        **msgspec.to_builtins(metrics),
        "calibrated_on": f"{args.manifest} ({len(scores)} photos,"
        f" {datetime.now(UTC).date().isoformat()})",
    }
    write_card(folder, msgspec.structs.replace(card, params={**card.params, **calibration}))
    if args.json:
        args.json.write_text(
            json.dumps({**calibration, "gate": f"{GATE_MODEL}-{card.version}"}, indent=2) + "\n"
        )
    print(json.dumps(calibration, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
