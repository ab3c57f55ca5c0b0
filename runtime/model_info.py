"""model_info.json as one typed, versioned ``ModelInfo``: read, migrated and written here only.

The host writes it at install (check's profile + the install's facts); start, train and the
runtime read it. Reading is strict: a file of this schema must hold exactly these keys, each of
its type, else a clear error names the file and what to do. A file without ``schema_version``
(older installs, or a hand-written override such as ``{"family": "embedding"}``) is migrated:
its old key names are renamed and what it lacks takes the default. A file from a newer
llm-installer is refused. Standard library only: both sides import it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
FILE_NAME = "model_info.json"
MODEL_INFO_ENV = "LLM_MODEL_INFO"  # where the image keeps it (/opt/llm/model_info.json)
_EMPTY: Mapping[str, Any] = {}


class ModelInfoError(ValueError):
    """model_info.json cannot be used as it is; the message says which file and what to do."""


@dataclass(frozen=True)
class ModelInfo:
    """One installed model: who it is, how it is served, and what check found."""

    schema_version: int = SCHEMA_VERSION
    # Identity.
    model_id: str = ""
    family: str | None = None  # None only in a hand-written file: the runtime detects it
    source: str = "hub"  # hub | local
    revision: str | None = None
    sha: str | None = None
    local_path: str | None = None
    # Detection (llm_installer.check.families.base.Detection).
    library: str | None = None
    task: str | None = None
    architecture: str | None = None
    model_type: str | None = None
    capabilities: tuple[str, ...] = ()
    is_moe: bool = False
    is_reasoning: bool | None = None  # None: the runtime decides from the tokenizer
    trust_remote_code: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)
    lora_target_modules: tuple[str, ...] = ()
    # Serving.
    engine: str = "transformers"
    engine_reason: str | None = None
    engine_fallback_reason: str | None = None
    device: str = "cpu"
    quantization: str | None = None  # 4bit | 8bit (bitsandbytes)
    requires_gpu: bool = False
    gguf_file: str | None = None
    gguf_quantization: str | None = None
    adapter: Mapping[str, Any] | None = None  # a PEFT adapter served on base_model
    base_model: Mapping[str, Any] | None = None
    # Install facts.
    weights_path: str | None = None
    model_dir: str | None = None
    installer_dir: str | None = None
    installer_python: str | None = None
    image: Mapping[str, Any] = field(default_factory=dict)  # tag, base_image, deps_image…
    smoke_test: Mapping[str, Any] | None = None
    pip_freeze: tuple[str, ...] = ()
    checked_at: str | None = None
    installed_at: str | None = None
    installer_version: str | None = None
    runtime_version: str | None = None
    # check's report, kept for list, the lock and deploy.
    hub: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, Any] = field(default_factory=dict)
    requirements: Mapping[str, Any] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    storage: Mapping[str, Any] = field(default_factory=dict)
    memory: Mapping[str, Any] = field(default_factory=dict)
    cuda: Mapping[str, Any] | None = None
    compatibility: Mapping[str, Any] = field(default_factory=dict)
    training_support: Mapping[str, Any] = field(default_factory=dict)
    quantizations: tuple[Mapping[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def image_tag(self) -> str | None:
        return self.image.get("tag") or None

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(self.requirements.get("packages") or ())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, every key present."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=_jsonable))

    def replace(self, **changes: Any) -> ModelInfo:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = FILE_NAME) -> ModelInfo:
        """Strict: migrate an older schema, then refuse unknown, missing or ill-typed keys."""
        if not isinstance(data, Mapping):
            raise ModelInfoError(f"{where} does not hold a JSON object. {REINSTALL}")
        version = data.get("schema_version", 0)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ModelInfoError(
                f"{where} has schema_version {version!r}; this llm-installer/llm_runtime reads "
                f"up to {SCHEMA_VERSION}. Upgrade llm-installer, or reinstall the model with "
                "this one."
            )
        migrated = _migrate(dict(data), version)
        return cls._checked(migrated, where, strict_missing=version == SCHEMA_VERSION)

    @classmethod
    def new(cls, **values: Any) -> ModelInfo:
        """A fresh record (what install writes): what it lacks takes the default; unknown or
        ill-typed keys are a programming error."""
        values = {**values, "schema_version": SCHEMA_VERSION}
        return cls._checked(values, "the new model_info", strict_missing=False)

    @classmethod
    def _checked(cls, data: Mapping[str, Any], where: str, *, strict_missing: bool) -> ModelInfo:
        _require_exact_keys(data, where, strict_missing=strict_missing)
        return cls(**{name: _checked(name, value, where) for name, value in data.items()})


REINSTALL = "Reinstall the model (`llm-installer install MODEL --yes`) to rewrite it."
# Keys older files used, and what they are now.
_RENAMED = {"model_family": "family", "target_modules": "lora_target_modules"}
# Keys older files carried that nothing reads any more.
_DROPPED = ("hardware", "training")


def _migrate(data: dict[str, Any], version: int) -> dict[str, Any]:
    """An older (or unversioned, hand-written) file as this schema; fills what it lacks."""
    if version == SCHEMA_VERSION:
        return data
    for old, new in _RENAMED.items():
        if old in data:
            value = data.pop(old)
            data.setdefault(new, value)
    caps = data.get("capabilities")
    if isinstance(caps, Mapping):  # the first files wrote a dict of flags
        data.setdefault("is_reasoning", caps.get("supports_reasoning"))
        data["capabilities"] = []  # flags, not the labels install writes now
    training = data.get("training")
    if isinstance(training, Mapping) and training.get("target_modules"):
        data.setdefault("lora_target_modules", training["target_modules"])
    if isinstance(data.get("engine"), Mapping):  # check's summary, not an install's choice
        data["engine"] = data["engine"].get("engine") or "transformers"
    recommended = (data.get("compatibility") or {}).get("recommended") or {}
    if "device" not in data and recommended.get("device"):  # what start used to fall back on
        data["device"] = recommended["device"]
    for key in _DROPPED:
        data.pop(key, None)
    if data.get("lora_target_modules") in (None, "all-linear"):
        data.pop("lora_target_modules", None)
    data["schema_version"] = SCHEMA_VERSION
    return data


def _require_exact_keys(data: Mapping[str, Any], where: str, *, strict_missing: bool) -> None:
    names = set(_hints())
    unknown = sorted(set(data) - names)
    if unknown:
        raise ModelInfoError(
            f"{where} has keys this version does not know: {', '.join(unknown)}. {REINSTALL}"
        )
    missing = sorted(names - set(data))
    if strict_missing and missing:
        raise ModelInfoError(f"{where} lacks the keys {', '.join(missing)}. {REINSTALL}")


@cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(ModelInfo)


def _checked(name: str, value: Any, where: str) -> Any:
    """``value`` converted to the field's type (lists → tuples); a wrong type is an error."""
    hint = _hints()[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    if value is None and optional:
        return None
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    origin = typing.get_origin(base) or base
    if origin is tuple and isinstance(value, (list, tuple)):
        item = typing.get_args(base)[0]
        if all(isinstance(v, typing.get_origin(item) or item) for v in value):
            return tuple(value)
    if origin is Mapping and isinstance(value, Mapping):
        return dict(value)
    if origin in (str, int) and isinstance(value, origin) and not isinstance(value, bool):
        return value
    if origin is bool and isinstance(value, bool):
        return value
    kind = "a list" if origin is tuple else getattr(origin, "__name__", str(base))
    raise ModelInfoError(
        f"{where}: {name!r} should be {kind}{' or null' if optional else ''}, not "
        f"{type(value).__name__} ({value!r:.60}). {REINSTALL}"
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON data")


def read_model_info(path: Path) -> ModelInfo:
    """The ModelInfo in ``path``; unreadable, malformed or invalid files raise ModelInfoError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelInfoError(f"Cannot read {path}: {exc.strerror or exc}. {REINSTALL}") from exc
    except (ValueError, RecursionError) as exc:
        raise ModelInfoError(f"{path} is not valid JSON ({exc}). {REINSTALL}") from exc
    return ModelInfo.from_dict(data, str(path))


def write_model_info(path: Path, info: ModelInfo | Mapping[str, Any]) -> ModelInfo:
    """Write ``info`` (validated, every key present) to ``path``; returns what was written."""
    record = info if isinstance(info, ModelInfo) else ModelInfo.new(**info)
    path.write_text(json.dumps(record.to_dict(), indent=2) + "\n", encoding="utf-8")
    return record


def model_info_candidates(model_dir: Path) -> list[Path]:
    """Where model_info.json may be: $LLM_MODEL_INFO, DIR/, DIR/.. (/model -> /model_info.json)."""
    found = [Path(os.environ[MODEL_INFO_ENV])] if os.environ.get(MODEL_INFO_ENV) else []
    return [*found, model_dir / FILE_NAME, model_dir.absolute().parent / FILE_NAME]


def model_info_path(model_dir: Path) -> Path | None:
    """The model_info.json that describes the model in ``model_dir`` (the first found), if any."""
    return next((p for p in model_info_candidates(model_dir) if p.is_file()), None)
