"""Device, dtype, quantization and adapter choices shared by every handler."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llm_runtime.errors import ModelLoadError, OutOfMemory
from llm_runtime.values import LoadSettings

log = logging.getLogger("llm_runtime")

DEFAULT_LORA_MOUNT = Path("/lora")
GiB = 1024**3
# Kept free on each GPU when weights are placed: the KV cache, activations and CUDA's context.
GPU_HEADROOM_FRACTION = 0.10
GPU_HEADROOM_MIN = 1 * GiB
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
QUANTIZE_HINT = "Try a quantized load: --load-in-8bit or --load-in-4bit (CUDA only)."


@dataclass(frozen=True)
class Placement:
    """Where and in what precision the weights go."""

    device: str
    dtype: torch.dtype

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def resolve_device(requested: str = "auto") -> str:
    """auto -> cuda, then mps, then cpu; an explicit device must exist."""
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": _mps_available()}
    if requested == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if available[d])
    if not available.get(requested, False):
        raise ModelLoadError(f"Device {requested!r} is not available here; use --device auto.")
    return requested


def resolve_dtype(requested: str, device: str, *, cpu_bf16: bool = False) -> torch.dtype:
    """auto -> bf16 (or fp16) on cuda, fp16 on mps; on cpu bf16 where ``cpu_bf16`` is asked
    (LLMs) and the CPU has bf16 matrix instructions, as vLLM's CPU backend does, else fp32."""
    if requested != "auto":
        return DTYPES[requested]
    if device == "cuda":
        return torch.bfloat16 if bf16_native() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_bf16 and cpu_bf16_native() else torch.float32


def bf16_native() -> bool:
    """bf16 in hardware (compute capability 8.0+, as `check` rules): Turing and older only
    emulate it, slowly, which ``torch.cuda.is_bf16_supported()`` counts by default."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def cpu_bf16_native() -> bool:
    """AMX or AVX512-BF16 under oneDNN: bf16 matmuls in hardware (elsewhere they are emulated,
    slower than fp32)."""
    try:
        return bool(
            torch.backends.mkldnn.is_available()
            and torch.ops.mkldnn._is_mkldnn_bf16_supported()
            and (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
        )
    except (AttributeError, RuntimeError):  # a torch build without these probes
        return False


def resolve_placement(settings: LoadSettings, *, cpu_bf16: bool = False) -> Placement:
    """Device and dtype for ``settings``; ``cpu_bf16``: auto may pick bf16 on a CPU that has it."""
    if settings.threads:
        torch.set_num_threads(settings.threads)  # small models on CPU run faster on fewer
    device = resolve_device(settings.device)
    return Placement(device=device, dtype=resolve_dtype(settings.dtype, device, cpu_bf16=cpu_bf16))


def quantization_config(settings: LoadSettings, placement: Placement):
    """A BitsAndBytesConfig for --load-in-4bit/8bit; refuses anything but CUDA clearly."""
    if settings.quantization is None:
        return None
    if placement.device != "cuda":
        raise ModelLoadError(
            f"--load-in-{settings.quantization} uses bitsandbytes, which needs an NVIDIA GPU "
            f"(CUDA); this model would run on {placement.device}. Drop the flag, or pick a "
            "smaller dtype with --dtype float16."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ModelLoadError(
            "Quantized loading needs the bitsandbytes package: pip install bitsandbytes"
        ) from exc
    from transformers import BitsAndBytesConfig

    if settings.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=placement.dtype,
        bnb_4bit_use_double_quant=True,
    )


def model_kwargs(settings: LoadSettings, placement: Placement) -> dict:
    """Keyword arguments for `from_pretrained` matching settings and placement.

    On CUDA the weights go through ``device_map="auto"`` with a ``max_memory`` per visible GPU:
    one GPU that holds the model gets all of it, a larger model is split across the GPUs
    (unquantized ones overflow into RAM as a last resort).
    """
    kwargs: dict = {"dtype": placement.dtype, **remote_code(settings)}
    quant = quantization_config(settings, placement)
    if quant is not None:
        kwargs["quantization_config"] = quant
    if placement.device == "cuda":
        free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
        kwargs["device_map"] = "auto"
        kwargs["max_memory"] = max_memory(free, None if quant is not None else _ram_available())
    return kwargs


def max_memory(gpu_free: list[int], ram: int | None) -> dict:
    """accelerate's ``max_memory``: each GPU's free bytes less a headroom; RAM when allowed."""
    limits: dict = {
        i: max(0, free - max(GPU_HEADROOM_MIN, int(free * GPU_HEADROOM_FRACTION)))
        for i, free in enumerate(gpu_free)
    }
    if ram:
        limits["cpu"] = ram
    return limits


def _ram_available() -> int:
    import psutil

    return int(psutil.virtual_memory().available * 0.8)


def input_device(model) -> torch.device:
    """Where a model split by ``device_map`` takes its inputs: its input embedding's device."""
    try:
        return model.get_input_embeddings().weight.device
    except (AttributeError, NotImplementedError):
        return model.device


def remote_code(settings: LoadSettings) -> dict:
    """`trust_remote_code` for every from_pretrained/pipeline call: True only when install
    recorded the user's --trust-remote-code; always explicit, so transformers never prompts."""
    return {"trust_remote_code": settings.trust_remote_code}


def adapter_dir(settings: LoadSettings) -> Path | None:
    """--lora DIR when given, else a mounted /lora holding an adapter, else None."""
    if settings.lora_dir is not None:
        if not (settings.lora_dir / "adapter_config.json").is_file():
            raise ModelLoadError(f"--lora {settings.lora_dir}: no adapter_config.json there.")
        return settings.lora_dir
    if (DEFAULT_LORA_MOUNT / "adapter_config.json").is_file():
        return DEFAULT_LORA_MOUNT
    return None


def apply_adapter(model, path: Path, *, merge: bool):
    """Load a PEFT adapter on model; merge it into the weights when not quantized."""
    from peft import PeftModel

    log.info("Loading adapter from %s", path)
    peft_model = PeftModel.from_pretrained(model, str(path))
    return peft_model.merge_and_unload() if merge else peft_model


def load_model(
    auto_class,
    model_dir: Path,
    settings: LoadSettings,
    placement: Placement,
    *,
    adapter: bool = True,
) -> tuple[Any, Path | None]:
    """``auto_class.from_pretrained`` placed as settings say, the LoRA adapter (when there is one
    and ``adapter``) applied, in eval mode; out of memory is the clear ModelLoadError. Returns the
    model and the adapter's folder (None without one)."""
    kwargs = model_kwargs(settings, placement)
    log.info("Loading %s on %s (%s)", model_dir, placement.device, kwargs["dtype"])
    with translate_oom("loading"):
        model = auto_class.from_pretrained(model_dir, **kwargs)
        if "device_map" not in kwargs:
            model = model.to(placement.device)
        folder = adapter_dir(settings) if adapter else None
        if folder is not None:
            model = apply_adapter(model, folder, merge=settings.quantization is None)
    return model.eval(), folder


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@contextlib.contextmanager
def translate_oom(stage: str) -> Iterator[None]:
    """Turn out-of-memory during stage into a clear error that suggests quantization."""
    try:
        yield
    except Exception as exc:
        if not is_oom(exc):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        error = ModelLoadError if stage == "loading" else OutOfMemory
        raise error(
            f"Out of memory while {stage}: {exc}. {QUANTIZE_HINT} "
            "Shorter prompts, a lower max_tokens or --max-concurrency also use less memory.",
            code="out_of_memory",
        ) from exc


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
