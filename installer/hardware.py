"""What this machine offers a model: CPU, RAM, NVIDIA GPUs, Apple Silicon, disk, Docker.

Every probe is isolated: a missing library, an absent driver or an unreachable engine gives an
empty or false answer (and a line in ``Hardware.problems``), never an exception, so one failing
probe does not hide the others. Nothing here imports torch.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil

log = logging.getLogger(__name__)
T = TypeVar("T")

DOCKER_TIMEOUT_S = 3
MPS_MIN_MACOS = (12, 3)


@dataclass(frozen=True)
class Gpu:
    """One NVIDIA GPU as NVML reports it; memory in bytes."""

    index: int
    name: str
    vram_total: int
    vram_free: int
    compute_capability: tuple[int, int] | None = None


@dataclass(frozen=True)
class Hardware:
    """The machine, as probed once by ``probe_hardware``; every size is in bytes."""

    os: str
    arch: str
    cpu_model: str
    cpu_cores: int
    cpu_threads: int
    ram_total: int
    ram_available: int
    gpus: tuple[Gpu, ...] = ()
    nvidia_driver: str | None = None
    cuda_version: str | None = None
    apple_silicon: bool = False
    mps_available: bool = False
    disk_path: str = ""
    disk_total: int = 0
    disk_free: int = 0
    docker_available: bool = False
    nvidia_runtime: bool = False
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def has_cuda(self) -> bool:
        return bool(self.gpus)

    @property
    def vram_total(self) -> int:
        return sum(g.vram_total for g in self.gpus)

    @property
    def vram_free(self) -> int:
        return sum(g.vram_free for g in self.gpus)

    @property
    def unified_memory(self) -> int | None:
        """Apple Silicon shares RAM between CPU and GPU: the total, else None."""
        return self.ram_total if self.apple_silicon else None


@dataclass(frozen=True)
class _Nvidia:
    gpus: tuple[Gpu, ...] = ()
    driver: str | None = None
    cuda: str | None = None


@dataclass(frozen=True)
class _Docker:
    available: bool = False
    nvidia_runtime: bool = False


def probe_hardware(models_dir: str | Path) -> Hardware:
    """Probe CPU, RAM, GPUs, Apple Silicon, free disk under ``models_dir`` and Docker."""
    problems: list[str] = []
    cores, threads = _guarded(problems, "cpu", cpu_counts, (1, 1))
    ram_total, ram_available = _guarded(problems, "ram", ram_bytes, (0, 0))
    nvidia = _guarded(problems, "nvidia", probe_nvidia, _Nvidia())
    apple = _guarded(problems, "apple", is_apple_silicon, False)
    disk_path, disk_total, disk_free = _guarded(problems, "disk", lambda: disk_space(models_dir), ("", 0, 0))
    engine = _guarded(problems, "docker", probe_docker, _Docker())
    return Hardware(
        os=platform.system(),
        arch=platform.machine(),
        cpu_model=_guarded(problems, "cpu model", cpu_model, "unknown"),
        cpu_cores=cores,
        cpu_threads=threads,
        ram_total=ram_total,
        ram_available=ram_available,
        gpus=nvidia.gpus,
        nvidia_driver=nvidia.driver,
        cuda_version=nvidia.cuda,
        apple_silicon=apple,
        mps_available=apple and _guarded(problems, "mps", mps_supported, False),
        disk_path=disk_path,
        disk_total=disk_total,
        disk_free=disk_free,
        docker_available=engine.available,
        nvidia_runtime=engine.nvidia_runtime,
        problems=tuple(problems),
    )


def _guarded(problems: list[str], what: str, probe: Callable[[], T], default: T) -> T:
    """Run one probe; on any failure note it and return ``default``."""
    try:
        return probe()
    except Exception as exc:  # a probe must never break the others
        log.debug("hardware probe %s failed: %s", what, exc)
        problems.append(f"{what}: {exc}")
        return default


def cpu_counts() -> tuple[int, int]:
    """(physical cores, logical threads); physical falls back to logical where unknown."""
    threads = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    return psutil.cpu_count(logical=False) or threads, threads


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux) or sysctl (macOS)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith(("model name", "Hardware", "Model")) and ":" in line:
                return line.split(":", 1)[1].strip()
    if platform.system() == "Darwin":
        return _run(["sysctl", "-n", "machdep.cpu.brand_string"]) or platform.processor()
    return platform.processor() or platform.machine() or "unknown"


def ram_bytes() -> tuple[int, int]:
    memory = psutil.virtual_memory()
    return int(memory.total), int(memory.available)


def probe_nvidia() -> _Nvidia:
    """GPUs, driver and CUDA version through NVML; no library or no driver → no GPUs."""
    try:
        import pynvml
    except ImportError:
        return _Nvidia()
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # no driver, no device: a CPU machine
        return _Nvidia()
    try:
        count = pynvml.nvmlDeviceGetCount()
        gpus = tuple(_gpu(pynvml, i) for i in range(count))
        return _Nvidia(gpus, _text(pynvml.nvmlSystemGetDriverVersion()), _cuda_version(pynvml))
    finally:
        pynvml.nvmlShutdown()


def _gpu(pynvml, index: int) -> Gpu:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    try:
        capability = tuple(pynvml.nvmlDeviceGetCudaComputeCapability(handle))
    except pynvml.NVMLError:
        capability = None
    return Gpu(index, _text(pynvml.nvmlDeviceGetName(handle)), int(memory.total), int(memory.free), capability)


def _cuda_version(pynvml) -> str | None:
    """The highest CUDA version the driver supports, e.g. 12040 → "12.4"."""
    try:
        version = int(pynvml.nvmlSystemGetCudaDriverVersion())
    except pynvml.NVMLError:
        return None
    return f"{version // 1000}.{version % 1000 // 10}"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def is_apple_silicon() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def mps_supported() -> bool:
    """Metal Performance Shaders back PyTorch from macOS 12.3 on Apple Silicon."""
    release = platform.mac_ver()[0]
    parts = tuple(int(p) for p in release.split(".")[:2] if p.isdigit())
    return parts >= MPS_MIN_MACOS


def disk_space(models_dir: str | Path) -> tuple[str, int, int]:
    """(probed path, total, free) of the filesystem that holds ``models_dir`` or its nearest parent."""
    path = Path(models_dir).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    return str(path), int(usage.total), int(usage.free)


def probe_docker() -> _Docker:
    """Whether a Docker engine answers ping, and whether it knows the ``nvidia`` runtime."""
    from llm_installer.docker_engine import connect, has_nvidia_runtime
    from llm_installer.errors import DockerUnavailableError

    try:
        client = connect(timeout=DOCKER_TIMEOUT_S)
    except DockerUnavailableError:
        return _Docker()
    try:
        return _Docker(True, has_nvidia_runtime(client))
    finally:
        client.close()


def _run(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip()
