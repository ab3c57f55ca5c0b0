"""Building images with docker-py, streaming the build output into a progress view and a log."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, BuildError
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from llm_installer.errors import InstallerError

STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)")


class ImageBuildError(InstallerError):
    exit_code = 22
    hint = "Read the build log; fix the failing step and run the command again."

    def __init__(self, message: str, *, log_tail: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.log_tail = log_tail


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    id: str
    size: int


def build_image(
    client: docker.DockerClient,
    context: Path,
    tag: str,
    *,
    log_path: Path,
    console: Console,
    buildargs: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    title: str = "Building image",
    nocache: bool = False,
) -> BuiltImage:
    """``docker build`` of ``context`` as ``tag``; every output line goes to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        stream = client.api.build(
            path=str(context), tag=tag, rm=True, forcerm=True, decode=True, nocache=nocache,
            buildargs=dict(buildargs or {}), labels=dict(labels or {}),
        )  # fmt: skip
        with log_path.open("a") as log, _progress(console) as progress:
            task = progress.add_task(title, total=None, step="")
            image_id = _follow(stream, log, lambda done, total, text: progress.update(
                task, completed=done, total=total, step=text[:60]))  # fmt: skip
    except ImageBuildError as exc:
        exc.hint = f"Read the build log {log_path}; fix the failing step and run the command again."
        raise
    except (APIError, BuildError) as exc:
        raise ImageBuildError(
            f"docker build of {tag} failed: {exc}", hint=f"Read the build log {log_path}."
        ) from exc
    image = client.images.get(image_id or tag)
    return BuiltImage(tag=tag, id=str(image.id), size=image.attrs.get("Size", 0))


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
        TextColumn("{task.completed}/{task.total} {task.fields[step]}"), TimeElapsedColumn(),
        console=console, transient=False,
    )  # fmt: skip


def _follow(stream: Iterable[dict[str, Any]], log, update) -> str | None:
    """Write the build stream to ``log``, report steps; raise on the engine's error message."""
    image_id: str | None = None
    tail: list[str] = []
    for chunk in stream:
        text = chunk.get("stream") or chunk.get("status") or ""
        if text:
            log.write(text if text.endswith("\n") else text + "\n")
            tail = (tail + text.splitlines())[-40:]
            match = STEP.match(text.strip())
            if match:
                update(int(match.group(1)), int(match.group(2)), match.group(3))
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        if "error" in chunk:
            log.write(f"ERROR: {chunk['error']}\n")
            raise ImageBuildError(
                f"docker build failed: {chunk['error'].strip()}", log_tail="\n".join(tail[-15:])
            )
    return image_id
