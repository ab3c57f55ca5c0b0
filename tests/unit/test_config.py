"""Configuration: defaults < config.yaml < environment, token priority, sources, bad values."""

from __future__ import annotations

import pytest

from llm_installer.errors import ConfigFileError
from llm_installer.settings import load_settings, mask_token, parse_size


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in (
        "HF_TOKEN",
        "LLM_INSTALLER_CONFIG",
        "LLM_INSTALLER_MODELS_DIR",
        "LLM_INSTALLER_LOG_LEVEL",
    ):
        monkeypatch.delenv(name, raising=False)


def write_config(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_file_values_and_sources(tmp_path):
    path = write_config(
        tmp_path, "models_dir: /data/models\nmax_download_workers: 8\nresume_downloads: false\n"
    )
    settings = load_settings(path)
    assert settings.models_dir == "/data/models"
    assert settings.max_download_workers == 8
    assert settings.resume_downloads is False
    assert settings.sources["models_dir"] == f"config file {path}"
    assert settings.sources["cache_dir"] == "default"


def test_env_overrides_file(tmp_path, monkeypatch):
    path = write_config(tmp_path, "models_dir: /data/models\n")
    monkeypatch.setenv("LLM_INSTALLER_MODELS_DIR", "/env/models")
    settings = load_settings(path)
    assert settings.models_dir == "/env/models"
    assert settings.sources["models_dir"] == "env LLM_INSTALLER_MODELS_DIR"


def test_token_priority_env_over_config(tmp_path, monkeypatch):
    path = write_config(tmp_path, 'huggingface_token: "hf_from_config"\n')
    assert load_settings(path).token == "hf_from_config"
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    settings = load_settings(path)
    assert settings.token == "hf_from_env"
    assert settings.sources["huggingface_token"] == "env HF_TOKEN"
    assert "hf_from_env" not in str(settings.public_dict())


def test_no_token_is_none(tmp_path):
    assert load_settings(write_config(tmp_path, "{}\n")).token is None


@pytest.mark.parametrize(
    "text, needle",
    [
        ("unknown_key: 1\n", "Unknown key"),
        ("max_download_workers: many\n", "must be a number"),
        ("default_device: tpu\n", "default_device"),
        ("log_level: LOUD\n", "log_level"),
        ("models_dir: [unclosed\n", "not valid YAML"),
        ("- a list\n", "mapping"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, needle):
    with pytest.raises(ConfigFileError, match=needle):
        load_settings(write_config(tmp_path, text))


def test_missing_explicit_config(tmp_path):
    with pytest.raises(ConfigFileError, match="not found"):
        load_settings(str(tmp_path / "nope.yaml"))


def test_parse_size_and_mask():
    assert parse_size("10MB") == 10 * 1024**2
    assert parse_size("1.5G") == int(1.5 * 1024**3)
    assert parse_size("2048") == 2048
    assert mask_token("hf_abcdefghijkl") == "hf_…kl"
    assert mask_token("") == ""
