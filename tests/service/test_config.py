"""Settings: embedded defaults, TOML file, environment overrides, and loud errors."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from embeddings.keypoints import KeypointConfig
from indexer.config import EngineConfig
from service.config import (
    CONFIG_ENV,
    ENV_OVERRIDES,
    ConfigError,
    FeatureSettings,
    Settings,
    load_settings,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "whaleid.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_file_and_no_environment() -> None:
    settings = load_settings(environ={})

    assert settings == Settings()
    assert settings.data_dir == "./whaleid-data"
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 2)
    assert settings.max_upload_bytes == 30 * 2**20
    assert settings.max_image_pixels == 50_000_000
    assert settings.features.keypoints() == KeypointConfig()
    assert settings.engine == EngineConfig()


def test_toml_sets_fields_and_nested_tables(tmp_path: Path) -> None:
    path = toml(
        tmp_path,
        'data_dir = "/srv/whaleid"\nworkers = 6\n'
        "[features]\nlong_side = 800\nmax_features = 900\n"
        "[engine]\ntop_k = 10\n",
    )

    settings = load_settings(path, environ={})

    assert settings.data_dir == "/srv/whaleid"
    assert settings.workers == 6
    assert settings.features.keypoints() == KeypointConfig(long_side=800, max_features=900)
    assert settings.engine == EngineConfig(top_k=10)
    assert settings.port == 8000  # untouched fields keep their defaults


def test_config_file_comes_from_the_environment_unless_given(tmp_path: Path) -> None:
    from_env = toml(tmp_path, "port = 9001\n")
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("port = 9002\n", encoding="utf-8")

    assert load_settings(environ={CONFIG_ENV: str(from_env)}).port == 9001
    assert load_settings(explicit, environ={CONFIG_ENV: str(from_env)}).port == 9002


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = toml(tmp_path, 'data_dir = "/from/file"\nport = 9001\nworkers = 3\n')
    environ = {
        "WHALEID_DATA": "/from/env",
        "WHALEID_HOST": "0.0.0.0",
        "WHALEID_PORT": " 8080 ",
        "WHALEID_WORKERS": "8",
        "WHALEID_MAX_UPLOAD_BYTES": "1000",
    }

    settings = load_settings(path, environ=environ)

    assert settings.data_dir == "/from/env"
    assert settings.host == "0.0.0.0"
    assert settings.port == 8080
    assert settings.workers == 8
    assert settings.max_upload_bytes == 1000


@pytest.mark.parametrize("variable", sorted(ENV_OVERRIDES))
def test_empty_variable_counts_as_unset(variable: str) -> None:
    assert load_settings(environ={variable: ""}) == Settings()


def test_os_environ_is_read_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHALEID_PORT", "8123")
    monkeypatch.delenv(CONFIG_ENV, raising=False)

    assert load_settings().port == 8123


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param('dat_dir = "x"\n', "unknown field `dat_dir`", id="typo"),
        pytest.param(
            "[engine]\nneighbors = 3\n",
            "unknown field `neighbors` - at `$.engine`",
            id="nested-typo",
        ),
        pytest.param('[engine]\ntop_k = "five"\n', "$.engine.top_k", id="wrong-type"),
        pytest.param("port = 70000\n", "$.port", id="out-of-range"),
        pytest.param(
            "[features]\ncoarse_levels = [0.5]\n",
            "unknown field `coarse_levels` - at `$.features`",
            id="algorithm-constant-is-no-setting",
        ),
        pytest.param(
            "[features]\nlong_side = 10\n", "$.features.long_side", id="tiny-working-size"
        ),
        pytest.param("workers = 0\n", "$.workers", id="no-workers"),
        pytest.param('data_dir = ""\n', "$.data_dir", id="empty-data-dir"),
        pytest.param("port = [\n", "not valid TOML", id="syntax"),
    ],
)
def test_bad_file_fails_loudly_naming_file_and_key(tmp_path: Path, text: str, words: str) -> None:
    path = toml(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})

    assert str(caught.value).startswith(f"{path}: ")
    assert words in str(caught.value)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_settings(environ={CONFIG_ENV: str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("WHALEID_PORT", "http", "expected a whole number"),
        ("WHALEID_PORT", "0", ">= 1"),
        ("WHALEID_PORT", "65536", "<= 65535"),
        ("WHALEID_WORKERS", "2.5", "expected a whole number"),
        ("WHALEID_WORKERS", "0", ">= 1"),
        ("WHALEID_MAX_UPLOAD_BYTES", "30MB", "expected a whole number"),
        ("WHALEID_MAX_UPLOAD_BYTES", "-1", ">= 1"),
    ],
)
def test_bad_environment_value_names_the_variable(variable: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={variable: value})

    message = str(caught.value)
    assert message.startswith(f"{variable}={value!r}: ")
    assert words in message


def test_settings_are_frozen_and_refuse_unknown_fields() -> None:
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"prot": 1}, Settings)


def test_every_override_targets_a_real_field() -> None:
    assert set(ENV_OVERRIDES.values()) <= set(Settings.__struct_fields__)


def test_readme_documents_every_setting_and_variable() -> None:
    text = README.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\|\s*`([a-z0-9_]+)`", text, flags=re.MULTILINE))

    assert set(Settings.__struct_fields__) <= documented
    for table in (FeatureSettings, EngineConfig):
        assert all(f"`{field}`" in text for field in table.__struct_fields__), table.__name__
    assert all(f"`{variable}`" in text for variable in (*ENV_OVERRIDES, CONFIG_ENV))
