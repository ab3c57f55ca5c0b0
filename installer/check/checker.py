"""``llm-installer check``: inventory → configs → family → requirements → estimates → hardware → report.

No weight bytes are read: only the file list, config files and safetensors headers.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llm_installer import __version__
from llm_installer.check.families import detect_family
from llm_installer.check.hardware import Hardware, probe_hardware
from llm_installer.check.local_source import load_local_source
from llm_installer.check.safetensors_header import read_local_params
from llm_installer.check.source import ModelSource
from llm_installer.console import Output
from llm_installer.errors import ModelNotFoundError, UsageError
from llm_installer.settings import Settings
from llm_runtime.contract import GGUF, PEFT_ADAPTER

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class CheckResult:
    """The profile (what --json prints and install reuses) and where it was saved."""

    profile: dict[str, Any]
    saved_to: Path | None


def run_check(
    model: str,
    *,
    revision: str | None,
    settings: Settings,
    output: Output | None = None,
    hardware: Hardware | None = None,
    save: bool = True,
    base: str | None = None,
) -> CheckResult:
    """Check ``model`` (a Hub id or a local folder) and build its profile.

    A PEFT adapter is checked on its base model (``base``, else the adapter's config names it).
    """
    output = output or Output()
    with output.err.status(f"Reading {model} (no weights)…"):
        source = load_source(model, revision=revision, settings=settings)
    with output.err.status("Detecting the model family…"):
        detection, requirements = detect_family(source)
    with output.err.status("Probing this machine…"):
        hardware = hardware or probe_hardware(settings.models_path)
    from llm_installer.check.profile import build_profile

    profile = build_profile(source, detection, requirements, hardware, settings)
    profile["checked_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    profile["installer_version"] = __version__
    if profile["family"] == PEFT_ADAPTER:
        profile = adapter_on_base(
            profile, base, settings=settings, output=output, hardware=hardware
        )
    if profile["family"] == GGUF:
        from llm_installer.check.gguf_quants import quantization_table

        profile["quantizations"] = quantization_table(profile, hardware)
    from llm_installer.check.engines import engine_summary

    profile["engine"] = engine_summary(profile)
    saved_to = save_check(profile, settings.logs_path / "checks") if save else None
    return CheckResult(profile=profile, saved_to=saved_to)


def adapter_on_base(
    adapter: dict[str, Any],
    base: str | None,
    *,
    settings: Settings,
    output: Output,
    hardware: Hardware,
) -> dict[str, Any]:
    """The adapter's profile merged with its base model's check (llm_installer.build.adapters)."""
    from llm_installer.build.adapters import base_reference, with_base

    reference = base_reference(adapter, base)
    beside = Path(adapter.get("local_path") or "/nonexistent") / reference
    if adapter["source"] == "local" and not Path(reference).is_absolute() and beside.is_dir():
        reference = str(beside.resolve())  # a base named relative to a local adapter folder
    output.info(f"{adapter['model_id']} is a PEFT adapter: checking its base model {reference}.")
    base_profile = run_check(
        reference, revision=None, settings=settings, output=output, hardware=hardware
    ).profile
    return with_base(adapter, base_profile, reference)


def load_source(model: str, *, revision: str | None, settings: Settings) -> ModelSource:
    """A local folder when ``model`` is a path, else a Hub repo id."""
    if not model.strip():
        raise UsageError(
            "The model is empty",
            hint="Name a Hub model (owner/name) or a local folder (./my-model).",
        )
    if is_local_folder(model):
        return with_local_tensor_params(load_local_source(Path(model).expanduser()))
    require_repo_id(model)
    from llm_installer.check.hub_source import (
        load_hub_source,  # huggingface_hub is imported only when needed
    )

    return load_hub_source(
        model, revision=revision, token=settings.token, cache_dir=settings.cache_path / "hub"
    )


def is_local_folder(model: str) -> bool:
    """True when ``model`` names an existing folder; a name the OS refuses (too long…) is not one."""
    try:
        return bool(model.strip()) and Path(model).expanduser().is_dir()
    except (OSError, ValueError):  # ENAMETOOLONG, an embedded NUL byte
        return False


def require_repo_id(model: str) -> None:
    """Refuse what is neither a folder nor a valid Hub id (the Hub client's own rules, too)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        valid = bool(REPO_ID.fullmatch(model)) and not model.startswith((".", "/", "~"))
        validate_repo_id(model)
    except HFValidationError:
        valid = False
    if not valid:
        shown = (
            model if len(model) <= 120 else f"{model[:60]}…{model[-20:]} ({len(model)} characters)"
        )
        raise ModelNotFoundError(
            f"{shown!r} is neither a local model folder nor a Hub model id",
            hint="Use owner/name for a Hub model (e.g. Qwen/Qwen3-4B) or the path of a folder with config.json.",
        )


def with_local_tensor_params(source: ModelSource) -> ModelSource:
    """Add parameter counts from a local folder's safetensors headers, and a telling model id.

    An installed model's weights live in ``<owner>_<name>/model``: its id is the parent's name.
    """
    root = Path(source.local_path or ".")
    counts = {
        f.path: read_local_params(root / f.path) for f in source.files_matching(".safetensors")
    }
    model_id = root.parent.name if root.name == "model" else root.name
    return dataclasses.replace(
        source, model_id=model_id, tensor_params={p: c for p, c in counts.items() if c}
    )


def check_file_stem(model_id: str) -> str:
    """``owner/name`` → ``owner_name`` (the name of saved checks and model folders)."""
    return model_id.strip("/").replace("/", "_")


def save_check(profile: dict[str, Any], folder: Path) -> Path | None:
    """Write the report text and the JSON profile for install to reuse."""
    from llm_installer.check.report import report_text

    try:
        folder.mkdir(parents=True, exist_ok=True)
        stem = check_file_stem(profile["model_id"])
        (folder / f"{stem}.json").write_text(json.dumps(profile, indent=2, default=str))
        (folder / f"{stem}.txt").write_text(report_text(profile))
    except OSError:
        return None
    return folder / f"{stem}.json"
