"""Fit the cetacean gate's threshold on labelled photos and store it with the model.

    python scripts/calibrate_gate.py ../shared/data/gate/manifest.csv --models models \
        [--json reports/gate_calibration.json]
    python scripts/calibrate_gate.py ../shared/data/gate/manifest.csv --data whaleid-data

The manifest has `path` (relative to the manifest's folder) and `species`; a species
starting with `not_cetacean` marks a photo without any cetacean. Every photo is scored by
the installed gate (`MODELS/clip-gate`, or with `--data` the default Lite0 gate of that
data folder, `DATA/models/lite0`, built first if needed), the threshold of highest
balanced accuracy is chosen (see `embeddings.gate_calibration.choose_threshold`), and the
threshold with its TPR, TNR, precision, F1 and ROC-AUC on this manifest is written into
the gate's `model.json`; the service uses it from its next start.

Exits 0 without writing anything when the manifest is absent (a fresh clone has no
`../shared/data`).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from embeddings.gate import GATE_MODEL, ClipGate
from embeddings.gate_calibration import choose_threshold, gate_metrics, score_manifest
from embeddings.lite0 import LITE0_MODEL, Lite0Gate, Lite0Net, install_lite0, lite0_folder
from embeddings.model_files import ModelFileError, read_card, write_card


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="CSV with path,species")
    parser.add_argument("--models", type=Path, default=Path("models"), help="models folder")
    parser.add_argument(
        "--data", type=Path, help="calibrate the Lite0 gate of this data folder instead"
    )
    parser.add_argument("--json", type=Path, help="write the scores and metrics here too")
    args = parser.parse_args()
    if not args.manifest.is_file():
        print(f"calibrate_gate: {args.manifest} not found; nothing calibrated", file=sys.stderr)
        return 0
    try:
        if args.data:
            folder, model = lite0_folder(args.data), LITE0_MODEL
            install_lite0(folder)
            gate: ClipGate | Lite0Gate = Lite0Gate(Lite0Net(folder))
        else:
            folder, model = args.models / GATE_MODEL, GATE_MODEL
            gate = ClipGate(folder)
    except ModelFileError as exc:
        print(f"calibrate_gate: {exc}", file=sys.stderr)
        return 1
    scored = score_manifest(gate.score, args.manifest)
    for path in scored.unreadable:
        print(f"skipped {args.manifest.parent / path}: unreadable photo", file=sys.stderr)
    try:
        threshold = choose_threshold(scored.scores, scored.cetacean)
    except ValueError as exc:
        print(f"calibrate_gate: {args.manifest}: {exc}", file=sys.stderr)
        return 1
    metrics = gate_metrics(scored.scores, scored.cetacean, threshold)
    card = read_card(folder, model)
    calibration = {
        **msgspec.to_builtins(metrics),
        "calibrated_on": f"{args.manifest} ({len(scored.scores)} photos,"
        f" {datetime.now(UTC).date().isoformat()})",
    }
    write_card(folder, msgspec.structs.replace(card, params={**card.params, **calibration}))
    if args.json:
        args.json.write_text(
            json.dumps({**calibration, "gate": f"{gate.name}-{card.version}"}, indent=2) + "\n"
        )
    print(json.dumps(calibration, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
