"""Estimates against this machine: the compatibility and training tables, disk, and a verdict.

Rules (seed, Step 2 §6-7): each dtype is tried on the GPU first (NVIDIA: free VRAM of one GPU,
then of all GPUs together; Apple: MPS), and when it does not fit there, in RAM on the CPU; what
fits nowhere cannot run. Notes: "Requires quantization" on int8/int4 rows when no 16/32-bit
row fits; "Close to limit" when less than 1 GiB would remain. QLoRA needs CUDA. Memory is the
estimate for the device that runs it (its overhead differs, see ``llm_installer.check.memory``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llm_installer.check.estimate import Estimates
from llm_installer.check.hardware import Hardware
from llm_installer.check.memory import QUANTIZED, GiB, InferenceEstimate, TrainingEstimate

CLOSE_TO_LIMIT = 1 * GiB
MPS_SHARE = 0.75  # macOS lets the GPU wire about three quarters of unified memory

# What each device can run with the runtime's libraries (bitsandbytes 8/4-bit needs CUDA).
DEVICE_DTYPES = {
    "cuda": frozenset({"fp32", "fp16", "bf16", "int8", "int4"}),
    "mps": frozenset({"fp32", "fp16", "bf16"}),
    "cpu": frozenset({"fp32", "fp16", "bf16"}),
}
MIN_CAPABILITY = {"bf16": (8, 0)}  # Ampere or newer for bfloat16 on NVIDIA GPUs
ACCELERATORS = ("cuda", "mps")
# Preferred dtype per device for the recommendation: CPUs run fp32 unless they have bf16 matrix
# instructions, where the runtime (as vLLM) loads LLMs in bf16 (CPU_BF16_PREFERENCE).
DTYPE_PREFERENCE = {
    "cuda": ("bf16", "fp16", "fp32", "int8", "int4"),
    "mps": ("fp16", "bf16", "fp32"),
    "cpu": ("fp32", "bf16", "fp16"),
}
CPU_BF16_PREFERENCE = ("bf16", "fp32", "fp16")
DEVICE_PREFERENCE = ("cuda", "mps", "cpu")
TRAINING_DEVICES = {
    "lora": ("cuda", "mps", "cpu"),
    "qlora": ("cuda",),
    "full": ("cuda", "mps", "cpu"),
}
TRAINING_LABELS = {"lora": "LoRA", "qlora": "QLoRA", "full": "Full"}

REQUIRES_QUANTIZATION = "Requires quantization"
CLOSE_NOTE = "Close to limit"


@dataclass(frozen=True)
class Fit:
    """One dtype on one device: the memory it needs there and what that device offers."""

    device: str
    memory: int
    capacity: int
    gpus: int = 1

    @property
    def fits(self) -> bool:
        return self.memory <= self.capacity

    @property
    def close(self) -> bool:
        return self.fits and self.capacity - self.memory < CLOSE_TO_LIMIT


@dataclass(frozen=True)
class CompatRow:
    """A row of the compatibility table; ``device`` is "-" when it fits nowhere."""

    dtype: str
    memory: int
    can_run: bool
    device: str
    notes: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        return "; ".join(self.notes)


@dataclass(frozen=True)
class TrainingRow:
    """A row of the training table: ``memory`` is for ``device`` (the GPU's where none fits)."""

    method: str
    dtype: str
    memory: int
    cpu_ok: bool
    gpu_ok: bool
    device: str
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{TRAINING_LABELS[self.method]} ({self.dtype})"


@dataclass(frozen=True)
class DiskCheck:
    """``level``: ok | warn (below warn_disk_space_gb after install) | low (below the minimum) |
    insufficient (the files do not fit)."""

    needed: int
    free: int
    path: str
    level: str
    message: str

    @property
    def ok(self) -> bool:
        return self.level != "insufficient"


@dataclass(frozen=True)
class Verdict:
    status: str  # "compatible" | "limited" | "incompatible"
    dtype: str | None
    device: str | None
    reason: str


@dataclass(frozen=True)
class Compatibility:
    rows: tuple[CompatRow, ...]
    training: tuple[TrainingRow, ...]
    disk: DiskCheck
    verdict: Verdict


def check_compatibility(
    estimates: Estimates,
    hardware: Hardware,
    *,
    min_disk_gb: float = 50,
    warn_disk_gb: float = 100,
    dtypes: Sequence[str] | None = None,
    llm: bool = False,
) -> Compatibility:
    """The compatibility and training tables, the disk check and the verdict. ``llm``: a
    text-generation model, which the runtime loads in bf16 on a CPU with bf16 instructions."""
    inference = [e for e in estimates.inference if dtypes is None or e.dtype in dtypes]
    rows = inference_rows(inference, hardware)
    disk = check_disk(estimates.disk.total, hardware, min_disk_gb, warn_disk_gb)
    return Compatibility(
        rows=rows,
        training=tuple(training_row(t, hardware) for t in estimates.training),
        disk=disk,
        verdict=verdict(rows, disk, hardware, cpu_bf16=llm and hardware.cpu_bf16),
    )


# ---------------------------------------------------------------------------- devices


def devices(hardware: Hardware) -> tuple[str, ...]:
    """Devices this machine offers, best first."""
    present = {"cuda": hardware.has_cuda, "mps": hardware.mps_available, "cpu": True}
    return tuple(d for d in DEVICE_PREFERENCE if present[d])


def capacity(hardware: Hardware, device: str) -> int:
    """Bytes usable on ``device``: the largest GPU's free VRAM; MPS' share; available RAM."""
    if device == "cuda":
        return max((g.vram_free for g in hardware.gpus), default=0)
    if device == "mps":
        return int(min(hardware.ram_available, MPS_SHARE * hardware.ram_total))
    return hardware.ram_available


def supports(hardware: Hardware, device: str, dtype: str) -> bool:
    if dtype not in DEVICE_DTYPES[device]:
        return False
    needed = MIN_CAPABILITY.get(dtype)
    if device != "cuda" or needed is None:
        return True
    return all(
        g.compute_capability is None or g.compute_capability >= needed for g in hardware.gpus
    )


def fits_on(hardware: Hardware, device: str, memory: int) -> Fit:
    """The fit on ``device``; on NVIDIA, all GPUs together when one is too small."""
    fit = Fit(device, memory, capacity(hardware, device))
    if device == "cuda" and not fit.fits and len(hardware.gpus) > 1:
        return Fit(device, memory, hardware.vram_free, len(hardware.gpus))
    return fit


def best_fit(hardware: Hardware, dtype: str, memory_for: Callable[[str], int]) -> Fit | None:
    """The first device (best first) that supports ``dtype`` and holds ``memory_for(device)``."""
    for device in devices(hardware):
        if supports(hardware, device, dtype):
            fit = fits_on(hardware, device, memory_for(device))
            if fit.fits:
                return fit
    return None


def _fallback_device(hardware: Hardware, dtype: str) -> str:
    """Where the memory of a row that fits nowhere is quoted: the best device that supports it."""
    return next((d for d in devices(hardware) if supports(hardware, d, dtype)), "cuda")


# ---------------------------------------------------------------------------- inference


def inference_rows(
    estimates: Sequence[InferenceEstimate], hardware: Hardware
) -> tuple[CompatRow, ...]:
    fits = {e.dtype: best_fit(hardware, e.dtype, e.total_for) for e in estimates}
    unquantized_fits = any(fit for dtype, fit in fits.items() if dtype not in QUANTIZED)
    return tuple(_row(e, fits[e.dtype], hardware, unquantized_fits) for e in estimates)


def _row(
    estimate: InferenceEstimate, fit: Fit | None, hardware: Hardware, unquantized_fits: bool
) -> CompatRow:
    if fit is None:
        device = _fallback_device(hardware, estimate.dtype)
        return CompatRow(
            estimate.dtype,
            estimate.total_for(device),
            False,
            "-",
            _why_not(estimate.dtype, hardware),
        )
    notes = []
    if estimate.dtype in QUANTIZED and not unquantized_fits:
        notes.append(REQUIRES_QUANTIZATION)
    if fit.close:
        notes.append(CLOSE_NOTE)
    if fit.gpus > 1:
        notes.append(f"Split across {fit.gpus} GPUs")
    return CompatRow(estimate.dtype, fit.memory, True, fit.device, tuple(notes))


def _why_not(dtype: str, hardware: Hardware) -> tuple[str, ...]:
    if not any(supports(hardware, d, dtype) for d in devices(hardware)):
        return ("Needs an NVIDIA GPU",) if dtype in QUANTIZED else (f"{dtype} not supported here",)
    return ()


# ---------------------------------------------------------------------------- training


def training_row(estimate: TrainingEstimate, hardware: Hardware) -> TrainingRow:
    """CPU ✓/✗, GPU ✓/✗ and the device for one method; QLoRA only on CUDA."""
    allowed = TRAINING_DEVICES[estimate.method]
    accelerator = next((d for d in devices(hardware) if d in ACCELERATORS and d in allowed), None)
    gpu_fit = (
        fits_on(hardware, accelerator, estimate.total_for(accelerator)) if accelerator else None
    )
    cpu_fit = fits_on(hardware, "cpu", estimate.total_for("cpu")) if "cpu" in allowed else None
    chosen = next((f for f in (gpu_fit, cpu_fit) if f is not None and f.fits), None)
    quoted = chosen or gpu_fit or cpu_fit
    memory = quoted.memory if quoted else estimate.total_for("cuda")
    notes = (CLOSE_NOTE,) if chosen and chosen.close else ()
    if estimate.method == "qlora" and not hardware.has_cuda:
        notes = ("Needs an NVIDIA GPU",)
    return TrainingRow(
        method=estimate.method,
        dtype=estimate.dtype,
        memory=memory,
        cpu_ok=bool(cpu_fit and cpu_fit.fits),
        gpu_ok=bool(gpu_fit and gpu_fit.fits),
        device=chosen.device if chosen else "-",
        notes=notes,
    )


# ---------------------------------------------------------------------------- disk and verdict


def check_disk(needed: int, hardware: Hardware, min_gb: float, warn_gb: float) -> DiskCheck:
    """Free space under models_dir against the files + environment and the configured thresholds."""
    free, left = hardware.disk_free, hardware.disk_free - needed
    if left < 0:
        level, message = "insufficient", f"needs {_gb(needed)}, only {_gb(free)} free"
    elif left < min_gb * GiB:
        level, message = (
            "low",
            f"would leave {_gb(left)} free, below min_disk_space_gb ({min_gb:g} GB)",
        )
    elif left < warn_gb * GiB:
        level, message = (
            "warn",
            f"would leave {_gb(left)} free, below warn_disk_space_gb ({warn_gb:g} GB)",
        )
    else:
        level, message = "ok", f"{_gb(free)} free, {_gb(needed)} needed"
    return DiskCheck(needed, free, hardware.disk_path, level, message)


def _gb(value: int) -> str:
    return f"{value / GiB:.1f} GB"


def recommended(rows: Sequence[CompatRow], *, cpu_bf16: bool = False) -> CompatRow | None:
    """The best runnable row: not close to the limit, then the best device, then its dtype order
    (``cpu_bf16``: bf16 first on the CPU, as the runtime loads the model there)."""
    runnable = [r for r in rows if r.can_run]
    preference = {**DTYPE_PREFERENCE, **({"cpu": CPU_BF16_PREFERENCE} if cpu_bf16 else {})}

    def rank(row: CompatRow) -> tuple[int, int, int]:
        order = preference[row.device]
        return (
            CLOSE_NOTE in row.notes,
            DEVICE_PREFERENCE.index(row.device),
            order.index(row.dtype),
        )

    return min(runnable, key=rank, default=None)


def verdict(
    rows: Sequence[CompatRow], disk: DiskCheck, hardware: Hardware, *, cpu_bf16: bool = False
) -> Verdict:
    """compatible / limited / incompatible, with the recommended dtype and device."""
    best = recommended(rows, cpu_bf16=cpu_bf16)
    if best is None:
        return Verdict(
            "incompatible", None, None, "the model fits neither in VRAM nor in RAM in any dtype"
        )
    if not disk.ok:
        return Verdict(
            "incompatible", best.dtype, best.device, f"not enough disk space: {disk.message}"
        )
    limits = _limitations(best, disk, hardware)
    if limits:
        return Verdict("limited", best.dtype, best.device, "; ".join(limits))
    return Verdict("compatible", best.dtype, best.device, f"runs in {best.dtype} on {best.device}")


def _limitations(best: CompatRow, disk: DiskCheck, hardware: Hardware) -> list[str]:
    limits = []
    if REQUIRES_QUANTIZATION in best.notes:
        limits.append(f"fits only quantized ({best.dtype})")
    elif best.dtype in QUANTIZED:
        limits.append(f"fits the GPU only quantized ({best.dtype})")
    if best.device == "cpu" and any(d in ACCELERATORS for d in devices(hardware)):
        limits.append("too large for the GPU: runs on the CPU (slow)")
    if CLOSE_NOTE in best.notes:
        limits.append("close to the memory limit")
    if disk.level == "low":
        limits.append(f"disk: {disk.message}")
    return limits
