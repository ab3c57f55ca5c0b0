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
TOOLKIT_HOOKS = ("nvidia-container-runtime-hook", "nvidia-container-toolkit")
CDI_GPU = "nvidia.com/gpu="
MPS_MIN_MACOS = (12, 3)


@dataclass(frozen=True)
class Gpu:
    """One NVIDIA GPU (or one MIG instance of it) as NVML reports it; memory in bytes.

    ``index`` is NVML's (PCI bus) order; a MIG instance carries its parent's index in
    ``mig_parent`` and its own ``MIG-…`` UUID, and CUDA sees it as a device of its own.
    """

    index: int
    name: str
    vram_total: int
    vram_free: int
    compute_capability: tuple[int, int] | None = None
    uuid: str = ""
    mig_parent: int | None = None


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
    nvidia_runtime: bool = False  # the engine can hand NVIDIA GPUs to containers (any way below)
    gpu_access: str | None = (
        None  # "runtime" | "hook" (both: --gpus) | "cdi" (--device nvidia.com/gpu=…)
    )
    docker_error: str | None = None  # why the engine did not answer
    problems: tuple[str, ...] = field(default=(), compare=False)
    # bf16 matrix instructions (AMX or AVX512-BF16): the runtime (and vLLM) run LLMs in bf16 there
    cpu_bf16: bool = False

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
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Docker:
    available: bool = False
    gpu_access: str | None = None
    error: str | None = None

    @property
    def nvidia_runtime(self) -> bool:
        return self.gpu_access is not None


def probe_hardware(models_dir: str | Path) -> Hardware:
    """Probe CPU, RAM, GPUs, Apple Silicon, free disk under ``models_dir`` and Docker."""
    problems: list[str] = []
    cores, threads = _guarded(problems, "cpu", cpu_counts, (1, 1))
    ram_total, ram_available = _guarded(problems, "ram", ram_bytes, (0, 0))
    nvidia = _guarded(problems, "nvidia", probe_nvidia, _Nvidia())
    apple = _guarded(problems, "apple", is_apple_silicon, False)
    disk_path, disk_total, disk_free = _guarded(
        problems, "disk", lambda: disk_space(models_dir), ("", 0, 0)
    )
    engine = _guarded(problems, "docker", probe_docker, _Docker())
    bf16 = _guarded(problems, "cpu flags", cpu_bf16, False)
    problems += nvidia.problems
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
        gpu_access=engine.gpu_access,
        docker_error=engine.error,
        problems=tuple(problems),
        cpu_bf16=bf16,
    )


def hardware_profile(models_dir: str | Path) -> dict:
    """``probe_hardware`` as the plain data a check profile holds (install re-probes with it)."""
    from dataclasses import asdict

    return asdict(probe_hardware(models_dir))


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


def cpu_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU has bf16 matrix instructions (``amx_bf16`` or ``avx512_bf16`` among the
    flags of /proc/cpuinfo), where the runtime loads LLMs in bf16 as vLLM does; elsewhere fp32."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(errors="replace") if path.exists() else ""
    for line in cpuinfo.splitlines():
        if line.startswith("flags") and ":" in line:
            return bool({"amx_bf16", "avx512_bf16"} & set(line.split(":", 1)[1].split()))
    return False


def ram_bytes() -> tuple[int, int]:
    memory = psutil.virtual_memory()
    return int(memory.total), int(memory.available)


def probe_nvidia(nvml=None) -> _Nvidia:
    """GPUs, driver and CUDA version through NVML, one GPU at a time: a GPU that fails is left
    out with a problem line, the others stay. No library or no driver → no GPUs."""
    try:
        pynvml = nvml or __import__("pynvml")
    except ImportError:
        return _Nvidia()
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # no driver, no device: a CPU machine
        return _Nvidia()
    try:
        return _probe_gpus(pynvml)
    finally:
        pynvml.nvmlShutdown()


def _probe_gpus(pynvml) -> _Nvidia:
    problems: list[str] = []
    try:
        count = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as exc:
        return _Nvidia(problems=(f"NVML cannot count the GPUs: {exc}",))
    gpus: list[Gpu] = []
    for index in range(count):
        try:
            gpus += _gpu_and_migs(pynvml, index, problems)
        except pynvml.NVMLError as exc:
            problems.append(f"GPU {index}: NVML error {exc}; left out")
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
    except pynvml.NVMLError as exc:
        driver = None
        problems.append(f"NVML does not report the driver version: {exc}")
    return _Nvidia(tuple(gpus), driver, _cuda_version(pynvml), tuple(problems))


def _gpu_and_migs(pynvml, index: int, problems: list[str]) -> list[Gpu]:
    """The GPU, or its MIG instances when MIG mode is on (CUDA sees those, not the whole GPU)."""
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    gpu = _gpu(pynvml, handle, index)
    if not _mig_enabled(pynvml, handle):
        return [gpu]
    instances = _mig_instances(pynvml, handle, gpu, problems)
    if not instances:
        problems.append(
            f"GPU {index} ({gpu.name}) is in MIG mode but no MIG instance can be read "
            "(none created, or this user may not list them: try as root); left out"
        )
    return instances


def _gpu(pynvml, handle, index: int, *, parent: Gpu | None = None) -> Gpu:
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    capability = parent.compute_capability if parent else _capability(pynvml, handle)
    return Gpu(
        index=index, name=_text(pynvml.nvmlDeviceGetName(handle)), vram_total=int(memory.total),
        vram_free=int(memory.free), compute_capability=capability, uuid=_uuid(pynvml, handle),
        mig_parent=parent.index if parent else None,
    )  # fmt: skip


def _capability(pynvml, handle) -> tuple[int, int] | None:
    try:
        return tuple(pynvml.nvmlDeviceGetCudaComputeCapability(handle))
    except pynvml.NVMLError:
        return None


def _uuid(pynvml, handle) -> str:
    try:
        return _text(pynvml.nvmlDeviceGetUUID(handle))
    except (pynvml.NVMLError, AttributeError):  # AttributeError: a binding without the call
        return ""


def _mig_enabled(pynvml, handle) -> bool:
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
    except (pynvml.NVMLError, AttributeError):  # not a MIG-capable GPU (or binding)
        return False
    return current == pynvml.NVML_DEVICE_MIG_ENABLE


def _mig_instances(pynvml, handle, parent: Gpu, problems: list[str]) -> list[Gpu]:
    try:
        slots = pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)
    except pynvml.NVMLError as exc:
        problems.append(f"GPU {parent.index}: MIG instances cannot be listed: {exc}")
        return []
    found = []
    for slot in range(slots):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            found.append(_gpu(pynvml, mig, parent.index, parent=parent))
        except pynvml.NVMLError_NotFound:
            continue  # an empty slot
        except pynvml.NVMLError as exc:
            problems.append(f"GPU {parent.index} MIG slot {slot}: {exc}")
    return found


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
    """Whether a Docker engine answers, and how it can give a container NVIDIA GPUs."""
    from llm_installer.docker_engine import connect
    from llm_installer.errors import DockerUnavailableError

    try:
        client = connect(timeout=DOCKER_TIMEOUT_S)
    except DockerUnavailableError as exc:
        return _Docker(error=str(exc))
    try:
        return _Docker(True, gpu_access_from_info(client.info(), local=_local_engine(client)))
    finally:
        client.close()


def gpu_access_from_info(
    info: dict, *, local: bool, which: Callable[[str], str | None] = shutil.which
) -> str | None:
    """How the engine hands out NVIDIA GPUs, from its own ``docker info`` answer.

    ``runtime``: the ``nvidia`` runtime is registered; ``hook``: the toolkit's hook is installed
    beside a local engine (Docker's ``--gpus`` needs only that); ``cdi``: the engine lists
    ``nvidia.com/gpu`` CDI devices, or its CDI spec folders hold an NVIDIA spec. None otherwise.
    """
    if "nvidia" in (info.get("Runtimes") or {}):
        return "runtime"
    if local and any(which(name) for name in TOOLKIT_HOOKS):
        return "hook"
    discovered = info.get("DiscoveredDevices") or []
    if any(str(d.get("ID", "")).startswith(CDI_GPU) for d in discovered if isinstance(d, dict)):
        return "cdi"
    if local and any(_cdi_spec_names_gpu(Path(folder)) for folder in info.get("CDISpecDirs") or ()):
        return "cdi"
    return None


def _cdi_spec_names_gpu(folder: Path) -> bool:
    try:
        specs = [p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".json")]
        return any(CDI_GPU.split("=")[0] in p.read_text(errors="replace") for p in specs)
    except OSError:
        return False


def _local_engine(client) -> bool:
    """True when the engine runs on this machine (a unix socket), so its files are ours to read."""
    url = str(getattr(client.api, "base_url", ""))
    return url.startswith(("http+unix://", "unix://")) or "docker.sock" in url


def _run(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip()
