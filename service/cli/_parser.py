"""The argparse tree of `whaleid`: each leaf command names the function that runs it."""

from __future__ import annotations

import argparse
from pathlib import Path

from indexer.results import MAX_TOP_K
from service.cli import _catalogue, _identify, _index, _models, _serve

__all__ = ["build_parser"]


def _top_k(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_TOP_K:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_TOP_K}, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {value}")
    return value


_RAY_HELP = (
    "run the photos on the Ray cluster whose head is at ADDRESS (HOST:PORT; needs"
    " whaleid[cluster], and every worker must see the photos and the data folder at the"
    " same paths)"
)


def build_parser() -> argparse.ArgumentParser:
    # The shared options sit on every leaf command, not on the top-level parser:
    # argparse lets a sub-parser's default overwrite a value given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="data folder (default: WHALEID_DATA, the config file, or ./whaleid-data)",
    )
    common.add_argument(
        "--config", type=Path, metavar="TOML", help="settings file (default: WHALEID_CONFIG)"
    )

    parser = argparse.ArgumentParser(
        prog="whaleid",
        description="Photo-identification of individual whales and dolphins.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    enrol = commands.add_parser(
        "enrol",
        parents=[common],
        help="add labelled photos to the gallery",
        description="Enrol photos from a manifest CSV (path,individual_id,species) or a"
        " folder with one sub-folder per individual.",
    )
    enrol.add_argument("source", type=Path, metavar="SOURCE", help="manifest .csv or folder")
    enrol.add_argument("--ray", metavar="ADDRESS", help=_RAY_HELP)
    enrol.set_defaults(command=_catalogue.enrol)

    identify = commands.add_parser(
        "identify",
        parents=[common],
        help="identify individuals in photos",
        description="Identify photos named here, or every photo of a manifest or folder"
        " (--from). With --out, answers are appended to a JSON Lines file and a run that"
        " stops resumes where it stopped when run again.",
    )
    identify.add_argument("images", type=Path, nargs="*", metavar="IMAGE")
    identify.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="SOURCE",
        help="a manifest .csv (a path column is enough) or a folder of photos, at any depth",
    )
    identify.add_argument(
        "--out", type=Path, metavar="FILE", help="append answers here (JSON Lines), resumably"
    )
    identify.add_argument(
        "--top-k",
        type=_top_k,
        metavar="N",
        help=f"candidates to show, 1-{MAX_TOP_K} (default: engine.top_k)",
    )
    identify.add_argument("--json", action="store_true", help="one JSON object per line")
    identify.add_argument("--ray", metavar="ADDRESS", help=_RAY_HELP + "; needs --out")
    identify.set_defaults(command=_identify.identify, parser=identify)

    index = commands.add_parser("index", help="manage the search index")
    index_commands = index.add_subparsers(title="index commands", metavar="COMMAND", required=True)
    rebuild = index_commands.add_parser(
        "rebuild",
        parents=[common],
        help="re-extract missing features from the stored photos and rebuild the index",
        description="Give every stored photo the features of the current [features]"
        " settings and installed models, extracted from its stored file, then rebuild the"
        " search index and refit the calibration. Photos enrolled before photo files were"
        " kept are reported: enrol their files again.",
    )
    rebuild.add_argument(
        "--ray", metavar="ADDRESS", help="fill the index in shards on the Ray cluster at ADDRESS"
    )
    rebuild.set_defaults(command=_index.rebuild)
    centroids = index_commands.add_parser(
        "import-centroids",
        parents=[common],
        help="import the ArcFace centroids of the installed embedder's checkpoint",
    )
    centroids.add_argument("checkpoint", type=Path, help="the checkpoint (.ckpt) exported")
    centroids.add_argument("classes", type=Path, help="encoder_classes.npy: id of each row")
    centroids.add_argument("species_map", type=Path, help="CSV with individual_id,species")
    centroids.set_defaults(command=_index.import_centroids)

    evaluate = commands.add_parser(
        "evaluate",
        parents=[common],
        help="measure accuracy on a labelled manifest",
        description="Leave-one-out identification accuracy (top-1, top-5, MAP@5) on one or"
        " more manifests enrolled together, in a temporary gallery; the data folder is not"
        " touched.",
    )
    evaluate.add_argument("manifest", type=Path, nargs="+", metavar="MANIFEST")
    evaluate.add_argument(
        "--open-set",
        action="store_true",
        help="hold out 20%% of individuals, whose photos must come back as new",
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the open-set split")
    evaluate.add_argument(
        "--models",
        type=Path,
        metavar="DIR",
        help="measure with the deep models installed in DIR (default: models_dir)",
    )
    evaluate.add_argument(
        "--distractors",
        type=Path,
        action="append",
        default=[],
        metavar="MANIFEST",
        help="enrol these photos too, each as its own individual, and never query them:"
        " other animals that a whole-frame match on scene alone would pick (repeatable;"
        " photos whose species starts with not_cetacean are skipped)",
    )
    evaluate.add_argument(
        "--no-locator",
        action="store_true",
        help="search every photo whole, even where the Lite0 locator is installed",
    )
    evaluate.add_argument(
        "--no-lite0-embedding",
        action="store_true",
        help="do not fuse Lite0's pooled features as the deep embedding of whole frames",
    )
    evaluate.add_argument(
        "--json", type=Path, required=True, metavar="OUT", help="write the full report here"
    )
    evaluate.set_defaults(command=_identify.evaluate)

    export = commands.add_parser(
        "export", parents=[common], help="write all sightings as CSV or Darwin Core"
    )
    export.add_argument("--format", choices=("csv", "dwc"), default="csv")
    export.add_argument("--species", help="only individuals of this species")
    export.add_argument("--out", type=Path, metavar="FILE", help="write here (default: stdout)")
    export.add_argument(
        "--base-url",
        metavar="URL",
        help="the address `whaleid serve` is reached at, e.g. https://whaleid.example.org:"
        " Darwin Core associatedMedia then links each stored photo file there (without it,"
        " associatedMedia is empty)",
    )
    export.set_defaults(command=_catalogue.export)

    individual = commands.add_parser(
        "individual",
        help="list, show, rename, merge or delete individuals",
        description="Catalogue edits on the data folder. A `whaleid serve` running on the"
        " same folder answers from them within seconds.",
    )
    individual_commands = individual.add_subparsers(
        title="individual commands", metavar="COMMAND", required=True
    )
    listing = individual_commands.add_parser("list", parents=[common], help="list individuals")
    listing.add_argument("--species", help="only individuals of this species")
    listing.set_defaults(command=_catalogue.individuals)
    show = individual_commands.add_parser("show", parents=[common], help="one individual")
    show.add_argument("individual", metavar="ID")
    show.set_defaults(command=_catalogue.show)
    rename = individual_commands.add_parser("rename", parents=[common], help="change an id")
    rename.add_argument("old", metavar="ID")
    rename.add_argument("new", metavar="NEW_ID")
    rename.set_defaults(command=_catalogue.rename)
    merge = individual_commands.add_parser(
        "merge", parents=[common], help="move SOURCE's photos to TARGET and delete SOURCE"
    )
    merge.add_argument("source", metavar="SOURCE")
    merge.add_argument("target", metavar="TARGET")
    merge.set_defaults(command=_catalogue.merge)
    remove = individual_commands.add_parser(
        "delete", parents=[common], help="delete an individual and its photos"
    )
    remove.add_argument("individual", metavar="ID")
    remove.set_defaults(command=_catalogue.delete_individual)

    image = commands.add_parser("image", help="manage stored photos")
    image_commands = image.add_subparsers(title="image commands", metavar="COMMAND", required=True)
    image_delete = image_commands.add_parser("delete", parents=[common], help="delete a photo")
    image_delete.add_argument("image_id", type=int, metavar="IMAGE_ID")
    image_delete.set_defaults(command=_catalogue.delete_image)

    models = commands.add_parser("models", help="manage the built-in deep models")
    models_commands = models.add_subparsers(
        title="models commands", metavar="COMMAND", required=True
    )
    install = models_commands.add_parser(
        "install",
        parents=[common],
        help="build the default cetacean gate (EfficientNet-Lite0) into the data folder",
        description="Write the pretrained EfficientNet-Lite0 that comes with the install as"
        " ONNX into DATA/models/lite0/ (checked by sha256; rebuilt when damaged). The"
        " service and the CLI then gate every photo with it, unless a CLIP gate is"
        " installed in models_dir.",
    )
    install.set_defaults(command=_models.install)

    serve = commands.add_parser("serve", parents=[common], help="run the HTTP service")
    serve.add_argument("--host", help="listen address (default: settings.host)")
    serve.add_argument("--port", type=_port, help="listen port (default: settings.port)")
    serve.set_defaults(command=_serve.serve)

    stats = commands.add_parser("stats", parents=[common], help="count what the gallery holds")
    stats.set_defaults(command=_index.stats)
    return parser
