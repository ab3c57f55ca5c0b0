"""One container, described once (``ContainerSpec``) and rendered as ``docker run`` arguments
(start.sh, foreground runs) or as docker-py keywords (detached runs); its name, user and labels.

The labels (``org.llm-installer.model-dir=<folder>`` and the role, port and model id) are how
``start``, ``stop``, ``remove`` and ``list`` find a model's containers again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_installer.run.devices import HostRuntime, cdi_names
from llm_runtime.model_info import ModelInfo

LABEL_PREFIX = "org.llm-installer"
LABEL_MODEL_DIR = f"{LABEL_PREFIX}.model-dir"
IMAGE_USER = (1000, 1000)  # the image's `llm` user


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    """One container, rendered as ``docker run`` arguments or as docker-py keywords."""

    image: str
    name: str
    command: tuple[str, ...]
    mounts: tuple[Mount, ...] = ()
    ports: tuple[tuple[str, int, int], ...] = ()  # (host ip, host port, container port)
    env: tuple[tuple[str, str], ...] = ()
    secret_env: tuple[str, ...] = ()  # names only: values travel in the plan's secrets
    user: str | None = None
    gpus: str | None = None  # "all" or a device list such as "GPU-…,GPU-…" (or NVML indices)
    gpu_cdi: bool = False  # hand the GPUs over as CDI devices (nvidia.com/gpu=…) instead of --gpus
    shm_size: str | None = None
    ipc_host: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    healthcheck: bool = True  # the image's HEALTHCHECK probes the server; off for training


def container_name(model_dir: Path, role: str = "serve") -> str:
    slug = re.sub(r"[^a-zA-Z0-9_.-]+", "-", model_dir.name).strip("-.") or "model"
    return f"llm-{slug}" if role == "serve" else f"llm-{role}-{slug}"


def user_for(host: HostRuntime) -> tuple[str | None, tuple[int, int] | None]:
    """(--user value, chown target): files on the host belong to the user who runs it.

    A root host runs containers as the image's unprivileged user (never as root) and hands
    that user the writable folders instead (for training also the model folder itself, where
    the trainer swaps lora/ in atomically).
    """
    if host.uid == 0:
        return None, IMAGE_USER
    return f"{host.uid}:{host.gid}", None


def labels_for(model_dir: Path, model_info: ModelInfo, role: str, port: int) -> tuple:
    return (
        (LABEL_MODEL_DIR, str(model_dir)),
        (f"{LABEL_PREFIX}.model-id", model_info.model_id),
        (f"{LABEL_PREFIX}.role", role),
        (f"{LABEL_PREFIX}.port", str(port)),
    )


def docker_argv(spec: ContainerSpec, *, detach: bool = False) -> list[str]:
    """``docker run`` arguments; ``--rm`` in the foreground, a kept container when detached
    (so its logs can be shown if it dies while loading)."""
    argv = [
        "docker",
        "run",
        "-d" if detach else "--rm",
        "--init",
        "--pull=never",
        "--name",
        spec.name,
    ]
    for key, value in spec.labels:
        argv += ["--label", f"{key}={value}"]
    if spec.gpus and spec.gpu_cdi:
        argv += [arg for name in cdi_names(spec.gpus) for arg in ("--device", name)]
    elif spec.gpus:
        argv += ["--gpus", "all" if spec.gpus == "all" else f'"device={spec.gpus}"']
    argv += [] if spec.healthcheck else ["--no-healthcheck"]
    argv += ["--ipc=host"] if spec.ipc_host else []
    argv += [f"--shm-size={spec.shm_size}"] if spec.shm_size else []
    for ip, host_port, container_port in spec.ports:
        argv += ["-p", f"{ip}:{host_port}:{container_port}"]
    for mount in spec.mounts:
        argv += ["-v", f"{mount.source}:{mount.target}" + (":ro" if mount.read_only else "")]
    argv += ["--user", spec.user] if spec.user else []
    for key, value in spec.env:
        argv += ["-e", f"{key}={value}"]
    for key in spec.secret_env:
        argv += ["-e", key]  # the value comes from docker's own environment, never argv
    return [*argv, spec.image, *spec.command]


def docker_py_kwargs(spec: ContainerSpec, secrets: Mapping[str, str]) -> dict[str, Any]:
    """Keywords for ``client.containers.run(**kwargs, detach=True)``."""
    from docker.types import DeviceRequest
    from docker.types import Mount as DockerMount

    devices = []
    if spec.gpus and spec.gpu_cdi:
        devices = [DeviceRequest(driver="cdi", device_ids=cdi_names(spec.gpus))]
    elif spec.gpus:
        ids = None if spec.gpus == "all" else spec.gpus.split(",")
        devices = [
            DeviceRequest(
                count=-1 if ids is None else 0, device_ids=ids or [], capabilities=[["gpu"]]
            )
        ]
    return {
        "image": spec.image,
        "command": list(spec.command),
        "name": spec.name,
        "init": True,
        "labels": dict(spec.labels),
        "device_requests": devices,
        "ipc_mode": "host" if spec.ipc_host else None,
        "shm_size": spec.shm_size,
        "ports": {f"{c}/tcp": (ip, h) for ip, h, c in spec.ports},
        "mounts": [
            DockerMount(m.target, m.source, type="bind", read_only=m.read_only) for m in spec.mounts
        ],
        "user": spec.user,
        "healthcheck": None if spec.healthcheck else {"test": ["NONE"]},
        "environment": {
            **dict(spec.env),
            **{k: secrets[k] for k in spec.secret_env if k in secrets},
        },
    }
