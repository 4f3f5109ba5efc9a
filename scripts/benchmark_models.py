"""Speed and fidelity of the deep models on the CPU: ONNX Runtime against torch eager.

    python scripts/benchmark_models.py [--json reports/models.json] [--runs 15]

Random-weight models in the real architectures (EfficientNet-B4 ArcFace at 512 px, CLIP
ViT-B/32 image tower at 224 px): speed does not depend on the weights' values. In one run:

1. Latency of gate + embedding for one 1920x1080 photo, preprocessing included, through
   ONNX Runtime (the serving path) and through torch eager (the reference), alternating
   run by run so both see the same machine load; medians over `--runs`.
2. Throughput at batch 8 (eight photos per network call) through ONNX Runtime.
3. Parity: minimum cosine between torch and ONNX Runtime embeddings of both networks
   over a few photos.

Writes the JSON given with `--json` and `reports/models.md`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from reporting import report_meta

from embeddings.arcface import ArcFaceEmbedder
from embeddings.gate import ClipGate, cetacean_score
from embeddings.photo import Photo
from embeddings.preprocess import arcface_input, clip_input
from embeddings.reference.clip_vit import Clip
from embeddings.reference.efficientnet import ArcFaceNet
from embeddings.reference.onnx_export import export_arcface, export_clip_gate

REPORT = Path(__file__).resolve().parents[1] / "reports" / "models.md"
BARS = {"speedup": 1.5, "ort_ms_p50": 450.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per path")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    photo = Photo(pixels=frame, sha256="0" * 64, format="PNG")

    torch.manual_seed(0)
    net, clip = ArcFaceNet().eval(), Clip().eval()
    with tempfile.TemporaryDirectory() as tmp:
        print("exporting random-weight models to ONNX ...", file=sys.stderr)
        export_arcface(net, Path(tmp) / "arcface-effb4", source="random")
        export_clip_gate(clip, Path(tmp) / "clip-gate", source="random")
        embedder = ArcFaceEmbedder(Path(tmp) / "arcface-effb4")
        gate = ClipGate(Path(tmp) / "clip-gate")
    text = gate._text
    positives = gate._cetacean

    def ort_once() -> None:
        gate.score(photo)
        embedder.extract(photo)

    def torch_once() -> None:
        with torch.inference_mode():
            image = clip.visual(torch.from_numpy(clip_input(frame))).numpy()
            cetacean_score(image, text, positives)
            net(torch.from_numpy(arcface_input(frame)))

    ort_once(), torch_once()  # first calls allocate; not timed
    ort_ms, torch_ms = [], []
    for i in range(args.runs):
        for once, times in ((ort_once, ort_ms), (torch_once, torch_ms)):
            started = time.perf_counter()
            once()
            times.append(1000 * (time.perf_counter() - started))
        print(
            f"run {i + 1}/{args.runs}: ort {ort_ms[-1]:.0f} ms, torch {torch_ms[-1]:.0f} ms",
            file=sys.stderr,
        )

    batch = [rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8) for _ in range(8)]
    batch_s = []
    for _ in range(3):
        started = time.perf_counter()
        embedder.embed(batch)
        gate._net(np.concatenate([clip_input(p) for p in batch]))
        batch_s.append(time.perf_counter() - started)

    photos = [frame, *batch[:3]]
    with torch.inference_mode():
        ref_embed = np.concatenate(
            [net(torch.from_numpy(arcface_input(p))).numpy() for p in photos]
        )
        ref_clip = np.concatenate(
            [clip.visual(torch.from_numpy(clip_input(p))).numpy() for p in photos]
        )
    ort_embed = embedder.embed(photos)
    ort_clip = np.concatenate([gate._net(clip_input(p)) for p in photos])
    parity = min(_min_cosine(ref_embed, ort_embed), _min_cosine(ref_clip, ort_clip))

    results = {
        **report_meta(),
        "runs": args.runs,
        "threads": threads,
        "input": "one 1920x1080 RGB photo; gate (ViT-B/32, 224 px) + embedding (EfficientNet-B4, 512 px), preprocessing included",
        "ort_ms_p50": statistics.median(ort_ms),
        "ort_ms_p95": float(np.percentile(ort_ms, 95)),
        "torch_ms_p50": statistics.median(torch_ms),
        "torch_ms_p95": float(np.percentile(torch_ms, 95)),
        "speedup": statistics.median(torch_ms) / statistics.median(ort_ms),
        "batch8_images_per_s": 8 / statistics.median(batch_s),
        "parity_min_cosine": parity,
        "bars": BARS,
    }
    results["bars_met"] = {
        "speedup": results["speedup"] >= BARS["speedup"],
        "ort_ms_p50": results["ort_ms_p50"] <= BARS["ort_ms_p50"],
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    REPORT.write_text(_markdown(results))
    print(json.dumps(results, indent=2))
    return 0


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def _markdown(r: dict) -> str:
    met = r["bars_met"]
    return f"""# Deep models on the CPU: ONNX Runtime against torch eager

- command: `{r["command"]}`
- date: {r["date"]}
- machine: {r["machine"]}; torch threads {r["threads"]}, ONNX Runtime threads: all cores
- models: random weights in the real architectures (speed does not depend on the values)
- input: {r["input"]}

| measure | ONNX Runtime | torch eager |
|---|---|---|
| gate + embedding, p50 | {r["ort_ms_p50"]:.0f} ms | {r["torch_ms_p50"]:.0f} ms |
| gate + embedding, p95 | {r["ort_ms_p95"]:.0f} ms | {r["torch_ms_p95"]:.0f} ms |

| bar | measured | target | met |
|---|---|---|---|
| ONNX Runtime speed-up over torch eager (p50 ratio, same run) | {r["speedup"]:.2f}x | >= {BARS["speedup"]}x | {"yes" if met["speedup"] else "no"} |
| gate + embedding p50 through ONNX Runtime | {r["ort_ms_p50"]:.0f} ms | <= {BARS["ort_ms_p50"]:.0f} ms | {"yes" if met["ort_ms_p50"] else "no"} |

- throughput at batch 8 (ONNX Runtime, gate + embedding): {r["batch8_images_per_s"]:.2f} photos/s
- parity, minimum cosine between torch and ONNX Runtime embeddings (both networks): {r["parity_min_cosine"]:.6f}
- {r["runs"]} timed runs per path, alternating; medians.
"""


if __name__ == "__main__":
    sys.exit(main())
