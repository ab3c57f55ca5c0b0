"""Installed models under models_dir: what ``llm-installer list`` shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_runtime.model_info import ModelInfo, ModelInfoError, read_model_info


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TB"


def installed_models(models_dir: Path) -> list[dict[str, Any]]:
    """One entry per model folder: id, family, image, status (complete/incomplete/running) and size."""
    if not models_dir.is_dir():
        return []
    from llm_installer.run.installed import running_models

    running = running_models(models_dir)
    models = [_describe(folder) for folder in sorted(models_dir.iterdir()) if folder.is_dir()]
    for model in models:
        live = running.get(model["path"]) or running.get(str(Path(model["path"]).resolve()))
        if live:
            model.update(status=f"running ({live.role})", url=live.url, port=live.port)
    return models


def _describe(folder: Path) -> dict[str, Any]:
    """One row of `list`; a folder whose model_info.json is missing or invalid still shows."""
    try:
        info: ModelInfo | None = read_model_info(folder / "model_info.json")
    except ModelInfoError:
        info = None
    size = folder_size(folder)
    return {
        "name": folder.name,
        "model_id": (info and info.model_id) or folder.name.replace("_", "/", 1),
        "family": (info and info.family) or "unknown",
        "status": "complete" if (folder / ".install_complete").exists() else "incomplete",
        "image": (info and info.image_tag) or "-",
        "size_bytes": size,
        "size": human_size(size),
        "path": str(folder),
    }
