"""Downloading a model's files with huggingface_hub: only what the runtime needs, resumable, retried.

Progress (file i/n, bytes, speed, ETA) comes from watching the target folder while
``snapshot_download`` runs in a worker thread, so it does not depend on the client's own bars.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from llm_installer.check.weights import is_weight_path

log = logging.getLogger(__name__)
RETRIES = 3


@dataclass(frozen=True)
class DownloadPlan:
    """The files to fetch (paths and sizes) from one repo revision."""

    model_id: str
    revision: str | None
    files: tuple[tuple[str, int], ...]

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


def plan_download(profile: dict[str, Any], weights: list[str] | None = None) -> DownloadPlan:
    """Every non-weight file, plus the ONE weight set check chose (no duplicate formats), or
    ``weights``: the files of one GGUF quantization (and its split parts)."""
    chosen = (
        set(weights)
        if weights is not None
        else {f["path"] for f in profile["files"]["weight_files"]}
    )
    files = tuple(
        (f["path"], f["size"])
        for f in profile["files"]["all"]
        if f["path"] in chosen or not is_weight_path(f["path"])
    )
    return DownloadPlan(
        model_id=profile["model_id"],
        revision=profile.get("sha") or profile.get("revision"),
        files=files,
    )


def download(
    plan: DownloadPlan, target: Path, *, token: str | None, workers: int, console: Console
) -> None:
    """``snapshot_download`` of ``plan`` into ``target`` (no symlinks), with retries and progress."""
    from huggingface_hub import snapshot_download

    from llm_installer.check.hub_source import hub_errors_as_messages

    target.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, RETRIES + 1):
        try:
            with (
                hub_errors_as_messages(plan.model_id, plan.revision, token),
                _watch(plan, target, console),
            ):
                snapshot_download(
                    plan.model_id, revision=plan.revision, local_dir=target, token=token,
                    allow_patterns=[path for path, _ in plan.files], max_workers=workers,
                )  # fmt: skip
            return
        except Exception as exc:  # noqa: BLE001 - retried only when it is a network error
            if attempt == RETRIES or not _is_network_error(exc):
                raise
            console.print(f"[yellow]Network error ({exc}); retrying ({attempt}/{RETRIES - 1})…[/]")
            time.sleep(2 * attempt)


def _is_network_error(exc: BaseException) -> bool:
    from llm_installer.errors import HubUnreachableError

    return isinstance(exc, HubUnreachableError) and "HF_HUB_OFFLINE" not in exc.message


class _watch:
    """A context manager showing download progress from the sizes of files in ``target``."""

    def __init__(self, plan: DownloadPlan, target: Path, console: Console) -> None:
        self.plan, self.target, self.stop = plan, target, threading.Event()
        self.progress = Progress(
            TextColumn("[bold]Downloading[/] {task.fields[files]}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=console,
        )  # fmt: skip
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _watch:
        self.task = self.progress.add_task("download", total=self.plan.total_bytes, files="")
        self.progress.start()
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join()
        self._update()
        self.progress.stop()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            self._update()

    def _update(self) -> None:
        done_files, done_bytes = _progress_on_disk(self.target, self.plan.files)
        files = f"file {min(done_files + 1, len(self.plan.files))}/{len(self.plan.files)}"
        self.progress.update(self.task, completed=done_bytes, files=files)


def _progress_on_disk(target: Path, files: Iterable[tuple[str, int]]) -> tuple[int, int]:
    """(complete files, bytes on disk) including huggingface_hub's .incomplete partial files."""
    done_files = done_bytes = 0
    for path, size in files:
        local = target / path
        if local.is_file() and local.stat().st_size == size:
            done_files, done_bytes = done_files + 1, done_bytes + size
    partial = target / ".cache" / "huggingface" / "download"
    if partial.is_dir():
        done_bytes += sum(f.stat().st_size for f in partial.rglob("*.incomplete") if f.is_file())
    return done_files, done_bytes
