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
4. The default install's pretrained EfficientNet-Lite0 (real weights, built as by
   `whaleid models install`): gate + locator + embedding of one 1920x1080 survey frame
   (one forward pass, preprocessing included) through ONNX Runtime, alternating run by
   run with the weight-free identification of the same frame (RootSIFT + search in a
   gallery of synthetic photos), so both medians come from the same machine load.

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

import cv2
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.synthetic renders the frame and the gallery
REPORT = ROOT / "reports" / "models.md"
BARS = {"speedup": 1.5, "ort_ms_p50": 450.0, "lite0_ms_p50": 60.0}
GALLERY_INDIVIDUALS = 40
"""Synthetic individuals (3 photos each) of the weight-free identification's gallery."""


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
    results["lite0"] = _lite0(args.runs)
    results["bars_met"] = {
        "speedup": results["speedup"] >= BARS["speedup"],
        "ort_ms_p50": results["ort_ms_p50"] <= BARS["ort_ms_p50"],
        "lite0_ms_p50": results["lite0"]["lite0_ms_p50"] <= BARS["lite0_ms_p50"],
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    REPORT.write_text(_markdown(results))
    print(json.dumps(results, indent=2))
    return 0


def _lite0(runs: int) -> dict:
    """Gate + locator + embedding through ONNX Runtime, and weight-free identification,
    of one 1920x1080 frame, alternating; medians in ms."""
    from embeddings.images import load_photo
    from embeddings.lite0 import install_lite0, lite0_folder
    from embeddings.registry import load_models
    from indexer.gallery import Gallery
    from tests.synthetic import encode, sighting

    # A survey frame: sea with an animal's markings in a quarter of it.
    rng = np.random.default_rng(1)
    pixels = rng.normal(95, 6, (1080, 1920, 3)).clip(0, 255).astype(np.uint8)
    pixels[300:940, 700:1660] = cv2.resize(sighting("w-7", 9), (960, 640))
    frame = load_photo(encode(pixels, "JPEG"))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        install_lite0(lite0_folder(data))
        models = load_models(None, data_dir=data)
        assert models.gate and models.locator and models.embedder
        gate, locator, embedder = models.gate, models.locator, models.embedder
        with Gallery.open(data / "gallery") as gallery:
            for i in range(GALLERY_INDIVIDUALS):
                for seed in range(3):
                    gallery.catalogue.enrol(load_photo(encode(sighting(f"w-{i}", seed))), f"w-{i}")
            gallery.calibrator.refit_if_due()

            def lite0_once() -> None:
                # A fresh copy: the network's one-pass cache must not serve the photo.
                photo = Photo(pixels=frame.pixels.copy(), sha256=frame.sha256, format="JPEG")
                gate.check(photo)
                locator.locate(photo)
                embedder.extract(photo)

            def identify_once() -> None:
                gallery.pipeline.identify_photo(frame)

            lite0_once(), identify_once()
            lite0_ms, identify_ms = [], []
            for _ in range(runs):
                for once, times in ((lite0_once, lite0_ms), (identify_once, identify_ms)):
                    started = time.perf_counter()
                    once()
                    times.append(1000 * (time.perf_counter() - started))
    return {
        "model": f"{gate.name}-{gate.version}",
        "lite0_ms_p50": statistics.median(lite0_ms),
        "lite0_ms_p95": float(np.percentile(lite0_ms, 95)),
        "identify_ms_p50": statistics.median(identify_ms),
        "identify_ms_p95": float(np.percentile(identify_ms, 95)),
        "gallery_photos": 3 * GALLERY_INDIVIDUALS,
    }


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def _markdown(r: dict) -> str:
    met, lite0 = r["bars_met"], r["lite0"]
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

## The default install: pretrained EfficientNet-Lite0 (real ImageNet weights)

One forward pass at 224 px gives the gate score, the class activation map the locator
boxes the animals from, and the pooled embedding. Model {lite0["model"]}, ONNX Runtime on
all cores, one 1920x1080 survey frame, preprocessing included; alternating run by run with
the weight-free identification of the same frame ({lite0["gallery_photos"]} synthetic
gallery photos), {r["runs"]} runs each.

| measure | p50 | p95 |
|---|---|---|
| gate + locator + embedding (Lite0, ONNX Runtime) | {lite0["lite0_ms_p50"]:.1f} ms | {lite0["lite0_ms_p95"]:.1f} ms |
| weight-free identification (RootSIFT + search), same frame | {lite0["identify_ms_p50"]:.0f} ms | {lite0["identify_ms_p95"]:.0f} ms |

| bar | measured | target | met |
|---|---|---|---|
| gate + locator + embedding p50 per 1920x1080 photo | {lite0["lite0_ms_p50"]:.1f} ms | <= {BARS["lite0_ms_p50"]:.0f} ms | {"yes" if met["lite0_ms_p50"] else "no"} |
"""


if __name__ == "__main__":
    sys.exit(main())
