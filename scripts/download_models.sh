#!/usr/bin/env bash
# Fetch the upstream model files listed in models/manifest.json into models/checkpoints/,
# for a machine with internet access. Each file is downloaded to NAME.partial and renamed
# only when complete and, where the manifest records a sha256, only when it matches.
#
#   scripts/download_models.sh            # every file
#   scripts/download_models.sh clip-gate  # the files of one model
#
# The Happywhale checkpoint has no single canonical address: set WHALEID_ARCFACE_CKPT_URL,
# WHALEID_ARCFACE_CLASSES_URL and WHALEID_ARCFACE_SPECIES_URL to where you obtained it.
# Then: python scripts/export_onnx.py --arcface ... --clip ... --out models
set -euo pipefail
cd "$(dirname "$0")/.."
only="${1:-}"
mkdir -p models/checkpoints
python3 - "$only" <<'PY' | while IFS=$'\t' read -r name url sha; do
import json, sys
only = sys.argv[1]
for f in json.load(open("models/manifest.json"))["files"]:
    if not only or f["model"] == only:
        print(f["name"], f["source"], f["sha256"] or "-", sep="\t")
PY
  if [[ "$url" == env:* ]]; then
    var="${url#env:}"
    url="${!var:-}"
    if [[ -z "$url" ]]; then
      echo "skip $name: set $var to its download address" >&2
      continue
    fi
  fi
  target="models/checkpoints/$name"
  if [[ -f "$target" ]]; then
    echo "have $target"
    continue
  fi
  echo "get  $name <- $url"
  curl --fail --location --retry 3 --continue-at - --output "$target.partial" "$url"
  got="$(sha256sum "$target.partial" | cut -d' ' -f1)"
  if [[ "$sha" != "-" && "$got" != "$sha" ]]; then
    echo "error: $name has sha256 $got, the manifest expects $sha; kept as $target.partial" >&2
    exit 1
  fi
  mv "$target.partial" "$target"
  if [[ "$sha" == "-" ]]; then
    echo "     $name sha256 $got (not recorded in models/manifest.json; check it with the publisher)"
  fi
done
