"""Random-weight deep models in the real checkpoint layouts, made by the tests themselves.

No real weights can be downloaded here and none may be committed, so the tests write a
Happywhale-layout Lightning checkpoint (full shapes: EfficientNet-B4 backbone, 1792 -> 512
embedding, 15 587 x 512 `arc.weight`), its `encoder_classes.npy` (13 837 ids, a pickled
object array as scikit-learn writes it) and species map, an open_clip-layout ViT-B/32
state dict, and export both to ONNX model folders as `scripts/export_onnx.py` does.

Random weights alone give every photo nearly the same embedding (nothing centres the
features), so the batch-norm statistics are first set from a batch of synthetic photos,
as training would. Three ArcFace rows are then planted on the embeddings of three
synthetic photos (`PLANTED`), so that the model's argmax is known for those.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.synthetic import sighting

ACTIVE_CLASSES = 13_837
PLANTED = {5: "planted-a", 4_321: "planted-b", 13_000: "planted-c"}
"""arc.weight row -> individual id, each row set to one synthetic photo's embedding."""
PLANTED_PHOTOS = {row: sighting(f"planted-{row}", 0) for row in PLANTED}


@dataclass(frozen=True)
class RandomModels:
    checkpoint: Path
    classes: Path
    species_map: Path
    clip_checkpoint: Path
    models_dir: Path
    """Holds `arcface-effb4/` and `clip-gate/` as exported."""
    class_ids: list[str]


def class_ids() -> list[str]:
    ids = [f"hw-{i:05d}" for i in range(ACTIVE_CLASSES)]
    for row, ident in PLANTED.items():
        ids[row] = ident
    return ids


def make_random_models(root: Path) -> RandomModels:
    import torch

    from embeddings.model_files import sha256_of
    from embeddings.preprocess import arcface_input
    from embeddings.reference.clip_vit import Clip
    from embeddings.reference.efficientnet import ArcFaceNet
    from embeddings.reference.onnx_export import export_arcface, export_clip_gate

    torch.manual_seed(0)
    net = ArcFaceNet()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a plain average over the batches seen
    batch = np.concatenate([arcface_input(sighting(f"batch-norm-{i}", 0)) for i in range(6)])
    with torch.no_grad():
        net.train()
        net(torch.from_numpy(batch))
        net.eval()
        for row, pixels in PLANTED_PHOTOS.items():
            net.arc.weight[row] = net(torch.from_numpy(arcface_input(pixels)))[0]
    root.mkdir(parents=True, exist_ok=True)
    checkpoint = root / "happywhale-effb4.ckpt"
    # Lightning's layout: the weights under "state_dict", beside training metadata.
    torch.save(
        {"epoch": 3, "global_step": 1200, "state_dict": net.state_dict(), "hyper_parameters": {}},
        checkpoint,
    )
    ids = class_ids()
    classes = root / "encoder_classes.npy"
    np.save(classes, np.array(ids, dtype=object), allow_pickle=True)
    species_map = root / "species.csv"
    species_map.write_text(
        "individual_id,species\n"
        + "".join(
            f"{ident},{'humpback_whale' if i % 2 else 'beluga'}\n" for i, ident in enumerate(ids)
        )
    )
    clip = Clip().eval()
    clip_checkpoint = root / "open_clip_pytorch_model.bin"
    torch.save(clip.state_dict(), clip_checkpoint)
    models_dir = root / "models"
    export_arcface(
        net,
        models_dir / "arcface-effb4",
        source=checkpoint.name,
        checkpoint_sha256=sha256_of(checkpoint),
    )
    export_clip_gate(clip, models_dir / "clip-gate", source=clip_checkpoint.name)
    return RandomModels(
        checkpoint=checkpoint,
        classes=classes,
        species_map=species_map,
        clip_checkpoint=clip_checkpoint,
        models_dir=models_dir,
        class_ids=ids,
    )
