"""Weights on a target engine: a volume named by the weights' hash, filled and checked through
the Docker API itself (a helper container of the model's image mounts it; no second channel).
"""

from __future__ import annotations

import json
import tarfile
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.errors import NotFound
from docker.types import Mount

from llm_installer.deploy.errors import PreflightError, TargetVerifyError
from llm_installer.deploy.lock import compare_files, raise_if_different
from llm_installer.deploy.streams import Pipe

LABEL = "org.llm-installer"
MOUNT_POINT = "/model"
HASH_SCRIPT = """
import hashlib, json, os, sys
root = sys.argv[1]
files = {}
for folder, dirs, names in os.walk(root):
    for name in names:
        path = os.path.join(folder, name)
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        files[os.path.relpath(path, root)] = {"sha256": digest.hexdigest(), "size": os.path.getsize(path)}
stat = os.statvfs(root)
print(json.dumps({"files": files, "free": stat.f_bavail * stat.f_frsize}))
"""


REMOVE_SCRIPT = "import os, sys; [os.remove(os.path.join(sys.argv[1], p)) for p in sys.argv[2:]]"


@dataclass
class WeightsTransfer:
    volume: str
    bytes_sent: int = 0
    files_sent: list[str] = field(default_factory=list)


def volume_name(lock: Mapping[str, Any]) -> str:
    return f"llm-weights-{lock['weights_digest'][:32]}"


def ensure_volume(client, lock: Mapping[str, Any]) -> str:
    name = volume_name(lock)
    try:
        client.volumes.get(name)
    except NotFound:
        labels = {
            f"{LABEL}.weights-digest": lock["weights_digest"],
            f"{LABEL}.model-id": str(lock["model"]["id"]),
        }
        client.volumes.create(name=name, labels=labels)
    return name


def volume_contents(client, image: str, volume: str) -> dict[str, Any]:
    """{files: {name: {sha256, size}}, free: bytes}, hashed on the target by a helper container."""
    command = ["python", "-c", HASH_SCRIPT, MOUNT_POINT]
    output = _run_helper(client, image, volume, command, read_only=True)
    return json.loads(output.strip().splitlines()[-1])


def _run_helper(
    client, image: str, volume: str, command: list[str], *, read_only: bool = False
) -> str:
    """Run COMMAND in a helper container with the volume at /model; its output."""
    helper = _helper(client, image, volume, command, read_only=read_only)
    try:
        helper.start()
        status = helper.wait(timeout=3600)
        output = helper.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        helper.remove(force=True)
    if status.get("StatusCode") != 0:
        raise TargetVerifyError(f"A helper container on the target failed:\n{output[-2000:]}")
    return output


def _helper(client, image: str, volume: str, command: list[str], *, read_only: bool):
    return client.containers.create(
        image, command=command, user="0" if not read_only else None, name=f"llm-deploy-helper-{uuid.uuid4().hex[:10]}",
        mounts=[Mount(MOUNT_POINT, volume, type="volume", read_only=read_only)],
        network_disabled=True, labels={f"{LABEL}.role": "deploy-helper"}, healthcheck={"test": ["NONE"]},
    )  # fmt: skip


def sync_weights(
    client, image: str, lock: Mapping[str, Any], weights: Path, *, fresh: bool = False
) -> WeightsTransfer:
    """Send the files the volume lacks, then hash it on the target: it must equal the lock."""
    volume = ensure_volume(client, lock)
    result = WeightsTransfer(volume=volume)
    present = volume_contents(client, image, volume)
    expected = lock["files"]
    changed = [p for p in compare_files(expected, present["files"]) if not p.endswith(": missing")]
    if not fresh:
        raise_if_different(
            f"The weights on the target (volume {volume})", changed, TargetVerifyError
        )
    extra = sorted(set(present["files"]) - set(expected))
    if extra:  # only with --resend-weights: files the lock does not know go
        _run_helper(client, image, volume, ["python", "-c", REMOVE_SCRIPT, MOUNT_POINT, *extra])
    missing = sorted(n for n in expected if fresh or n not in present["files"])
    if missing:
        need = sum(expected[name]["size"] for name in missing)
        if need > present["free"]:
            raise PreflightError(
                f"The target has {present['free'] / 1e9:.1f} GB free for volume {volume}, {need / 1e9:.1f} GB needed",
                hint="Free space in the target's Docker data root, then deploy again.",
            )
        _put_files(client, image, volume, weights, missing, result)
        after = volume_contents(client, image, volume)["files"]
        raise_if_different(
            f"The weights on the target (volume {volume})",
            compare_files(expected, after),
            TargetVerifyError,
        )
    return result


def verify_volume(client, image: str, lock: Mapping[str, Any]) -> str:
    """Hash the deployed weights on the target against the lock; a difference names the files."""
    volume = volume_name(lock)
    try:
        client.volumes.get(volume)
    except NotFound:
        raise TargetVerifyError(
            f"The target has no weights volume {volume} for this lock"
        ) from None
    present = volume_contents(client, image, volume)["files"]
    raise_if_different(
        f"The weights on the target (volume {volume})",
        compare_files(lock["files"], present),
        TargetVerifyError,
    )
    return volume


def _put_files(
    client, image: str, volume: str, weights: Path, names: list[str], result: WeightsTransfer
) -> None:
    helper = _helper(client, image, volume, ["true"], read_only=False)
    pipe = Pipe()
    worker = threading.Thread(target=_write_tar, args=(weights, names, pipe), daemon=True)
    worker.start()
    try:
        helper.put_archive(MOUNT_POINT, pipe.chunks(result))
    finally:
        pipe.close()
        worker.join(timeout=30)
        helper.remove(force=True)
    if pipe.error:
        raise pipe.error
    result.files_sent = names


def _write_tar(weights: Path, names: list[str], out: Pipe) -> None:
    try:
        with tarfile.open(fileobj=out, mode="w|") as archive:  # type: ignore[call-overload]  # stream mode reads/writes only; typeshed wants seek/tell
            for directory in sorted({p for n in names for p in Path(n).parents if str(p) != "."}):
                info = tarfile.TarInfo(directory.as_posix())
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            for name in names:
                path = weights / name
                info = tarfile.TarInfo(name)
                info.size, info.mode = path.stat().st_size, 0o644
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
    except BaseException as exc:
        out.error = exc
    finally:
        out.finish()
