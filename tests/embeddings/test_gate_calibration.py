"""Choosing the gate threshold, its metrics, and the scripts that export and calibrate."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embeddings.gate import ClipGate
from embeddings.gate_calibration import choose_threshold, gate_metrics, roc_auc
from embeddings.model_files import read_card
from tests.deep_models import RandomModels
from tests.synthetic import encode, fluke, sighting

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _script(name: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, SCRIPTS / name, *args], capture_output=True, text=True, check=False
    )


def test_metrics_of_a_known_confusion() -> None:
    scores = np.array([0.9, 0.8, 0.4, 0.7, 0.2, 0.1])
    cetacean = np.array([True, True, True, False, False, False])

    m = gate_metrics(scores, cetacean, 0.5)

    assert (m.tp, m.fn, m.fp, m.tn) == (2, 1, 1, 2)
    assert m.tpr == pytest.approx(2 / 3) and m.tnr == pytest.approx(2 / 3)
    assert m.precision == pytest.approx(2 / 3) and m.f1 == pytest.approx(2 / 3)
    # 9 cetacean/other pairs; the cetacean photo scores higher in 8 of them.
    assert m.roc_auc == pytest.approx(8 / 9)


def test_roc_auc_counts_ties_half() -> None:
    assert roc_auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5


def test_the_chosen_threshold_separates_separable_scores_at_the_low_end() -> None:
    scores = np.array([0.9, 0.6, 0.55, 0.3, 0.1])
    cetacean = np.array([True, True, True, False, False])
    threshold = choose_threshold(scores, cetacean)
    assert 0.3 < threshold <= 0.55
    assert threshold == pytest.approx((0.3 + 0.55) / 2)
    metrics = gate_metrics(scores, cetacean, threshold)
    assert metrics.tpr == 1.0 and metrics.tnr == 1.0


def test_choosing_a_threshold_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both"):
        choose_threshold(np.array([0.1, 0.2]), np.array([True, True]))


def test_calibrate_gate_writes_threshold_and_metrics_into_the_card(
    random_models: RandomModels, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(random_models.models_dir / "clip-gate", models / "clip-gate")
    data = tmp_path / "gate"
    (data / "images").mkdir(parents=True)
    rows = ["path,individual_id,species,source"]
    for i in range(4):
        (data / "images" / f"w{i}.png").write_bytes(encode(sighting(f"w{i}", 0)))
        rows.append(f"images/w{i}.png,,humpback_whale,test")
        (data / "images" / f"s{i}.png").write_bytes(encode(fluke(f"s{i}", width=200) // 3))
        rows.append(f"images/s{i}.png,,not_cetacean:street,test")
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "calibration.json"

    done = _script("calibrate_gate.py", data / "manifest.csv", "--models", models, "--json", out)

    assert done.returncode == 0, done.stderr
    card = read_card(models / "clip-gate", "clip-gate")  # the files still verify
    written = json.loads(out.read_text())
    assert card.params["threshold"] == written["threshold"]
    assert card.params["tp"] + card.params["fn"] == 4 and card.params["tn"] + card.params["fp"] == 4
    for key in ("tpr", "tnr", "precision", "f1", "roc_auc", "calibrated_on"):
        assert key in card.params
    gate = ClipGate(models / "clip-gate")
    assert gate.threshold == written["threshold"]
    assert gate.calibration.startswith(f"calibrated on {data / 'manifest.csv'} (8 photos")


def test_calibrate_gate_without_data_skips_cleanly(tmp_path: Path) -> None:
    done = _script("calibrate_gate.py", tmp_path / "absent.csv")
    assert done.returncode == 0
    assert "not found; nothing calibrated" in done.stderr


def test_export_script_exports_a_checkpoint_and_refuses_a_bad_one(
    random_models: RandomModels, tmp_path: Path
) -> None:
    done = _script("export_onnx.py", "--arcface", random_models.checkpoint, "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    exported = read_card(tmp_path / "arcface-effb4", "arcface-effb4")
    installed = read_card(random_models.models_dir / "arcface-effb4", "arcface-effb4")
    assert exported.version == installed.version  # same checkpoint, same version

    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"nope")
    done = _script("export_onnx.py", "--clip", bad, "--out", tmp_path)
    assert done.returncode == 1
    assert "bad.ckpt: not a readable torch checkpoint" in done.stderr
    assert "Traceback" not in done.stderr
