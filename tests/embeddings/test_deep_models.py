"""The deep models: checkpoint layouts, ONNX export parity, the gate's score, model files."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import numpy as np
import pytest
import torch

from embeddings.arcface import ArcFaceEmbedder
from embeddings.gate import ClipGate, cetacean_score, prompts
from embeddings.model_files import CARD_FILE, ModelFileError, read_card
from embeddings.photo import Photo
from embeddings.preprocess import arcface_input, clip_input
from embeddings.reference.clip_vit import Clip, load_clip_checkpoint
from embeddings.reference.efficientnet import ARC_CLASSES, load_arcface_checkpoint
from embeddings.reference.onnx_export import embed_prompts
from embeddings.registry import load_models
from tests.deep_models import RandomModels
from tests.synthetic import fluke, sighting

# A survey frame, a fluke crop and a portrait photo: different sizes and aspect ratios.
PHOTOS = [
    sighting("w1", 0),
    fluke("w2", width=1920, height=1080),
    fluke("w3", width=300, height=500),
]


def _photo(pixels: np.ndarray) -> Photo:
    return Photo(pixels=pixels, sha256="0" * 64, format="PNG")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


# ------------------------------------------------------------------ checkpoint layouts


def test_arcface_checkpoint_loads_strictly_in_the_happywhale_layout(
    random_models: RandomModels,
) -> None:
    raw = torch.load(random_models.checkpoint, weights_only=True)
    keys = set(raw["state_dict"])
    assert {"embedding.weight", "embedding.bias", "arc.weight"} <= keys
    assert {k.split(".")[0] for k in keys} == {"model", "embedding", "arc"}
    assert raw["state_dict"]["arc.weight"].shape == (ARC_CLASSES, 512)
    assert raw["state_dict"]["model.conv_head.weight"].shape == (1792, 448, 1, 1)

    net = load_arcface_checkpoint(random_models.checkpoint)
    assert not net.training
    assert net.arc.weight.shape == (ARC_CLASSES, 512)


def test_a_checkpoint_of_another_layout_is_refused_naming_its_keys(tmp_path: Path) -> None:
    state = load_arcface_checkpoint_state(tmp_path)
    del state["embedding.bias"]
    state["head.weight"] = torch.zeros(3)
    state["model.conv_stem.weight"] = torch.zeros(1, 3, 3, 3)
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": state}, path)

    with pytest.raises(ModelFileError) as caught:
        load_arcface_checkpoint(path)

    message = str(caught.value)
    assert str(path) in message
    assert "embedding.bias" in message
    assert "head.weight" in message
    assert "model.conv_stem.weight" in message


def load_arcface_checkpoint_state(tmp_path: Path) -> dict[str, object]:
    from embeddings.reference.efficientnet import ArcFaceNet

    return dict(ArcFaceNet(classes=10).state_dict())


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken"])
def test_a_file_that_is_no_checkpoint_is_a_model_file_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="not a readable torch checkpoint"):
        load_arcface_checkpoint(path)
    with pytest.raises(ModelFileError, match=str(path)):
        load_clip_checkpoint(path)


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "callback": Path("/etc/passwd")}, path)
    with pytest.raises(ModelFileError, match="not a readable torch checkpoint"):
        load_arcface_checkpoint(path)


def test_missing_checkpoint_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not found"):
        load_arcface_checkpoint(tmp_path / "absent.ckpt")


def test_clip_checkpoint_loads_strictly_in_the_open_clip_layout(
    random_models: RandomModels,
) -> None:
    state = torch.load(random_models.clip_checkpoint, weights_only=True)
    assert state["visual.proj"].shape == (768, 512)
    assert state["visual.transformer.resblocks.11.attn.in_proj_weight"].shape == (2304, 768)
    assert state["token_embedding.weight"].shape == (49408, 512)
    assert isinstance(load_clip_checkpoint(random_models.clip_checkpoint), Clip)


# ------------------------------------------------------------------ ONNX parity


def test_onnx_arcface_embeddings_match_torch(random_models: RandomModels) -> None:
    net = load_arcface_checkpoint(random_models.checkpoint)
    embedder = ArcFaceEmbedder(random_models.models_dir / "arcface-effb4")
    with torch.no_grad():
        reference = np.concatenate(
            [net(torch.from_numpy(arcface_input(p))).numpy() for p in PHOTOS]
        )

    served = embedder.embed(PHOTOS)

    assert served.shape == (len(PHOTOS), 512)
    assert np.allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    assert _cosines(reference, served).min() >= 0.999
    single = embedder.extract(_photo(PHOTOS[1])).vector
    assert float(single @ served[1]) >= 0.9999


def test_onnx_gate_matches_torch_and_its_prompts_come_from_the_text_tower(
    random_models: RandomModels,
) -> None:
    clip = load_clip_checkpoint(random_models.clip_checkpoint)
    gate = ClipGate(random_models.models_dir / "clip-gate")
    items = prompts()
    text = np.load(random_models.models_dir / "clip-gate" / "prompts.npy")
    with torch.no_grad():
        reference = np.concatenate(
            [clip.visual(torch.from_numpy(clip_input(p))).numpy() for p in PHOTOS]
        )

    assert np.allclose(text, embed_prompts(clip, [p.tokens for p in items]), atol=1e-5)
    positives = np.array([p.cetacean for p in items])
    for pixels, ref in zip(PHOTOS, reference, strict=True):
        expected = float(cetacean_score(ref[None], text, positives)[0])
        assert gate.score(_photo(pixels)) == pytest.approx(expected, abs=1e-3)
    served = np.concatenate([gate._net(clip_input(p)) for p in PHOTOS])
    assert _cosines(reference, served).min() >= 0.999


def test_the_gate_has_ten_cetacean_and_fourteen_other_prompts() -> None:
    items = prompts()
    assert sum(p.cetacean for p in items) == 10
    assert sum(not p.cetacean for p in items) == 14
    for p in items:
        assert p.tokens[0] == 49406 and p.tokens[-1] == 49407  # start and end of text


# ------------------------------------------------------------------ the gate's score


def test_cetacean_score_is_the_softmax_mass_of_the_cetacean_prompts() -> None:
    rng = np.random.default_rng(0)
    text = rng.normal(size=(4, 8)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    positives = np.array([True, True, False, False])
    images = np.stack([text[0], text[3]])

    scores = cetacean_score(images, text, positives)

    logits = 100.0 * images @ text.T
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected = weights[:, :2].sum(axis=1) / weights.sum(axis=1)
    assert np.allclose(scores, expected)
    assert scores[0] > 0.99  # the photo is a cetacean prompt
    assert scores[1] < 0.01  # the photo is a non-cetacean prompt


def test_gate_check_applies_the_threshold_from_the_model_card(
    random_models: RandomModels, tmp_path: Path
) -> None:
    folder = _copy(random_models.models_dir / "clip-gate", tmp_path)
    score = ClipGate(folder).score(_photo(PHOTOS[0]))
    for threshold, passed in ((score - 0.01, True), (score + 0.01, False)):
        _set_params(folder, threshold=threshold)
        check = ClipGate(folder).check(_photo(PHOTOS[0]))
        assert check.passed is passed
        assert check.threshold == pytest.approx(threshold)


# ------------------------------------------------------------------ model files


def test_load_models_without_a_folder_loads_nothing(tmp_path: Path) -> None:
    assert load_models(None).names == []
    assert load_models(tmp_path / "absent").names == []
    assert load_models(tmp_path).names == []


def test_load_models_reports_names_and_versions(random_models: RandomModels) -> None:
    models = load_models(random_models.models_dir)
    assert models.embedder is not None and models.gate is not None
    assert models.names == [
        f"arcface-effb4-{models.embedder.version}",
        f"clip-gate-{models.gate.version}",
    ]
    assert models.embedder.checkpoint_sha256 is not None


def test_the_version_follows_the_weights(random_models: RandomModels, tmp_path: Path) -> None:
    from embeddings.reference.efficientnet import ArcFaceNet
    from embeddings.reference.onnx_export import export_arcface

    torch.manual_seed(1)
    card = export_arcface(ArcFaceNet(classes=4), tmp_path / "other", source="random")
    installed = read_card(random_models.models_dir / "arcface-effb4", "arcface-effb4")
    assert card.version != installed.version


@pytest.mark.parametrize("damage", ["missing", "truncated", "altered", "no card", "other model"])
def test_a_damaged_model_folder_is_an_error_naming_the_file(
    random_models: RandomModels, tmp_path: Path, damage: str
) -> None:
    models = tmp_path / "models"
    folder = _copy(random_models.models_dir / "arcface-effb4", models)
    network = folder / "arcface.onnx"
    if damage == "missing":
        network.unlink()
    elif damage == "truncated":
        network.write_bytes(network.read_bytes()[:1000])
    elif damage == "altered":
        data = bytearray(network.read_bytes())
        data[len(data) // 2] ^= 0xFF
        network.write_bytes(bytes(data))
    elif damage == "no card":
        (folder / CARD_FILE).unlink()
    else:
        _set_card(folder, name="clip-gate")
    expected = {
        "missing": "arcface.onnx: not found",
        "truncated": "arcface.onnx: 1000 bytes",
        "altered": "arcface.onnx: sha256 differs",
        "no card": "model.json: not found",
        "other model": "model.json: expected model 'arcface-effb4'",
    }[damage]

    with pytest.raises(ModelFileError, match=expected):
        load_models(models)


def test_an_interrupted_export_leaves_the_installed_model(
    random_models: RandomModels, tmp_path: Path
) -> None:
    from embeddings.reference.efficientnet import ArcFaceNet
    from embeddings.reference.onnx_export import export_arcface

    folder = _copy(random_models.models_dir / "arcface-effb4", tmp_path)
    before = read_card(folder, "arcface-effb4")

    class Broken(ArcFaceNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        export_arcface(Broken(classes=4), folder, source="random")

    assert read_card(folder, "arcface-effb4") == before


def _copy(folder: Path, parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(folder, parent / folder.name))


def _set_card(folder: Path, **fields: object) -> None:
    path = folder / CARD_FILE
    card = msgspec.json.decode(path.read_bytes())
    card.update(fields)
    path.write_bytes(msgspec.json.encode(card))


def _set_params(folder: Path, **params: object) -> None:
    path = folder / CARD_FILE
    card = msgspec.json.decode(path.read_bytes())
    card["params"].update(params)
    path.write_bytes(msgspec.json.encode(card))
