"""Robustness of identification to degraded photos, on the sets in ../shared/data.

    python scripts/benchmark_noise.py [--json reports/noise.json] [--queries 150]
        [--data ../shared/data] [--sets humpback-flukes,rightwhale,happywhale]

For each set, every identified photo is enrolled into a temporary gallery. A fixed random
sample of photos whose individual has another photo is then queried leave-one-out (its
own photo excluded from the search), once clean and once per perturbation:

- Gaussian noise, sigma 15 grey levels;
- JPEG at quality 15;
- Gaussian blur, sigma 0.5 % of the photo's longer side (1.5 px on a 300 px crop);
- downscaled to 25 % of each side;
- rotated by +15 or -15 degrees (alternating), the corners filled with grey;
- a grey rectangle over 25 % of the area (half of each side), at a random place. Being
  half of each side, it nearly always covers the photo's centre, where a catalogue crop
  has its animal: the harshest of the six for the cropped sets.

Reports top-1 per set and perturbation and the drop relative to clean; the target is at
most a 20 % relative drop for each. Writes the JSON given with `--json` and
`reports/noise.md`. Exits 0 with a message when the data folder is absent.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import msgspec
import numpy as np
from PIL import Image
from reporting import report_meta

from embeddings.images import load_photo_file
from embeddings.photo import ImageError, Photo
from indexer.gallery import Gallery

REPORT = Path(__file__).resolve().parents[1] / "reports" / "noise.md"
TARGET_DROP = 0.20

Perturbation = Callable[[np.ndarray, np.random.Generator, int], np.ndarray]


def _noise(rgb: np.ndarray, rng: np.random.Generator, _: int) -> np.ndarray:
    return np.clip(rgb + rng.normal(0, 15, rgb.shape), 0, 255).astype(np.uint8)


def _jpeg(rgb: np.ndarray, _: np.random.Generator, __: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=15)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _blur(rgb: np.ndarray, _: np.random.Generator, __: int) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), 0.005 * max(rgb.shape[:2]))


def _downscale(rgb: np.ndarray, _: np.random.Generator, __: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    size = (max(1, width // 4), max(1, height // 4))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _rotate(rgb: np.ndarray, _: np.random.Generator, i: int) -> np.ndarray:
    angle = 15.0 if i % 2 == 0 else -15.0
    image = Image.fromarray(rgb).rotate(angle, expand=True, fillcolor=(128, 128, 128))
    return np.asarray(image)


def _occlude(rgb: np.ndarray, rng: np.random.Generator, _: int) -> np.ndarray:
    out = rgb.copy()
    height, width = rgb.shape[:2]
    h, w = height // 2, width // 2  # half of each side: a quarter of the area
    top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
    out[top : top + h, left : left + w] = 128
    return out


PERTURBATIONS: dict[str, Perturbation] = {
    "gaussian noise (sigma 15)": _noise,
    "JPEG quality 15": _jpeg,
    "blur (sigma 0.5% of long side)": _blur,
    "downscale to 25%": _downscale,
    "rotation +-15 degrees": _rotate,
    "occlusion (25% of the area)": _occlude,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--queries", type=int, default=150, help="queries per set")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--sets", default="humpback-flukes,rightwhale,happywhale")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: no data folder at {args.data} (it is not distributed)")
        return 0
    results = {
        **report_meta(),
        "queries_per_set": args.queries,
        "target_drop": TARGET_DROP,
        "sets": {},
    }
    for name in args.sets.split(","):
        results["sets"][name] = _run_set(args.data / name / "manifest.csv", args.queries)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    REPORT.write_text(_markdown(results))
    print(f"wrote {REPORT}")
    return 0


def _run_set(manifest: Path, queries: int) -> dict:
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.DictReader(f) if r.get("individual_id")]
    with tempfile.TemporaryDirectory() as tmp, Gallery.open(Path(tmp)) as gallery:
        enrolled: list[tuple[Path, int, str]] = []
        for i, row in enumerate(rows, start=1):
            path = manifest.parent / row["path"]
            try:
                result = gallery.catalogue.enrol(load_photo_file(path), row["individual_id"])
            except ImageError:
                continue
            enrolled.append((path, result.image_id, row["individual_id"]))
            if i % 100 == 0:
                print(f"{manifest.parent.name}: enrolled {i}/{len(rows)}", file=sys.stderr)
        counts: dict[str, int] = {}
        for _, _, individual in enrolled:
            counts[individual] = counts.get(individual, 0) + 1
        candidates = [e for e in enrolled if counts[e[2]] > 1]
        rng = np.random.default_rng(0)
        sample = [candidates[i] for i in sorted(rng.permutation(len(candidates))[:queries])]
        hits = {name: 0 for name in ["clean", *PERTURBATIONS]}
        for i, (path, image_id, individual) in enumerate(sample):
            clean = load_photo_file(path)
            for name in hits:
                pixels = clean.pixels
                if name != "clean":
                    pixels = PERTURBATIONS[name](pixels, np.random.default_rng(i), i)
                photo = msgspec.structs.replace(clean, pixels=np.ascontiguousarray(pixels))
                hits[name] += _top1(gallery, photo, image_id) == individual
            if (i + 1) % 25 == 0:
                print(f"{manifest.parent.name}: {i + 1}/{len(sample)} queries", file=sys.stderr)
    n = max(1, len(sample))
    top1 = {name: count / n for name, count in hits.items()}
    return {
        "images": len(enrolled),
        "queries": len(sample),
        "top1": top1,
        "relative_drop": {
            name: (1 - top1[name] / top1["clean"]) if top1["clean"] else None
            for name in PERTURBATIONS
        },
    }


def _top1(gallery: Gallery, photo: Photo, image_id: int) -> str | None:
    answer = gallery.pipeline.identify_photo(photo, exclude=[image_id], top_k=1)
    return answer.candidates[0].individual_id if answer.candidates else None


def _markdown(r: dict) -> str:
    names = list(PERTURBATIONS)
    lines = [
        "# Robustness to degraded photos (weight-free RootSIFT path)",
        "",
        f"- command: `{r['command']}`",
        f"- date: {r['date']}",
        f"- machine: {r['machine']}",
        f"- protocol: leave-one-out top-1 on a fixed random sample of {r['queries_per_set']}"
        " queries per set (fewer where the set has fewer), clean and perturbed; the gallery"
        " holds the clean photos. Target: at most a"
        f" {100 * r['target_drop']:.0f} % relative drop for each perturbation.",
        "",
        "| set | queries | clean | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for name, s in r["sets"].items():
        cells = []
        for p in names:
            drop = s["relative_drop"][p]
            mark = "" if drop is None else (" ok" if drop <= r["target_drop"] else " **over**")
            drop_text = "n/a" if drop is None else f"{-100 * drop:+.0f}%"
            cells.append(f"{s['top1'][p]:.3f} ({drop_text}{mark})")
        lines.append(
            f"| {name} | {s['queries']} | {s['top1']['clean']:.3f} | " + " | ".join(cells) + " |"
        )
    lines += ["", "Cells: top-1 (change relative to clean; ok = a drop within the target)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
