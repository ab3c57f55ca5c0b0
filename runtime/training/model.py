"""Load the model for training and wrap it for the chosen method (LoRA, QLoRA, full, MoE LoRA).

The model folder is described by model_info.json when the installer wrote one (family,
is_moe, target modules), otherwise by its own files; nothing from llm_installer is imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from llm_runtime.contract import IMAGE_TEXT_TO_TEXT, TEXT_GENERATION
from llm_runtime.model_info import ModelInfo
from llm_runtime.training import moe
from llm_runtime.training.errors import (
    ModelLoadError,
    TrainingError,
    UnsupportedMethod,
    is_out_of_memory,
)
from llm_runtime.training.params import ModelFacts, TrainPlan

MULTIMODAL_FAMILIES = ("multimodal", IMAGE_TEXT_TO_TEXT)
ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class ModelSpec:
    """The model folder as the trainer sees it."""

    model_dir: Path
    model_id: str
    family: str
    is_moe: bool
    target_modules: tuple[str, ...] | None
    info: ModelInfo
    multimodal: bool = False  # image-text-to-text: trained on image+caption records

    @property
    def code(self) -> dict:
        """`trust_remote_code` as install recorded it (the user's --trust-remote-code)."""
        return {"trust_remote_code": self.info.trust_remote_code}


def read_spec(model_dir: Path) -> ModelSpec:
    """From model_info.json (where the server finds it) or config.json."""
    info = _model_info(model_dir)
    config = _json(model_dir / "config.json")
    if not config:
        raise ModelLoadError(f"{model_dir} has no config.json: not a transformers model folder")
    is_moe = info.is_moe or any(config.get(k) for k in moe.EXPERT_COUNT_KEYS)
    family = info.family or _detected_family(model_dir, config)
    return ModelSpec(
        model_dir=model_dir,
        model_id=info.model_id or model_dir.resolve().name,
        family=family,
        is_moe=is_moe,
        target_modules=info.lora_target_modules or None,
        info=info,
        multimodal=family in MULTIMODAL_FAMILIES or "vision_config" in config,
    )


def _detected_family(model_dir: Path, config: dict) -> str:
    """The server's structural detection where no model_info.json names the family."""
    from llm_runtime.errors import UnsupportedFamily
    from llm_runtime.profile import detect_family

    try:
        return detect_family(model_dir, config)
    except UnsupportedFamily:
        return TEXT_GENERATION


def _model_info(model_dir: Path) -> ModelInfo:
    """The server's search order: $LLM_MODEL_INFO (the image sets it), DIR/, DIR/.. — read
    strictly; a folder without one is described by its own files."""
    from llm_runtime.model_info import ModelInfoError, model_info_path, read_model_info

    path = model_info_path(model_dir)
    try:
        return read_model_info(path) if path else ModelInfo()
    except ModelInfoError as exc:
        raise ModelLoadError(str(exc)) from exc


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def pick_device(requested: str) -> str:
    """cuda, mps or cpu. CUDA training uses one GPU: the first visible one (see ``one_gpu``)."""
    if requested in ("auto", "cuda"):
        one_gpu()
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"


def one_gpu(environ=os.environ, gpu_count=None) -> str | None:
    """Train on one GPU: narrow CUDA_VISIBLE_DEVICES to its first entry (before CUDA starts), so
    the Trainer never wraps the model in DataParallel, which splits each batch across GPUs (QLoRA
    would multiply its batch by the GPU count on one card). Launches by torchrun/accelerate
    (WORLD_SIZE set) keep their own GPUs. Returns the value set, or None when left alone."""
    if "WORLD_SIZE" in environ:
        return None
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        count = (gpu_count or _nvml_gpu_count)()
        if count <= 1:
            return None
        first = "0"
    else:
        first = value.split(",")[0].strip()
        if first == value.strip():
            return None
    environ["CUDA_VISIBLE_DEVICES"] = first
    return first


def _nvml_gpu_count() -> int:
    """GPUs NVML sees, without starting CUDA (which would fix the visible devices); -1 unknown."""
    import torch

    try:
        return int(torch.cuda._device_count_nvml())
    except Exception:
        return -1


def bf16_native() -> bool:
    """bf16 in hardware only (compute capability 8.0+); Turing would emulate it slowly."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def check_method(method: str, use_8bit: bool, device: str, optimizer: str) -> None:
    """Refuse combinations that cannot train; QLoRA, 8-bit loading and 8-bit optimizers need
    bitsandbytes on CUDA."""
    if use_8bit and method in ("full", "qlora"):
        raise UnsupportedMethod(
            f"--use-8bit cannot be combined with --method {method}: "
            + (
                "quantized int8 weights cannot be trained directly.\n"
                "Use --method lora --use-8bit (adapters over 8-bit weights), or --method full "
                "without --use-8bit."
                if method == "full"
                else "QLoRA loads the weights in 4-bit.\nUse --method qlora alone, or "
                "--method lora --use-8bit."
            )
        )
    needs_bnb = method == "qlora" or use_8bit or optimizer.endswith("8bit")
    if not needs_bnb:
        return
    what = (
        "--method qlora"
        if method == "qlora"
        else "--use-8bit"
        if use_8bit
        else f"--optimizer {optimizer}"
    )
    if device != "cuda":
        raise UnsupportedMethod(
            f"{what} needs an NVIDIA GPU (CUDA); this run is on {device}.\n"
            "Use --method lora (or --optimizer adamw_torch) here."
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UnsupportedMethod(f"{what} needs the bitsandbytes package, which is not installed.")


def load_tokenizer(spec: ModelSpec):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec.model_dir, **spec.code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def load_processor(spec: ModelSpec):
    """A multimodal model's processor (tokenizer + image processor), with a pad token."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(spec.model_dir, **spec.code)
    tokenizer = processor.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return processor


def load_model(spec: ModelSpec, *, method: str, use_8bit: bool, device: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    auto_class = AutoModelForImageTextToText if spec.multimodal else AutoModelForCausalLM
    kwargs = {"dtype": _train_dtype(device), **spec.code}
    if method == "qlora" or use_8bit:
        kwargs["quantization_config"] = _quantization(method, kwargs["dtype"])
    if device == "cuda":
        kwargs["device_map"] = {"": 0}  # one GPU, whole model: see one_gpu
    try:
        model = auto_class.from_pretrained(spec.model_dir, **kwargs)
    except (OSError, ValueError) as error:
        if is_out_of_memory(error):  # ENOMEM while mapping the weights: the OOM message
            raise
        raise ModelLoadError(f"{spec.model_dir}: {error}") from error
    if "device_map" not in kwargs and device != "cpu":
        model.to(torch.device(device))
    return model


def _train_dtype(device: str):
    import torch

    if device == "cuda":
        return torch.bfloat16 if bf16_native() else torch.float16
    return torch.float32


def _quantization(method: str, compute_dtype):
    """4-bit NF4 for QLoRA, computing in the training dtype (fp16 where bf16 is missing)."""
    from transformers import BitsAndBytesConfig

    if method == "qlora":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def model_facts(model, device: str) -> ModelFacts:
    import psutil
    import torch

    free = torch.cuda.mem_get_info()[0] if device == "cuda" else psutil.virtual_memory().available
    text_config = model.config.get_text_config()
    context = getattr(text_config, "max_position_embeddings", None) or 2048
    return ModelFacts(
        parameters=model.num_parameters(),
        is_moe=bool(moe.config_value(model.config, moe.EXPERT_COUNT_KEYS)),
        context_length=int(context),
        free_memory_gb=free / 1e9,
        device=device,
    )


@dataclass(frozen=True)
class Wrapped:
    """The model ready for the trainer, plus what the MoE checks need."""

    model: object
    moe_targets: moe.MoeTargets | None
    predicted_adapter_parameters: int | None


def plan_from_adapter(plan: TrainPlan, folder: Path) -> TrainPlan:
    """The plan with the continued adapter's rank, alpha and targets (so --resume rebuilds it)."""
    import dataclasses

    config = _json(folder / "adapter_config.json")
    targets = config.get("target_modules")
    return dataclasses.replace(
        plan,
        lora_r=int(config.get("r") or plan.lora_r),
        lora_alpha=int(config.get("lora_alpha") or plan.lora_alpha),
        target_modules=tuple(targets) if isinstance(targets, list) else plan.target_modules,
    )


def continued_adapter(model, folder: Path, method: str):
    """The model with ``folder``'s LoRA loaded trainable: training continues from its weights."""
    from peft import PeftModel

    if method not in ("lora", "qlora"):
        raise TrainingError(f"--from-adapter continues a LoRA adapter; --method {method} cannot.")
    if not (folder / "adapter_config.json").is_file():
        raise TrainingError(f"--from-adapter {folder}: no adapter_config.json there.")
    print(f"🔁 Continuing the adapter in {folder} (its rank and targets are kept)", flush=True)
    return PeftModel.from_pretrained(model, str(folder), is_trainable=True)


def wrap(
    model,
    plan: TrainPlan,
    *,
    train_router: bool,
    router_aux_loss_coef: float | None,
    from_adapter: Path | None = None,
) -> Wrapped:
    """Apply the method: nothing (full), LoRA on linear layers, or LoRA on the experts."""
    if plan.method == "full":
        model.requires_grad_(True)
        return Wrapped(model, None, None)
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if plan.method == "qlora" or getattr(model, "is_loaded_in_8bit", False):
        model = prepare_model_for_kbit_training(model, plan.gradient_checkpointing)
    if from_adapter is not None:
        return Wrapped(continued_adapter(model, from_adapter, plan.method), None, None)
    targets, predicted = None, None
    if plan.method == "moe-lora":
        targets = moe.find_targets(model)
        _enable_router_aux_loss(model, router_aux_loss_coef)
        config = moe.lora_config(
            targets,
            r=plan.lora_r,
            alpha=plan.lora_alpha,
            dropout=plan.lora_dropout,
            train_router=train_router,
        )
        predicted = moe.predicted_adapter_parameters(model, targets, plan.lora_r, train_router)
    else:
        config = LoraConfig(
            r=plan.lora_r,
            lora_alpha=plan.lora_alpha,
            lora_dropout=plan.lora_dropout,
            target_modules=_lora_targets(plan.target_modules),
            task_type="CAUSAL_LM",
        )
    try:
        return Wrapped(get_peft_model(model, config), targets, predicted)
    except ValueError as error:
        if "not found in the base model" not in str(error):
            raise
        raise TrainingError(
            f"{error}\nThe LoRA targets come from --target-modules, else model_info.json's "
            "lora_target_modules; pass --target-modules with this model's layer names "
            "(e.g. q_proj,v_proj), or all-linear."
        ) from error


def _lora_targets(names: tuple[str, ...] | None) -> list[str] | str:
    """PEFT takes the all-linear shorthand only as a string."""
    return list(names) if names and names != (ALL_LINEAR,) else ALL_LINEAR


def _enable_router_aux_loss(model, coefficient: float | None) -> None:
    """Turn on the load-balancing loss: router logits out, a non-zero coefficient. Set on the
    top config (TRL reads `model.config.output_router_logits`) and, for a multimodal model, on
    its text config too (its language model reads that one)."""
    text = getattr(model.config, "text_config", None)
    configs = [c for c in (model.config, text) if c is not None]
    current = max(getattr(c, "router_aux_loss_coef", 0.0) or 0.0 for c in configs)
    for config in configs:
        config.output_router_logits = True
        config.router_aux_loss_coef = coefficient if coefficient is not None else (current or 0.001)
