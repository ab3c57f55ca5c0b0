"""Installed models and what runs now: MODEL → its folder, the containers and native servers.

Containers carry the label ``org.llm-installer.model-dir=<folder>``, which is how ``start``,
``train``, ``stop``, ``remove`` and ``list`` find them again; a native (macOS) server started
with ``--detach`` leaves its process id in the model folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from llm_installer.errors import DockerUnavailableError, InstallerError
from llm_installer.run.container import LABEL_MODEL_DIR, LABEL_PREFIX
from llm_runtime import model_info
from llm_runtime.model_info import ModelInfo

COMPLETE_MARKER = ".install_complete"
NATIVE_PID_FILE = ".native.pid"
MAX_NAME = 255  # longer names the OS refuses (ENAMETOOLONG)


class ModelNotInstalledError(InstallerError):
    exit_code = 33
    hint = "See what is installed with `llm-installer list`, or install it with `llm-installer install MODEL`."


class IncompleteInstallError(InstallerError):
    exit_code = 34
    hint = "Run `llm-installer install MODEL` again: it cleans up and starts fresh."


class InvalidModelInfoError(IncompleteInstallError):
    hint = "Reinstall the model (`llm-installer install MODEL --yes`): it rewrites model_info.json."


def load_model_info(model_dir: Path) -> ModelInfo:
    """The folder's model_info.json, read strictly (llm_runtime.model_info: one typed,
    versioned record; older files migrated); a broken or foreign one is a clear error."""
    try:
        return model_info.read_model_info(model_dir / model_info.FILE_NAME)
    except model_info.ModelInfoError as exc:
        raise InvalidModelInfoError(str(exc)) from None


def read_model_info(model_dir: Path) -> ModelInfo | None:
    """The folder's model_info, or None when it has none usable."""
    try:
        return load_model_info(model_dir)
    except InvalidModelInfoError:
        return None


def resolve_model_dir(model: str, models_dir: Path) -> Path:
    """MODEL as a path, a folder name under models_dir, or a Hub id (owner/name)."""
    from llm_installer.check.checker import check_file_stem, is_local_folder

    if not model.strip():  # "" is not the current folder
        raise ModelNotInstalledError("The model is empty: name an installed model")
    if not is_local_folder(model) and len(model) > MAX_NAME:  # no folder or Hub id is that long
        raise ModelNotInstalledError(
            f"{model[:60]}… ({len(model)} characters) is not installed in {models_dir}"
        )
    candidates = [Path(model).expanduser(), models_dir / model, models_dir / check_file_stem(model)]
    for folder in candidates:
        if (folder / "model_info.json").is_file() or (folder / COMPLETE_MARKER).exists():
            return folder.resolve()
    for folder in _model_folders(models_dir):
        info = read_model_info(folder)
        if info is not None and info.model_id.lower() == model.lower():
            return folder.resolve()
    inside = [f for f in candidates[1:] if f.is_dir() and f.parent == models_dir]
    if inside:  # a folder without model_info.json: an interrupted install (stop/remove still work)
        return inside[0].resolve()
    raise ModelNotInstalledError(f"{model} is not installed in {models_dir}")


def _model_folders(models_dir: Path) -> list[Path]:
    return sorted(f for f in models_dir.iterdir() if f.is_dir()) if models_dir.is_dir() else []


def require_installed(model_dir: Path) -> ModelInfo:
    """The model_info of a complete install (strict: see ``load_model_info``)."""
    if not (model_dir / COMPLETE_MARKER).exists() or not (model_dir / "model_info.json").is_file():
        raise IncompleteInstallError(f"The installation in {model_dir} is incomplete")
    return load_model_info(model_dir)


def require_weights(weights: Path) -> None:
    if not weights.is_dir():
        raise ModelNotInstalledError(
            f"The weights folder {weights} is missing",
            hint="Restore it, or reinstall with `llm-installer install MODEL --yes`.",
        )


@dataclass(frozen=True)
class RunningModel:
    """A model that serves (or trains) right now."""

    model_dir: str
    kind: str  # "docker" | "native"
    name: str  # container name, or the process id
    role: str
    port: int | None

    @property
    def url(self) -> str | None:
        return f"http://localhost:{self.port}" if self.port else None


def docker_client():
    """The engine's client; docker-py is imported only when a command needs the engine."""
    from llm_installer.docker_engine import connect

    return connect()


def model_containers(
    client, model_dir: Path | None = None, *, all_states: bool = False, role: str | None = None
) -> list:
    labels = [f"{LABEL_MODEL_DIR}={model_dir}" if model_dir else LABEL_MODEL_DIR]
    labels += [f"{LABEL_PREFIX}.role={role}"] if role else []
    return client.containers.list(all=all_states, filters={"label": labels})


def _as_running(container) -> RunningModel:
    labels = container.labels or {}
    port = labels.get(f"{LABEL_PREFIX}.port", "")
    return RunningModel(
        model_dir=labels.get(LABEL_MODEL_DIR, ""),
        kind="docker",
        name=container.name,
        role=labels.get(f"{LABEL_PREFIX}.role", "serve"),
        port=int(port) if port.isdigit() else None,
    )


def running_container(
    model_dir: Path, client=None, role: str | None = "serve"
) -> RunningModel | None:
    """The running container of this model folder, found by its label; None if there is none."""
    try:
        client = client or docker_client()
    except DockerUnavailableError:
        return None
    found = model_containers(client, Path(model_dir).resolve(), role=role)
    return _as_running(found[0]) if found else None


def running_native(model_dir: Path) -> RunningModel | None:
    """The native (macOS) server started with --detach, from its pid file, if still alive."""
    pid_file = Path(model_dir) / NATIVE_PID_FILE
    try:
        pid, port = (int(x) for x in pid_file.read_text().split()[:2])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return RunningModel(str(Path(model_dir).resolve()), "native", str(pid), "serve", port)


def running_model(model_dir: Path) -> RunningModel | None:
    return running_container(model_dir) or running_native(model_dir)


def running_models(models_dir: Path) -> dict[str, RunningModel]:
    """Every running model under models_dir keyed by folder path: one engine query for ``list``."""
    found: dict[str, RunningModel] = {}
    try:
        client = docker_client()
        found.update({r.model_dir: r for r in map(_as_running, model_containers(client))})
    except DockerUnavailableError:
        pass
    for folder in _model_folders(models_dir):
        native = running_native(folder)
        if native:
            found[native.model_dir] = native
    return found
