"""The service's settings: embedded defaults, then a TOML file, then environment variables.

Every setting has a default, so `whaleid serve` runs with no configuration at all. A TOML
file (given with `--config` or `WHALEID_CONFIG`) may set any field, including the
`[features]` and `[engine]` tables; an unknown key is an error naming the key, so a typo
never silently leaves a default in place. A few environment variables override the file
last, for containers and one-off runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec

from embeddings.keypoints import KeypointConfig
from indexer.config import EngineConfig

__all__ = [
    "CONFIG_ENV",
    "ENV_OVERRIDES",
    "ConfigError",
    "FeatureSettings",
    "Settings",
    "load_settings",
]

CONFIG_ENV = "WHALEID_CONFIG"
"""Environment variable naming the TOML file, when `load_settings` is given none."""

ENV_OVERRIDES: Mapping[str, str] = {
    "WHALEID_DATA": "data_dir",
    "WHALEID_HOST": "host",
    "WHALEID_PORT": "port",
    "WHALEID_WORKERS": "workers",
    "WHALEID_MAX_UPLOAD_BYTES": "max_upload_bytes",
    "WHALEID_API_KEY": "api_key",
    "WHALEID_MODELS": "models_dir",
}
"""Environment variable -> the `Settings` field it overrides."""

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_Positive = Annotated[int, msgspec.Meta(ge=1)]


class FeatureSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What an operator may trade in the local-feature extractor (TOML table
    `[features]`). Changing either changes the extractor's version: `whaleid serve` (at
    start) or `whaleid index rebuild` then re-extracts every photo's features from its
    stored file."""

    long_side: Annotated[int, msgspec.Meta(ge=64, le=4096)] = 600
    """Working size (pixels of the longer side): larger finds finer markings, slower."""
    max_features: Annotated[int, msgspec.Meta(ge=50, le=20_000)] = 1500
    """Keypoints kept per photo and level: more is slower and uses more memory."""

    def keypoints(self) -> KeypointConfig:
        """The extractor's full parameters with these settings."""
        return KeypointConfig(long_side=self.long_side, max_features=self.max_features)


class ConfigError(Exception):
    """Settings that cannot be used; the message names the file or variable at fault."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the CLI and the HTTP service can be configured with."""

    data_dir: _NonEmpty = "./whaleid-data"
    """Folder of the embedding database and its derived indexes (created if missing).
    A relative path is taken from the working directory. Env: `WHALEID_DATA`."""
    host: _NonEmpty = "127.0.0.1"
    """Address `whaleid serve` listens on; "0.0.0.0" to accept other machines.
    Env: `WHALEID_HOST`."""
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8000
    """TCP port `whaleid serve` listens on. Env: `WHALEID_PORT`."""
    max_upload_bytes: _Positive = 30 * 2**20
    """Largest accepted upload (one photo), in bytes; a larger request gets HTTP 413.
    Env: `WHALEID_MAX_UPLOAD_BYTES`."""
    max_image_pixels: _Positive = 50_000_000
    """Largest accepted width * height, checked from the header before decoding, so a
    small file that decodes to a huge image (a "decompression bomb") is refused."""
    workers: _Positive = 2
    """Threads for decoding, feature extraction and search. Each holds a decoded photo
    and its features in memory, so this bounds memory as well as CPU use.
    Env: `WHALEID_WORKERS`."""
    max_batch_bytes: _Positive = 512 * 2**20
    """Largest accepted batch request (a ZIP or several photos), in bytes."""
    max_batch_entries: _Positive = 2000
    """Most photos in one batch request; a ZIP with more files is refused whole."""
    max_compression_ratio: Annotated[float, msgspec.Meta(gt=1)] = 200.0
    """A ZIP entry that inflates more than this many times its compressed size is
    reported as too large without being inflated further (a "zip bomb")."""
    api_key: str | None = None
    """When set, every write (POST, PATCH, DELETE) must carry it in the `X-API-Key`
    header or as `Authorization: Bearer <key>`; identification counts as a read.
    Env: `WHALEID_API_KEY`."""
    protect_reads: bool = False
    """With an `api_key`, require it for reads and identification too. /health, /ready
    and /metrics stay open for orchestrators and Prometheus."""
    rate_limit_per_minute: Annotated[int, msgspec.Meta(ge=0)] = 1200
    """Requests per minute allowed from one client address (probes and /metrics are not
    counted); above it the answer is 429 with a `RateLimit-Reset` header. 0 turns the
    limit off."""
    access_log: bool = True
    """Log one line per HTTP request (uvicorn's access log)."""
    cors_origins: list[str] = []
    """Web origins allowed to call the API from a browser, e.g.
    `["https://catalogue.example.org"]`; empty sends no CORS headers."""
    models_dir: str | None = None
    """Folder of the exported deep models (`arcface-effb4/`, `clip-gate/`; see
    models/README.md), e.g. "./models". None (the default): no deep model, identification
    is weight-free. A model whose folder is absent is not used, and answers say so; a
    damaged model folder stops start-up with an error naming the file.
    Env: `WHALEID_MODELS`."""
    model_threads: Annotated[int, msgspec.Meta(ge=0)] = 0
    """ONNX Runtime threads per model call; 0 lets it use every core."""
    locator: bool = True
    """Find the animals in whole frames with the Lite0 network (`whaleid models
    install`) and identify each on its own box; false searches every photo whole."""
    lite0_embedding: bool = True
    """Without an ArcFace model, search and fuse Lite0's pooled features as the deep
    embedding of whole frames (photos no larger than `features.long_side` are crops,
    matched on their markings alone); reports/accuracy.md measures both ways. Photos
    enrolled before it was on get it with `whaleid index rebuild`."""
    features: FeatureSettings = FeatureSettings()
    """Local-feature extractor settings (TOML table `[features]`)."""
    engine: EngineConfig = EngineConfig()
    """Open-set threshold and default top-k (TOML table `[engine]`)."""


def load_settings(
    toml_path: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings: defaults, then the TOML file, then environment overrides.

    Args:
        toml_path: TOML file to read; None reads the file named by `WHALEID_CONFIG`, or
            none if that is unset.
        environ: the environment to read; None for `os.environ`. An empty variable
            counts as unset, as `VAR= whaleid ...` in a shell means "no value".

    Returns:
        The validated settings.

    Raises:
        ConfigError: the file cannot be read or parsed, has an unknown key or a value of
            the wrong type or range (the message names the file and the key), or an
            environment variable has a bad value (the message names the variable).
    """
    env = os.environ if environ is None else environ
    if toml_path is None and env.get(CONFIG_ENV):
        toml_path = Path(env[CONFIG_ENV])
    settings = Settings() if toml_path is None else _read_toml(Path(toml_path))

    data: dict[str, Any] = msgspec.to_builtins(settings)
    for variable, field in ENV_OVERRIDES.items():
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        value: object = raw
        if isinstance(data[field], int):
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{variable}={raw!r}: expected a whole number") from None
        data[field] = value
        try:
            # Checked after each variable so the error names the variable at fault.
            settings = msgspec.convert(data, Settings)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{variable}={raw!r}: {_without_path(exc)}") from None
    return settings


def _read_toml(path: Path) -> Settings:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        return msgspec.toml.decode(content, type=Settings)
    except msgspec.ValidationError as exc:
        # msgspec names the key, e.g. "Object contains unknown field `dat_dir`" or
        # "Expected `int`, got `str` - at `$.engine.top_k`".
        raise ConfigError(f"{path}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _without_path(exc: msgspec.ValidationError) -> str:
    """The validation message without msgspec's "- at `$.port`" suffix (the caller
    names the environment variable instead)."""
    message = str(exc)
    head, sep, _ = message.rpartition(" - at `$")
    return head if sep else message
