"""Export real checkpoints to the ONNX model folders the service loads.

    python scripts/export_onnx.py --arcface models/checkpoints/happywhale-effb4.ckpt \
        --clip models/checkpoints/open_clip_pytorch_model.bin --out models

Needs the `[models]` extra (torch, CPU build). Writes `OUT/arcface-effb4/` and/or
`OUT/clip-gate/`, each with a `model.json` card listing its files' sizes and sha256;
an interrupted export leaves the previous folder in place. The gate gets the default
threshold; run `scripts/calibrate_gate.py` afterwards to fit one on labelled photos.
Then start the service with `WHALEID_MODELS=OUT` (or `models_dir` in the config file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embeddings.model_files import ModelFileError, sha256_of
from embeddings.reference.clip_vit import load_clip_checkpoint
from embeddings.reference.efficientnet import load_arcface_checkpoint
from embeddings.reference.onnx_export import export_arcface, export_clip_gate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arcface", type=Path, help="Happywhale EfficientNet-B4 checkpoint")
    parser.add_argument("--clip", type=Path, help="open_clip ViT-B-32 laion2b_s34b_b79k weights")
    parser.add_argument("--out", type=Path, default=Path("models"), help="models folder")
    args = parser.parse_args()
    if args.arcface is None and args.clip is None:
        parser.error("give --arcface and/or --clip")
    try:
        if args.arcface is not None:
            net = load_arcface_checkpoint(args.arcface)
            card = export_arcface(
                net,
                args.out / "arcface-effb4",
                source=args.arcface.name,
                checkpoint_sha256=sha256_of(args.arcface),
            )
            print(f"wrote {args.out / 'arcface-effb4'} (version {card.version})")
        if args.clip is not None:
            card = export_clip_gate(
                load_clip_checkpoint(args.clip), args.out / "clip-gate", source=args.clip.name
            )
            print(f"wrote {args.out / 'clip-gate'} (version {card.version})")
    except ModelFileError as exc:
        print(f"export_onnx: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
