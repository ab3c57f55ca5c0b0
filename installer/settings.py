"""Effective configuration: defaults < config.yaml < environment, with the source of every value.

Token priority: ``HF_TOKEN`` > ``huggingface_token`` in config.yaml > none.
Every key can be overridden by ``LLM_INSTALLER_<KEY>`` (e.g. ``LLM_INSTALLER_MODELS_DIR``).
The config file is the first of: ``--config``, ``$LLM_INSTALLER_CONFIG``, ``config.yaml`` in the
installer's folder (what setup.sh writes), ``~/LLM/config.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from llm_installer.errors import ConfigFileError

PROJECT_DIR = Path(__file__).resolve().parent.parent
ENV_PREFIX = "LLM_INSTALLER_"
DEVICES = ("auto", "cuda", "cpu", "mps")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Settings:
    """The configuration keys of config.yaml (seed Step 1.4), with their defaults."""

    huggingface_token: str = ""
    models_dir: str = "~/LLM/models"
    cache_dir: str = "~/LLM/cache"
    logs_dir: str = "~/LLM/logs"
    default_device: str = "auto"
    max_download_workers: int = 4
    resume_downloads: bool = True
    min_disk_space_gb: float = 50
    warn_disk_space_gb: float = 100
    log_level: str = "INFO"
    log_rotation: str = "10MB"
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    config_file: str | None = field(default=None, compare=False)

    @property
    def models_path(self) -> Path:
        return Path(self.models_dir).expanduser()

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser()

    @property
    def logs_path(self) -> Path:
        return Path(self.logs_dir).expanduser()

    @property
    def token(self) -> str | None:
        return self.huggingface_token or None

    def public_dict(self) -> dict[str, Any]:
        """Values safe to print: the token is masked."""
        values = {k: getattr(self, k) for k in setting_names()}
        values["huggingface_token"] = mask_token(self.huggingface_token)
        return values


def setting_names() -> list[str]:
    return [f.name for f in fields(Settings) if f.name not in ("sources", "config_file")]


def mask_token(token: str) -> str:
    if not token:
        return ""
    return token[:3] + "…" + token[-2:] if len(token) > 8 else "***"


def find_config_file(explicit: str | None = None) -> Path | None:
    candidates = [explicit, os.environ.get(f"{ENV_PREFIX}CONFIG")]
    if explicit or candidates[1]:
        path = Path(next(c for c in candidates if c)).expanduser()
        if not path.is_file():
            raise ConfigFileError(f"Config file not found: {path}")
        return path
    for path in (PROJECT_DIR / "config.yaml", Path("~/LLM/config.yaml").expanduser()):
        if path.is_file():
            return path
    return None


def load_settings(config_path: str | None = None) -> Settings:
    """Merge defaults, the config file and the environment, recording each value's source."""
    names = setting_names()
    values: dict[str, Any] = {name: getattr(Settings, name) for name in names}
    sources = dict.fromkeys(names, "default")
    path = find_config_file(config_path)
    if path is not None:
        for key, value in _read_yaml(path).items():
            if key not in values:
                raise ConfigFileError(
                    f"Unknown key {key!r} in {path}", hint=f"Known keys: {', '.join(names)}"
                )
            if value is not None:
                values[key], sources[key] = value, f"config file {path}"
    for name in names:
        env_value = os.environ.get(ENV_PREFIX + name.upper())
        if env_value is not None:
            values[name], sources[name] = env_value, f"env {ENV_PREFIX}{name.upper()}"
    if os.environ.get("HF_TOKEN"):
        values["huggingface_token"], sources["huggingface_token"] = (
            os.environ["HF_TOKEN"],
            "env HF_TOKEN",
        )
    typed = {name: _coerce(name, values[name]) for name in names}
    return Settings(**typed, sources=sources, config_file=str(path) if path else None)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path} must be a mapping of keys to values")
    return data


def _coerce(name: str, value: Any) -> Any:
    default = getattr(Settings, name)
    try:
        if isinstance(default, bool):
            return (
                value
                if isinstance(value, bool)
                else str(value).strip().lower() in ("1", "true", "yes", "on")
            )
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigFileError(f"{name} must be a number, got {value!r}") from exc
    value = "" if value is None else str(value)
    if name == "default_device" and value not in DEVICES:
        raise ConfigFileError(f"default_device must be one of {', '.join(DEVICES)}, got {value!r}")
    if name == "log_level" and value.upper() not in LOG_LEVELS:
        raise ConfigFileError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return value.upper() if name == "log_level" else value


def parse_size(text: str) -> int:
    """'10MB' → 10485760 bytes (K/M/G, with or without B; plain numbers are bytes)."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    if cleaned and cleaned[-1] in units:
        return int(float(cleaned[:-1]) * units[cleaned[-1]])
    return int(float(cleaned))
