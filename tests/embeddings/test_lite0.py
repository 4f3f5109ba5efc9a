"""The default gate: EfficientNet-Lite0's real weights (from the installed package) as
ONNX, against the plain-torch reference; the model folder in the data folder; the gate."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import onnxruntime as ort
import pytest
import torch

from embeddings.lite0 import (
    LITE0_MODEL,
    MODEL_FILE,
    Lite0Gate,
    Lite0Net,
    install_lite0,
    lite0_folder,
    packaged_weights,
)
from embeddings.model_files import ModelFileError, read_card, sha256_of, write_card
from embeddings.photo import Photo
from embeddings.preprocess import lite0_input
from embeddings.reference.lite0 import EfficientNetLite0, load_lite0
from embeddings.registry import load_models
from indexer.pipeline import GateStage
from service.cli import main
from tests.synthetic import encode, fluke, sighting


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with the model built once; tests copy it before changing it."""
    data = tmp_path_factory.mktemp("lite0-data")
    install_lite0(lite0_folder(data))
    return data


@pytest.fixture(scope="module")
def reference() -> EfficientNetLite0:
    return load_lite0(packaged_weights())


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("size", [(224, 224), (256, 352)], ids=["224", "256x352"])
def test_onnx_runtime_matches_torch_on_the_real_weights(
    installed: Path, reference: EfficientNetLite0, size: tuple[int, int]
) -> None:
    images = [sighting("w1", 0), fluke("w2", width=1920, height=1080)]
    batch = np.concatenate([lite0_input(p) for p in images])
    if size != (224, 224):  # height and width are dynamic: any input size runs
        batch = np.ascontiguousarray(np.resize(batch, (2, 3, *size)))
    session = ort.InferenceSession(
        str(lite0_folder(installed) / MODEL_FILE), providers=["CPUExecutionProvider"]
    )

    logits, features, feature_map = session.run(None, {"image": batch})
    with torch.no_grad():
        expected = [t.numpy() for t in reference(torch.from_numpy(batch))]

    assert logits.shape == (2, 1000) and features.shape == (2, 1280)
    assert feature_map.shape == (2, 1280, -(-size[0] // 32), -(-size[1] // 32))
    for onnx_out, torch_out in zip((logits, features, feature_map), expected, strict=True):
        assert (_cosines(onnx_out, torch_out) >= 0.999).all()
    assert np.array_equal(logits.argmax(1), expected[0].argmax(1))


def test_the_model_card_names_both_sha256s_and_the_default_threshold(installed: Path) -> None:
    folder = lite0_folder(installed)
    card = read_card(folder, LITE0_MODEL)

    assert card.files[MODEL_FILE].sha256 == sha256_of(folder / MODEL_FILE)
    assert card.params["source_sha256"] == sha256_of(packaged_weights())
    assert card.params["threshold"] == 0.01
    assert card.params["positive_classes"] == [147, 148]


def test_the_gate_scores_the_whale_classes_softmax_mass(
    installed: Path, reference: EfficientNetLite0
) -> None:
    gate = Lite0Gate(Lite0Net(lite0_folder(installed), threads=1))
    pixels = sighting("w3", 0)

    check = gate.check(Photo(pixels=pixels, sha256="0" * 64, format="PNG"))

    with torch.no_grad():
        logits = reference(torch.from_numpy(lite0_input(pixels)))[0]
    expected = torch.softmax(logits.double(), dim=1)[0, [147, 148]].sum().item()
    assert check.score == pytest.approx(expected, abs=1e-4)
    assert check.threshold == 0.01
    assert check.passed == (check.score >= 0.01)
    assert "lite0-gate" in GateStage(gate).description


def test_installing_again_keeps_an_intact_build(installed: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(lite0_folder(installed), tmp_path / "lite0"))
    before = (folder / MODEL_FILE).stat().st_mtime_ns

    install_lite0(folder)

    assert (folder / MODEL_FILE).stat().st_mtime_ns == before


def test_a_damaged_model_is_a_clear_error_and_install_rebuilds_it_keeping_calibration(
    installed: Path, tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(lite0_folder(installed), tmp_path / "lite0"))
    card = read_card(folder, LITE0_MODEL)
    write_card(folder, msgspec.structs.replace(card, params={**card.params, "threshold": 0.03}))
    with open(folder / MODEL_FILE, "r+b") as f:
        f.seek(1000)
        f.write(b"\0" * 16)

    with pytest.raises(ModelFileError, match="sha256 differs.*whaleid models install"):
        Lite0Gate(Lite0Net(folder))

    install_lite0(folder)
    assert Lite0Gate(Lite0Net(folder)).threshold == 0.03


def test_weights_of_another_network_are_refused(tmp_path: Path) -> None:
    weights = tmp_path / "other.pth"
    torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, weights)

    with pytest.raises(ModelFileError, match="not EfficientNet-Lite0 weights"):
        install_lite0(tmp_path / "lite0", weights)


def test_the_registry_loads_the_gate_once_built_in_the_data_folder(
    installed: Path, tmp_path: Path
) -> None:
    assert load_models(None, data_dir=tmp_path).gate is None

    loaded = load_models(None, 1, data_dir=installed)

    assert isinstance(loaded.gate, Lite0Gate)
    version = loaded.gate.version
    assert loaded.names == [
        f"lite0-embedding-{version}",
        f"lite0-gate-{version}",
        f"lite0-cam-{version}",
    ]
    assert loaded.embedder is not None and loaded.embedder.crop_side == 600
    assert load_models(None, 1, data_dir=installed, locate=False).locator is None
    assert load_models(None, 1, data_dir=installed, lite0_embedding=False).embedder is None


def test_whaleid_models_install_builds_into_the_data_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "install", "--data", str(tmp_path / "data")]) == 0

    assert "efficientnet-lite0-" in capsys.readouterr().out
    assert isinstance(load_models(None, data_dir=tmp_path / "data").gate, Lite0Gate)


def test_calibrate_gate_fits_the_lite0_gate_of_a_data_folder(
    installed: Path, tmp_path: Path
) -> None:
    data = Path(shutil.copytree(installed, tmp_path / "data"))
    photos = tmp_path / "gate"
    (photos / "images").mkdir(parents=True)
    rows = ["path,individual_id,species,source"]
    for i in range(3):
        (photos / "images" / f"w{i}.png").write_bytes(encode(sighting(f"w{i}", 0)))
        rows.append(f"images/w{i}.png,,humpback_whale,test")
        (photos / "images" / f"s{i}.png").write_bytes(encode(fluke(f"s{i}", width=200) // 3))
        rows.append(f"images/s{i}.png,,not_cetacean:street,test")
    (photos / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "calibration.json"
    script = Path(__file__).resolve().parents[2] / "scripts" / "calibrate_gate.py"

    done = subprocess.run(
        [sys.executable, script, photos / "manifest.csv", "--data", data, "--json", out],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    written = json.loads(out.read_text())
    gate = Lite0Gate(Lite0Net(lite0_folder(data)))  # the files still verify
    assert gate.threshold == written["threshold"]
    assert written["gate"] == f"lite0-gate-{gate.version}"
    assert gate.calibration.startswith(f"calibrated on {photos / 'manifest.csv'} (6 photos")


def test_gate_locator_and_embedding_share_one_forward_pass(installed: Path) -> None:
    models = load_models(None, 1, data_dir=installed)
    assert models.gate is not None and models.locator is not None
    assert models.embedder is not None
    frame = Photo(
        pixels=np.ascontiguousarray(np.tile(fluke("w5", width=640, height=360), (3, 3, 1))),
        sha256="1" * 64,
        format="PNG",
    )
    net = models.locator._net
    runs = []
    original = net._net.outputs
    net._net.outputs = lambda batch: runs.append(batch.shape) or original(batch)  # type: ignore[method-assign]

    models.gate.check(frame)
    boxes = models.locator.locate(frame)
    vector = models.embedder.extract(frame).vector

    assert runs == [(1, 3, 224, 224)]
    assert vector.shape == (1280,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    for box in boxes:
        assert 0 <= box.x0 < box.x1 <= frame.width and 0 <= box.y0 < box.y1 <= frame.height
    models.gate.check(Photo(pixels=frame.pixels.copy(), sha256="2" * 64, format="PNG"))
    assert len(runs) == 2  # another photo is another pass
