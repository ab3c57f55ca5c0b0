"""``stop`` and ``remove``: ending what runs of a model, and deleting the model with its image.

What runs is found by the containers' model-folder label and the native server's pid file
(``llm_installer.run.installed``). Removing renames the folder first, so it can be put back
when Docker keeps the image.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
from pathlib import Path

from llm_installer.console import Output
from llm_installer.errors import DockerUnavailableError, InstallerError
from llm_installer.run.container import LABEL_MODEL_DIR, LABEL_PREFIX
from llm_installer.run.installed import (
    NATIVE_PID_FILE,
    docker_client,
    model_containers,
    read_model_info,
    resolve_model_dir,
    running_container,
    running_native,
)
from llm_installer.run.start import STOP_TIMEOUT_S
from llm_installer.settings import Settings

TRAIN_STOP_TIMEOUT_S = 300  # a stopped trainer finishes its step and saves a checkpoint first


class ModelRunningError(InstallerError):
    exit_code = 38


class RemoveError(InstallerError):
    exit_code = 40


def stop_model(model: str, settings: Settings, output: Output) -> list[str]:
    """Stop (and remove) every container of this model, and its native server; the names."""
    model_dir = resolve_model_dir(model, settings.models_path)
    stopped = _stop_containers(model_dir, required=sys.platform != "darwin")
    native = running_native(model_dir)
    if native:
        os.kill(int(native.name), signal.SIGTERM)
        stopped.append(f"process {native.name}")
    (model_dir / NATIVE_PID_FILE).unlink(missing_ok=True)
    output.info(
        f"Stopped {', '.join(stopped)}." if stopped else f"{model_dir.name} is not running."
    )
    return stopped


def _stop_containers(model_dir: Path, *, required: bool) -> list[str]:
    try:
        client = docker_client()
    except DockerUnavailableError:
        if required:
            raise
        return []
    names = []
    for container in model_containers(client, model_dir, all_states=True):
        if container.status == "running":
            role = (container.labels or {}).get(f"{LABEL_PREFIX}.role")
            container.stop(timeout=TRAIN_STOP_TIMEOUT_S if role == "train" else STOP_TIMEOUT_S)
            names.append(container.name)
        container.remove(force=True)
    return names


def remove_model(model: str, settings: Settings, output: Output, *, yes: bool = False) -> None:
    """Remove the model folder and its image, after confirmation; a running model is refused."""
    model_dir = resolve_model_dir(model, settings.models_path)
    running = running_container(model_dir, role=None) or running_native(model_dir)
    if running:
        raise ModelRunningError(
            f"{model_dir.name} is running ({running.name})",
            hint=f"Stop it first: `llm-installer stop {model_dir.name}`.",
        )
    info = read_model_info(model_dir)
    tag = None if info is None or info.adapter else info.image_tag  # an adapter: the base's image
    _warn_about_stacks(model_dir, settings, output)
    if not yes and not _confirm(model_dir, tag, output):
        output.info("Nothing removed.")
        return
    trash = _hide_folder(model_dir)
    try:
        if tag:
            _remove_image(tag)
    except BaseException:
        os.replace(trash, model_dir)  # the image stays, so the folder comes back as it was
        raise
    _delete(trash, model_dir)
    output.info(f"Removed {model_dir}" + (f" and image {tag}" if tag else "") + ".")


def _warn_about_stacks(model_dir: Path, settings: Settings, output: Output) -> None:
    from llm_installer.run.stack import stacks_naming

    for folder in stacks_naming(model_dir, settings):
        output.warning(
            f"The compose stack in {folder} still serves {model_dir.name}: after this its `up` "
            "fails. Write it again without this model (`llm-installer compose ...`) or delete "
            "that folder."
        )


def _confirm(model_dir: Path, tag: str | None, output: Output) -> bool:
    from rich.prompt import Confirm

    if not sys.stdin.isatty():
        raise RemoveError(
            f"Refusing to remove {model_dir} without confirmation", hint="Pass --yes to confirm."
        )
    what = f"{model_dir}" + (f" and the image {tag}" if tag else "")
    return Confirm.ask(f"Remove {what}?", console=output.out, default=False)


def _remove_image(tag: str) -> None:
    """Untag the model's image (Docker deletes it when no other tag holds it); shared base and
    dependency layers stay for other models."""
    from docker.errors import APIError, ImageNotFound

    client = docker_client()
    for container in client.containers.list(all=True, filters={"ancestor": tag}):
        if LABEL_MODEL_DIR in (container.labels or {}) and container.status != "running":
            container.remove(force=True)
    try:
        client.images.remove(tag)
    except ImageNotFound:
        return
    except APIError as exc:
        raise RemoveError(
            f"Docker would not remove the image {tag}: {exc.explanation or exc}",
            hint="Stop and remove the containers that use it (`docker ps -a`), then retry.",
        ) from exc


def _hide_folder(model_dir: Path) -> Path:
    """Rename first: the folder leaves ``list`` at once and can be put back if the image stays."""
    trash = model_dir.with_name(f".{model_dir.name}.removing-{os.getpid()}")
    try:
        os.replace(model_dir, trash)
    except OSError as exc:
        raise RemoveError(f"Could not remove {model_dir}: {exc}") from exc
    return trash


def _delete(trash: Path, model_dir: Path) -> None:
    """Links are removed, never followed: a local-folder install's weights stay where they are."""
    try:
        shutil.rmtree(trash)
    except OSError as exc:
        raise RemoveError(
            f"{model_dir} is removed but part of it could not be deleted: {exc}",
            hint=f"Delete what is left by hand: rm -rf {shlex.quote(str(trash))}",
        ) from exc
