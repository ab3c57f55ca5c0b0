"""Which device a run uses on this host, and the GPU flags its container gets.

``detect_host_runtime`` is the only function here that looks at the machine; the choices are
pure, so the same model_info, host and request always give the same device and warnings.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_installer.errors import InstallerError
from llm_runtime.model_info import ModelInfo

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
CDI_DIRS = ("/etc/cdi", "/var/run/cdi")  # Docker's default CDI spec folders
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
    gpu_uuids: tuple[str, ...] = ()  # NVML (PCI bus) order: what `--gpus device=` numbers mean
    gpu_names: tuple[str, ...] = ()
    gpu_access: str = "runtime"  # runtime | hook: --gpus; cdi: --device nvidia.com/gpu=…
    cuda_device_order: str | None = None  # CUDA_DEVICE_ORDER
    mps_available: bool = False
    uid: int = 1000
    gid: int = 1000
    python: str = "python3"  # the interpreter that makes the native virtualenv


def detect_host_runtime() -> HostRuntime:
    """The host as ``docker info`` (docker-py) and NVML report it; nothing is guessed."""
    from llm_installer.check.hardware import mps_supported, probe_docker, probe_nvidia

    system = platform.system().lower()
    docker = probe_docker()
    gpus = _nvml_gpus(probe_nvidia)
    is_mac = system == "darwin"
    return HostRuntime(
        os="darwin" if is_mac else "linux",
        docker_available=docker.available,
        nvidia_runtime=docker.nvidia_runtime,
        gpu_count=len(gpus),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        gpu_uuids=tuple(g.uuid for g in gpus),
        gpu_names=tuple(g.name for g in gpus),
        gpu_access=docker.gpu_access or "runtime",
        cuda_device_order=os.environ.get("CUDA_DEVICE_ORDER"),
        mps_available=is_mac and platform.machine() == "arm64" and mps_supported(),
        uid=os.getuid() if hasattr(os, "getuid") else 1000,
        gid=os.getgid() if hasattr(os, "getgid") else 1000,
        python=sys.executable or "python3",
    )


def _nvml_gpus(probe) -> tuple:
    try:
        nvidia = probe()
    except Exception as exc:  # NVML errors after init: treat as no GPU, but say why in the log
        log.warning("NVML failed: %s", exc)
        return ()
    for problem in nvidia.problems:
        log.warning("NVML: %s", problem)
    return nvidia.gpus


def visible_gpus(host: HostRuntime) -> str | None:
    """``all``, the GPUs CUDA_VISIBLE_DEVICES names (as GPU UUIDs where NVML gave them), or None
    when it hides every GPU.

    CUDA_VISIBLE_DEVICES numbers GPUs in CUDA's order, Docker's ``--gpus device=N`` in NVML's
    (PCI bus) order; UUIDs mean the same GPU to both. Like CUDA, the list ends at the first entry
    that names no GPU here.
    """
    value = host.cuda_visible_devices
    if value is None:
        return "all"
    devices = [d.strip() for d in value.split(",") if d.strip()]
    if not devices or devices[0].lower() in NO_GPU_VALUES:
        return None
    if not host.gpu_uuids or not all(host.gpu_uuids):  # NVML gave no (or not every) UUID
        return ",".join(devices)
    chosen = []
    for entry in devices:
        uuid = _uuid_for(entry, host.gpu_uuids)
        if uuid is None:
            break
        chosen.append(uuid)
    return ",".join(dict.fromkeys(chosen)) or None


def _uuid_for(entry: str, uuids: tuple[str, ...]) -> str | None:
    """An index, a UUID or a unique UUID prefix (as CUDA accepts them) → the full UUID."""
    if entry.isdigit():
        return uuids[int(entry)] if int(entry) < len(uuids) else None
    matches = [u for u in uuids if u.startswith(entry) or u.startswith("GPU-" + entry)]
    return matches[0] if len(matches) == 1 else None


def gpu_warnings(host: HostRuntime) -> tuple[str, ...]:
    """Where CUDA_VISIBLE_DEVICES indices may mean other GPUs than the ones the container gets."""
    value = host.cuda_visible_devices or ""
    indices = any(d.strip().isdigit() for d in value.split(","))
    mixed = len(set(host.gpu_names)) > 1
    if not (indices and mixed and host.cuda_device_order != "PCI_BUS_ID"):
        return ()
    return (
        f"CUDA_VISIBLE_DEVICES={value} counts GPUs fastest first (CUDA's default order), which on "
        f"this mix of GPUs may differ from nvidia-smi's order that the container's GPUs "
        f"({visible_gpus(host)}) follow: set CUDA_DEVICE_ORDER=PCI_BUS_ID, or name GPUs by UUID "
        "(nvidia-smi -L).",
    )


CPU_IMAGE_REASON = (
    "the model's image was built for CPU (reinstall with --device cuda for a GPU image)"
)


def why_no_gpu(host: HostRuntime) -> str | None:
    """The first reason the container cannot use an NVIDIA GPU, or None when it can."""
    reasons = (
        (host.gpu_count == 0, "NVML finds no NVIDIA GPU on this machine"),
        (not host.nvidia_runtime, "Docker cannot give containers NVIDIA GPUs (no nvidia runtime, toolkit hook or CDI spec: install the NVIDIA Container Toolkit)"),
        (visible_gpus(host) is None, "CUDA_VISIBLE_DEVICES hides every GPU"),
    )  # fmt: skip
    return next((reason for failed, reason in reasons if failed), None)


def _image_flavour(model_info: ModelInfo) -> str:
    return str(model_info.image.get("flavour") or "cuda")


def choose_docker_device(
    model_info: ModelInfo, host: HostRuntime, requested: str | None
) -> tuple[str, tuple[str, ...]]:
    """(cuda|cpu, warnings) for a container; an explicit --device that cannot work is an error.

    CPU is never silent: the warning says why (asked for, installed for CPU, no usable GPU)."""
    host_reason = why_no_gpu(host)
    image_reason = CPU_IMAGE_REASON if _image_flavour(model_info) == "cpu" else None
    reason = image_reason or host_reason
    wanted = requested if requested not in (None, "auto") else model_info.device
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
    model_info: ModelInfo, host: HostRuntime, requested: str | None
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


def refuse_cpu_if_gpu_required(model_info: ModelInfo, device: str, force: bool) -> tuple[str, ...]:
    """Models whose check says only a GPU fits are refused on CPU unless --force."""
    if device != "cpu" or not model_info.requires_gpu:
        return ()
    model = model_info.model_id or "this model"
    if not force:
        raise GpuRequiredError(f"{model} needs a GPU and none can be used here")
    return (f"{model} needs a GPU; running it on CPU because of --force.",)


def gpu_flags(device: str, host: HostRuntime, role: str) -> dict[str, Any]:
    """The container's GPUs, IPC and shared memory. Serving gets every visible GPU (the runtime
    splits a model across them); training gets the first visible one only, so the Trainer never
    wraps the model in DataParallel (one process, one GPU)."""
    gpus = visible_gpus(host) if device == "cuda" else None
    if role == "train" and gpus is not None:
        gpus = _first_gpu(gpus, host)
    many = device == "cuda" and (gpus == "all" and host.gpu_count > 1 or "," in (gpus or ""))
    shm = None if many else SHM_SIZE[(role, device)]
    cdi = gpus is not None and host.gpu_access == "cdi"
    return {"gpus": gpus, "ipc_host": many, "shm_size": shm, "gpu_cdi": cdi}


def _first_gpu(gpus: str, host: HostRuntime) -> str:
    if gpus != "all":
        return gpus.split(",")[0]
    if host.gpu_count <= 1:
        return "all"
    return host.gpu_uuids[0] or "0" if host.gpu_uuids else "0"


def compose_gpus(device: str, host: HostRuntime | None = None) -> dict[str, Any]:
    """A compose service's GPU reservation: the visible GPUs (UUIDs under CUDA_VISIBLE_DEVICES,
    as ``start`` passes them), by the nvidia driver or as CDI devices."""
    if device != "cuda":
        return {"gpu_ids": None, "gpu_driver": "nvidia"}
    host = host or _local_gpu_host()
    gpus = visible_gpus(host) if host.gpu_uuids and all(host.gpu_uuids) else "all"
    if host.gpu_access == "cdi":
        return {"gpu_ids": cdi_names(gpus or "all"), "gpu_driver": "cdi"}
    return {"gpu_ids": None if gpus in (None, "all") else gpus.split(","), "gpu_driver": "nvidia"}


def cdi_names(gpus: str) -> list[str]:
    return [f"nvidia.com/gpu={gpu}" for gpu in gpus.split(",")]


def _local_gpu_host() -> HostRuntime:
    """NVML and CUDA_VISIBLE_DEVICES only (no engine round trip): what compose files need."""
    from llm_installer.check.hardware import TOOLKIT_HOOKS, probe_nvidia

    gpus = _nvml_gpus(probe_nvidia)
    hook = any(shutil.which(name) for name in TOOLKIT_HOOKS)
    cdi = not hook and any(_names_nvidia(Path(d)) for d in CDI_DIRS)
    return HostRuntime(
        gpu_count=len(gpus), gpu_uuids=tuple(g.uuid for g in gpus), gpu_names=tuple(g.name for g in gpus),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"), gpu_access="cdi" if cdi else "runtime",
    )  # fmt: skip


def _names_nvidia(folder: Path) -> bool:
    try:
        return any(
            "nvidia.com/gpu" in p.read_text(errors="replace")
            for p in folder.iterdir()
            if p.is_file()
        )
    except OSError:
        return False
