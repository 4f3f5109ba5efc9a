"""Write the CLIP gate's prompts with their BPE token ids to `embeddings/gate_prompts.json`.

The export needs token ids to embed the prompts, and open_clip's tokenizer cannot be
imported beside the CPU torch (it pulls in torchvision). So the ids are made once here, in
an environment where open_clip imports, and committed; `tests/reference/` checks that the
file still equals open_clip's tokenizer output. Run it after editing the prompts below:

    python scripts/tokenize_prompts.py
"""

from __future__ import annotations

import json
from pathlib import Path

import open_clip

CETACEAN = (
    "a photo of a whale",
    "a photo of a dolphin",
    "a photo of a whale's tail fluke above the water",
    "a photo of a dolphin's dorsal fin in the sea",
    "an aerial photo of a whale at the sea surface",
    "a photo of a humpback whale",
    "a photo of a killer whale",
    "a photo of a beluga whale",
    "a photo of a whale breaching",
    "a photo of a porpoise",
)
OTHER = (
    "a photo of the empty sea",
    "a photo of waves on the ocean",
    "a photo of a boat",
    "a photo of a seabird",
    "a photo of a seal",
    "a photo of a shark fin",
    "a photo of a fish",
    "a photo of a building",
    "a photo of a city street",
    "a photo of a forest",
    "a photo of a mountain",
    "a photo of a glacier",
    "a photo of people on a beach",
    "a photo of an animal on land",
)
OUT = Path(__file__).resolve().parents[1] / "embeddings" / "gate_prompts.json"


def tokenized() -> list[dict[str, object]]:
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    texts = CETACEAN + OTHER
    rows = tokenizer(list(texts)).tolist()
    return [
        {"text": text, "cetacean": text in CETACEAN, "tokens": [t for t in row if t != 0]}
        for text, row in zip(texts, rows, strict=True)
    ]


if __name__ == "__main__":
    # One prompt per line: a reviewable diff when a prompt changes.
    OUT.write_text("[\n" + ",\n".join(json.dumps(row) for row in tokenized()) + "\n]\n")
    print(f"wrote {OUT}")
