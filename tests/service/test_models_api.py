"""The service and CLI with deep models installed (random weights, real layouts)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.cli import main
from service.config import Settings
from service.schemas import FUSED
from tests.deep_models import PLANTED, PLANTED_PHOTOS, RandomModels
from tests.service.test_client import free_port
from tests.synthetic import encode, sighting, write_folder


def _models(random_models: RandomModels, tmp_path: Path, threshold: float) -> Path:
    models = Path(shutil.copytree(random_models.models_dir, tmp_path / "models"))
    card_path = models / "clip-gate" / "model.json"
    card = msgspec.json.decode(card_path.read_bytes())
    card["params"]["threshold"] = threshold
    card_path.write_bytes(msgspec.json.encode(card))
    return models


@pytest.fixture
def open_gate(random_models: RandomModels, tmp_path: Path) -> Iterator[TestClient]:
    models = _models(random_models, tmp_path, threshold=0.0)
    settings = Settings(data_dir=str(tmp_path / "data"), models_dir=str(models))
    with TestClient(create_app(settings)) as client:
        yield client


def test_ready_lists_the_loaded_models(open_gate: TestClient) -> None:
    body = open_gate.get("/ready").json()
    assert [name.rsplit("-", 1)[0] for name in body["models"]] == ["arcface-effb4", "clip-gate"]
    assert body["identification"] == FUSED
    assert body["gate"].startswith("applied: clip-gate-")
    assert "threshold 0.000 (default threshold, not calibrated" in body["gate"]


def test_identify_applies_the_gate_and_the_embedder(open_gate: TestClient) -> None:
    photo = encode(sighting("w-1", 0))
    assert (
        open_gate.post(
            "/v1/enrol", files={"file": ("a.png", photo)}, data={"individual_id": "w-1"}
        ).status_code
        == 201
    )

    answer = open_gate.post(
        "/v1/identify", files={"file": ("q.png", encode(sighting("w-1", 1)))}
    ).json()

    assert answer["gate"]["applied"] is True
    assert 0.0 <= answer["gate"]["score"] <= 1.0
    assert answer["identification"] == FUSED
    assert [m.rsplit("-", 1)[0] for m in answer["models"]] == ["arcface-effb4", "clip-gate"]
    assert answer["stages"] == ["decode", "gate", "deep search", "local search", "decision"]
    assert answer["candidates"][0]["individual_id"] == "w-1"
    assert answer["candidates"][0]["similarity"] is not None
    assert {"decode", "gate", "deep search", "local search", "decision", "total"} == set(
        answer["timings_ms"]
    )


def test_a_photo_the_gate_refuses_is_rejected_with_its_score(
    random_models: RandomModels, tmp_path: Path
) -> None:
    models = _models(random_models, tmp_path, threshold=1.01)  # no score reaches it
    settings = Settings(data_dir=str(tmp_path / "data"), models_dir=str(models))
    with TestClient(create_app(settings)) as client:
        photo = ("q.png", encode(sighting("w-1", 1)))
        answer = client.post("/v1/identify", files={"file": photo}).json()
        legacy = client.post("/v1/predict-single", files={"file": photo}).json()
        metrics = client.get("/metrics").text

    assert answer["decision"] == "rejected"
    assert answer["rejection_reason"] == "not_a_marine_mammal"
    assert answer["gate"]["applied"] is True and answer["gate"]["score"] is not None
    assert answer["candidates"] == []
    assert legacy["is_cetacean"] is False
    assert legacy["cetacean_score"] == pytest.approx(answer["gate"]["score"])
    assert legacy["rejected"] is True
    assert 'reason="not_a_marine_mammal"' in metrics


def test_the_cli_imports_centroids_and_identifies_with_them(
    random_models: RandomModels, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--data", str(tmp_path / "data")]
    env_models = str(_models(random_models, tmp_path, threshold=0.0))  # the gate lets all in
    config = tmp_path / "whaleid.toml"
    config.write_text(f'models_dir = "{env_models}"\n')
    args = [*common, "--config", str(config)]

    code = main(
        [
            "index",
            "import-centroids",
            str(random_models.checkpoint),
            str(random_models.classes),
            str(random_models.species_map),
            *args,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "imported 13837 centroids of arcface-effb4-" in out

    query = tmp_path / "q.png"
    query.write_bytes(encode(PLANTED_PHOTOS[5]))
    assert main(["identify", str(query), "--json", *args]) == 0
    answer = msgspec.json.decode(capsys.readouterr().out.splitlines()[0])
    assert answer["candidates"][0]["individual_id"] == PLANTED[5]

    assert main(["stats", *args]) == 0
    assert "centroids    13837" in capsys.readouterr().out


def test_the_cli_refuses_centroids_of_another_checkpoint(
    random_models: RandomModels, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.ckpt"
    other.write_bytes(random_models.checkpoint.read_bytes() + b"\0")
    config = tmp_path / "whaleid.toml"
    config.write_text(f'models_dir = "{random_models.models_dir}"\n')

    code = main(
        [
            "index",
            "import-centroids",
            str(other),
            str(random_models.classes),
            str(random_models.species_map),
            "--data",
            str(tmp_path / "data"),
            "--config",
            str(config),
        ]
    )

    assert code == 1
    assert "not the checkpoint the installed model was exported from" in capsys.readouterr().err


def test_serve_with_a_damaged_model_fails_in_one_line(
    random_models: RandomModels, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = _models(random_models, tmp_path, threshold=0.5)
    (models / "clip-gate" / "image.onnx").write_bytes(b"truncated")
    config = tmp_path / "whaleid.toml"
    config.write_text(f'models_dir = "{models}"\n')

    # A free port: a server left running on the default one would stop it first (exit 2).
    port = str(free_port())
    args = ["serve", "--data", str(tmp_path / "data"), "--config", str(config), "--port", port]
    code = main(args)

    err = capsys.readouterr().err
    assert code == 1
    assert "model error:" in err and "image.onnx" in err and "truncated" in err
    assert "Traceback" not in err


def test_the_cli_applies_the_gate_too(
    random_models: RandomModels, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = _models(random_models, tmp_path, threshold=1.01)  # no score reaches it
    config = tmp_path / "whaleid.toml"
    config.write_text(f'models_dir = "{models}"\n')
    query = tmp_path / "q.png"
    query.write_bytes(encode(sighting("w-1", 1)))
    args = ["--data", str(tmp_path / "data"), "--config", str(config)]
    catalogue = tmp_path / "catalogue"
    write_folder(catalogue, ["w-1"], photos=1)
    assert main(["enrol", str(catalogue), *args]) == 0  # the gate is not applied to curators
    capsys.readouterr()

    assert main(["identify", str(query), *args]) == 0
    assert f"{query}: rejected (not_a_marine_mammal): the gate found no whale" in (
        capsys.readouterr().out
    )
    assert main(["identify", str(query), "--json", *args]) == 0
    line = msgspec.json.decode(capsys.readouterr().out.splitlines()[0])
    assert line["decision"] == "rejected"
    assert line["rejection_reason"] == "not_a_marine_mammal"
    assert line["stages"][-1] == "decision"  # searched before it was rejected
