"""Which device a run uses on this host, and the GPU flags its container gets.

``detect_host_runtime`` is the only function here that looks at the machine; the choices are
pure, so the same model_info, host and request always give the same device and warnings.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_installer.errors import InstallerError

log = logging.getLogger(__name__)

TOOLKIT_URL = (
    "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html"
)
# Shared memory per (role, device): PyTorch data loaders and NCCL need more than Docker's 64 MB.
# More than one GPU → --ipc=host instead, as NCCL between GPUs wants the host's IPC namespace.
SHM_SIZE = {
    ("serve", "cpu"): "1g",
    ("serve", "cuda"): "2g",
    ("train", "cpu"): "2g",
    ("train", "cuda"): "8g",
}
NO_GPU_VALUES = ("", "-1", "none", "void", "nodevfiles")


class GpuRequiredError(InstallerError):
    exit_code = 30
    hint = (
        "Install the NVIDIA driver and Container Toolkit (" + TOOLKIT_URL + "), "
        "or pass --force to try it on CPU anyway (it may not fit or be very slow)."
    )


class DeviceUnavailableError(InstallerError):
    exit_code = 31
    hint = "Leave out --device to let llm-installer choose, or use --device cpu."


@dataclass(frozen=True)
class HostRuntime:
    """What this host can run: OS, Docker engine, the NVIDIA runtime, GPUs NVML sees."""

    os: str = "linux"  # "linux" | "darwin"
    docker_available: bool = True
    nvidia_runtime: bool = False
    gpu_count: int = 0
    cuda_visible_devices: str | None = None
    mps_available: bool = False
    uid: int = 1000
    gid: int = 1000
    python: str = "python3"  # the interpreter that makes the native virtualenv


def detect_host_runtime() -> HostRuntime:
    """The host as ``docker info`` (docker-py) and NVML report it; nothing is guessed."""
    from llm_installer.hardware import mps_supported, probe_docker, probe_nvidia

    system = platform.system().lower()
    docker = probe_docker()
    try:
        gpu_count = len(probe_nvidia().gpus)
    except Exception as exc:  # NVML errors after init: treat as no GPU, but say why in the log
        log.warning("NVML failed: %s", exc)
        gpu_count = 0
    is_mac = system == "darwin"
    return HostRuntime(
        os="darwin" if is_mac else "linux",
        docker_available=docker.available,
        nvidia_runtime=docker.nvidia_runtime,
        gpu_count=gpu_count,
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        mps_available=is_mac and platform.machine() == "arm64" and mps_supported(),
        uid=os.getuid() if hasattr(os, "getuid") else 1000,
        gid=os.getgid() if hasattr(os, "getgid") else 1000,
        python=sys.executable or "python3",
    )


def visible_gpus(host: HostRuntime) -> str | None:
    """``all``, a device list from CUDA_VISIBLE_DEVICES, or None when it hides every GPU."""
    value = host.cuda_visible_devices
    if value is None:
        return "all"
    devices = [d.strip() for d in value.split(",") if d.strip()]
    if not devices or devices[0].lower() in NO_GPU_VALUES:
        return None
    return ",".join(devices)


CPU_IMAGE_REASON = (
    "the model's image was built for CPU (reinstall with --device cuda for a GPU image)"
)


def why_no_gpu(host: HostRuntime) -> str | None:
    """The first reason the container cannot use an NVIDIA GPU, or None when it can."""
    reasons = (
        (host.gpu_count == 0, "NVML finds no NVIDIA GPU on this machine"),
        (not host.nvidia_runtime, "Docker has no NVIDIA runtime (the NVIDIA Container Toolkit is not installed)"),
        (visible_gpus(host) is None, "CUDA_VISIBLE_DEVICES hides every GPU"),
    )  # fmt: skip
    return next((reason for failed, reason in reasons if failed), None)


def _installed_device(model_info: Mapping[str, Any]) -> str:
    recommended = (model_info.get("compatibility") or {}).get("recommended") or {}
    return str(model_info.get("device") or recommended.get("device") or "cpu")


def _image_flavour(model_info: Mapping[str, Any]) -> str:
    return str((model_info.get("image") or {}).get("flavour") or "cuda")


def choose_docker_device(
    model_info: Mapping[str, Any], host: HostRuntime, requested: str | None
) -> tuple[str, tuple[str, ...]]:
    """(cuda|cpu, warnings) for a container; an explicit --device that cannot work is an error.

    CPU is never silent: the warning says why (asked for, installed for CPU, no usable GPU)."""
    host_reason = why_no_gpu(host)
    image_reason = CPU_IMAGE_REASON if _image_flavour(model_info) == "cpu" else None
    reason = image_reason or host_reason
    wanted = requested if requested not in (None, "auto") else _installed_device(model_info)
    if requested == "mps":
        raise DeviceUnavailableError("--device mps works on macOS only (Apple Silicon)")
    if requested == "cuda" and reason:
        raise DeviceUnavailableError(f"--device cuda, but {reason}", hint=GpuRequiredError.hint)
    if requested == "cpu":
        return "cpu", ("Running on CPU: --device cpu.",)
    if wanted != "cuda":
        reason = "; ".join(
            r for r in (image_reason or "it was installed for CPU", host_reason) if r
        )
    if wanted != "cuda" or reason:
        return "cpu", (f"Running on CPU: {reason}. Expect it to be much slower than on a GPU.",)
    return "cuda", ()


def choose_native_device(
    model_info: Mapping[str, Any], host: HostRuntime, requested: str | None
) -> tuple[str, tuple[str, ...]]:
    """(mps|cpu, warnings) for the macOS virtualenv."""
    if requested == "cuda":
        raise DeviceUnavailableError(
            "--device cuda: macOS has no CUDA", hint="Use --device mps or cpu."
        )
    if requested == "mps" and not host.mps_available:
        raise DeviceUnavailableError(
            "--device mps: this Mac has no Metal (MPS) support for PyTorch"
        )
    if requested == "cpu" or not host.mps_available:
        warning = (
            () if requested == "cpu" else ("Running on CPU: no Apple Silicon GPU (MPS) here.",)
        )
        return "cpu", warning
    return "mps", ()


def refuse_cpu_if_gpu_required(
    model_info: Mapping[str, Any], device: str, force: bool
) -> tuple[str, ...]:
    """Models whose check says only a GPU fits are refused on CPU unless --force."""
    if device != "cpu" or not model_info.get("requires_gpu"):
        return ()
    model = model_info.get("model_id", "this model")
    if not force:
        raise GpuRequiredError(f"{model} needs a GPU and none can be used here")
    return (f"{model} needs a GPU; running it on CPU because of --force.",)


def gpu_flags(device: str, host: HostRuntime, role: str) -> dict[str, Any]:
    gpus = visible_gpus(host) if device == "cuda" else None
    many = device == "cuda" and (gpus == "all" and host.gpu_count > 1 or "," in (gpus or ""))
    shm = None if many else SHM_SIZE[(role, device)]
    return {"gpus": gpus, "ipc_host": many, "shm_size": shm}
