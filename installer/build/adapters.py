"""PEFT adapter repos: checked and installed on their base model (a Hub id or a local folder).

``check`` of an adapter checks its base too and reports the base's family, memory and
requirements with the adapter named beside them. ``install`` installs (or reuses) the base, then
gives the adapter a folder of its own whose ``lora/`` holds the adapter and whose
``model_info.json`` points at the base's weights folder and image: every adapter of one base
shares both.
"""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llm_installer.errors import InstallerError
from llm_runtime.contract import PEFT_ADAPTER
from llm_runtime.model_info import ModelInfo, read_model_info, write_model_info

ADAPTER_FAMILY = PEFT_ADAPTER
BASE_KEY = "base_model_name_or_path"
# What the merged profile keeps from the adapter's own check (the rest comes from the base's).
ADAPTER_KEYS = ("model_id", "revision", "sha", "source", "local_path", "checked_at")


class AdapterBaseError(InstallerError):
    exit_code = 25
    hint = "Name the base model with --base (a Hub id or a local folder)."


def is_adapter(profile: dict[str, Any]) -> bool:
    """True for a profile check made of an adapter repo."""
    return profile.get("family") == ADAPTER_FAMILY or "adapter" in profile


def base_reference(profile: dict[str, Any], override: str | None = None) -> str:
    """The base model to check and install: ``--base``, else the adapter's config."""
    base = override or (profile.get("details") or {}).get(BASE_KEY)
    if not base:
        raise AdapterBaseError(
            f"{profile['model_id']} is a PEFT adapter that names no base model ({BASE_KEY})."
        )
    return str(base)


def with_base(adapter: dict[str, Any], base: dict[str, Any], reference: str) -> dict[str, Any]:
    """The adapter's profile as install and the report use it: the base's family, memory and
    requirements, the adapter's identity, and both named."""
    if base.get("family") == ADAPTER_FAMILY:
        raise AdapterBaseError(
            f"The base model {reference} of {adapter['model_id']} is itself an adapter."
        )
    merged = {key: value for key, value in base.items() if key not in ADAPTER_KEYS}
    merged.update({key: adapter.get(key) for key in ADAPTER_KEYS})
    merged["capabilities"] = [*base.get("capabilities", []), "Adapter"]
    merged["adapter"] = {
        "model_id": adapter["model_id"],
        "peft_type": adapter.get("architecture"),
        "details": adapter.get("details") or {},
        "files": adapter["files"]["all"],
        "bytes": adapter["files"]["total_bytes"],
    }
    merged["base_model"] = {
        "reference": reference,
        "model_id": base["model_id"],
        "source": base["source"],
        "revision": base.get("revision"),
        "sha": base.get("sha"),
        "local_path": base.get("local_path"),
        "family": base["family"],
    }
    requirements = dict(base["requirements"])
    if "peft" not in requirements["packages"]:
        requirements["base"] = [*requirements["base"], "peft"]
        requirements["packages"] = [*requirements["packages"], "peft"]
    merged["requirements"] = requirements
    note = f"PEFT adapter ({adapter.get('architecture') or 'LoRA'}) on {base['model_id']}: memory and requirements are the base model's."
    merged["warnings"] = [note, *base.get("warnings", [])]
    return merged


def install_adapter(profile: dict[str, Any], options: Any, settings: Any, output: Any) -> ModelInfo:
    """Install (or reuse) the base model, then the adapter in a folder of its own that shares the
    base's weights folder and image; returns the adapter's model_info."""
    from llm_installer.build import install

    base_info = installed_base(profile, options, settings, output)
    paths = install.ModelPaths.for_model(settings.models_path, profile["model_id"])
    install.prepare_folder(paths, options, settings, output)
    with install.install_log(paths.install_log), install.cleanup_on_failure(paths, output) as state:
        state.stage = "adapter"
        fetch_adapter(profile, paths.root / "lora", settings, output)
        info = adapter_info(profile, base_info, paths)
        write_model_info(paths.info, info)
        state.stage = "smoke test"
        info["smoke_test"] = smoke_test(info, paths, output)
        record = install.finish(paths, info, output)
    return record


def installed_base(profile: dict[str, Any], options: Any, settings: Any, output: Any) -> ModelInfo:
    """The base's model_info: its complete install when there is one, else a fresh install."""
    from llm_installer.build import install

    base = profile["base_model"]
    paths = install.ModelPaths.for_model(settings.models_path, base["model_id"])
    if paths.state == "complete":
        output.info(f"Base model {base['model_id']} is installed in {paths.root}: reused.")
        return read_model_info(paths.info)
    output.info(f"Installing the base model {base['reference']} first.")
    base_options = dataclasses.replace(options, base=None, revision=base.get("revision"), yes=True)
    return install.install_model(base["reference"], base_options, settings, output)


def fetch_adapter(profile: dict[str, Any], lora: Path, settings: Any, output: Any) -> None:
    """The adapter's files into lora/ (start.sh mounts it at /lora); an adapter there is kept."""
    if (lora / "adapter_config.json").is_file():
        output.info(f"{lora} already holds an adapter (perhaps trained further): kept.")
        return
    lora.mkdir(parents=True, exist_ok=True)
    if profile["source"] == "local":
        shutil.copytree(
            profile["local_path"], lora, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*")
        )
    else:
        from llm_installer.build.download import DownloadPlan, download

        files = tuple((f["path"], f["size"]) for f in profile["adapter"]["files"])
        plan = DownloadPlan(
            model_id=profile["model_id"],
            revision=profile.get("sha") or profile.get("revision"),
            files=files,
        )
        download(
            plan,
            lora,
            token=settings.token,
            workers=settings.max_download_workers,
            console=output.out,
        )
        shutil.rmtree(lora / ".cache", ignore_errors=True)
    for path in lora.rglob("*"):  # the container's non-root user reads it (peft saves 0600)
        path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))


def adapter_info(profile: dict[str, Any], base_info: ModelInfo, paths: Any) -> dict[str, Any]:
    """The adapter's model_info: the base's install facts (weights, image, family) + both named."""
    info = {
        field.name: getattr(base_info, field.name)
        for field in dataclasses.fields(base_info)
        if field.name not in ("smoke_test", "base_model", "adapter")
    }
    info.update({key: profile.get(key) for key in ADAPTER_KEYS})
    info.update(
        installed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        model_dir=str(paths.root.resolve()),
        capabilities=profile["capabilities"],
        warnings=profile["warnings"],
        adapter=profile["adapter"],
        base_model={**profile["base_model"], "model_dir": base_info.model_dir},
    )
    return info


def smoke_test(info: dict[str, Any], paths: Any, output: Any) -> dict[str, Any]:
    """The base's image serving the base's weights with the adapter: start's own plan."""
    from llm_installer.build.smoke import run_smoke_test, smoke_plan
    from llm_installer.docker_engine import connect

    with output.err.status("Smoke test: loading the base model and the adapter in its container…"):
        smoke = smoke_plan(ModelInfo.new(**info), paths.root)
        result = run_smoke_test(connect(), smoke.container, info["family"])
    return {"seconds_to_ready": result.seconds_to_ready, "request": result.request, "passed": True}
