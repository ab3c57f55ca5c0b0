"""What the transformers-based families share: the root config, class-name rules, requirements."""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from llm_installer.check.config_files import main_config_path
from llm_installer.check.families import _traits
from llm_installer.check.families._model_types import KNOWN_MODEL_TYPES
from llm_installer.check.families._table import (
    AUTO_MAP_FAMILIES,
    ENCODER_DECODER,
    HEAD_MARKERS,
    LORA_TARGET_MODULES,
)
from llm_installer.check.families.base import Detection, Family, Requirement, Requirements
from llm_installer.check.source import ModelSource

Config = dict[str, Any]

TORCH = Requirement("torch")
TRANSFORMERS_BASE = (TORCH, Requirement("transformers"), Requirement("accelerate"))
PILLOW = Requirement("pillow", "image input")
AUDIO = (Requirement("librosa", "audio decoding"), Requirement("soundfile", "audio files"))
FLASH_ATTN = Requirement("flash-attn", "requires CUDA 11.6+ and compilation")
OPTIONAL_FLASH_ATTN = Requirement("flash-attn", "optional, requires CUDA 11.6+")
OPTIONAL_BITSANDBYTES = Requirement("bitsandbytes", "4/8-bit, QLoRA; in every CUDA image")

QUANTIZATION_PACKAGES: dict[str, tuple[Requirement, ...]] = {
    "bitsandbytes": (Requirement("bitsandbytes", "4/8-bit weights, needs CUDA"),),
    "gptq": (Requirement("auto-gptq", "GPTQ kernels, needs CUDA"), Requirement("optimum")),
    "awq": (Requirement("autoawq", "AWQ kernels, needs CUDA"),),
    "compressed-tensors": (Requirement("compressed-tensors"),),
    "hqq": (Requirement("hqq"),),
    "mxfp4": (Requirement("kernels", "MXFP4 GPU kernels; without them weights load as bf16"),),
}
SENTENCEPIECE_FILE = re.compile(
    r"(tokenizer\.model(\.v\d+)?|spiece\.model|sentencepiece\.bpe\.model|.+\.spm)$"
)
DTYPE_KEYS = ("torch_dtype", "dtype")
CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_sequence_length",
    "seq_length",
    "n_ctx",
)
FLASH_ATTENTION_FLAGS = ("use_flash_attn", "use_flash_attention_2")

REMOTE_CODE_WARNING = (
    "This model ships its own Python code (auto_map in config.json): it runs only with "
    "--trust-remote-code; use that only if you trust the repo's authors."
)
FLASH_ATTN_WARNING = (
    "This model's config asks for flash_attention_2: flash-attn needs an NVIDIA GPU and "
    "compiles against CUDA during install."
)


def root_config(source: ModelSource) -> Config | None:
    """The model's root config (config.json or a validated alternative), or None."""
    path = main_config_path(source.configs)
    return source.config(path) if path else None


def architecture(config: Config) -> str:
    """The first class name in ``architectures``, or ''."""
    names = config.get("architectures")
    if isinstance(names, list) and names and isinstance(names[0], str):
        return names[0]
    return ""


def model_type(config: Config) -> str:
    value = config.get("model_type")
    return value if isinstance(value, str) else ""


def head_family(arch: str) -> str | None:
    """The family a head marker in the class name settles (``…ForCTC`` → speech-recognition)."""
    for family, markers in HEAD_MARKERS.items():
        if any(marker in arch for marker in markers):
            return family
    return None


def is_bare_model(arch: str) -> bool:
    """``BertModel``, ``ViTModel``: a backbone class without a task head."""
    return (
        arch.endswith("Model") and head_family(arch) is None and not arch.endswith(ENCODER_DECODER)
    )


def auto_map_family(config: Config) -> str | None:
    """The family named by a custom-code repo's auto_map (``AutoModelForCausalLM`` …)."""
    auto_map = config.get("auto_map")
    if not isinstance(auto_map, dict):
        return None
    return next((fam for key, fam in AUTO_MAP_FAMILIES.items() if key in auto_map), None)


def needs_remote_code(config: Config) -> bool:
    """True when config.json maps to custom code and transformers has no class of its own."""
    return isinstance(config.get("auto_map"), dict) and model_type(config) not in KNOWN_MODEL_TYPES


def sub_config(config: Config, key: str) -> Config | None:
    value = config.get(key)
    return value if isinstance(value, dict) and value else None


class TransformersFamily(Family):
    """A family whose models load with transformers from the root config; subclasses say which."""

    task: ClassVar[str]
    generative: ClassVar[bool] = False
    text_input: ClassVar[bool] = False
    packages: ClassVar[tuple[Requirement, ...]] = ()
    optional: ClassVar[tuple[Requirement, ...]] = ()

    @abstractmethod
    def matches(self, source: ModelSource, config: Config) -> bool:
        """True when ``config`` (the root model config) belongs to this family."""

    def details(self, source: ModelSource, config: Config) -> dict[str, Any]:
        """Family-specific facts for the report and the runtime."""
        return {}

    def task_for(self, config: Config) -> str:
        return self.task

    def detect(self, source: ModelSource) -> Detection | None:
        config = root_config(source)
        if config is None or not self.matches(source, config):
            return None
        moe = _traits.moe_details(config)
        reasoning = self.generative and _traits.is_reasoning(source, config)
        details = {
            **basic_details(config, context=self.generative or self.text_input),
            **(moe or {}),
            **self.details(source, config),
        }
        return Detection(
            family=self.name,
            library="transformers",
            task=self.task_for(config),
            architecture=architecture(config) or None,
            model_type=model_type(config) or None,
            capabilities=capabilities(source, self.task_for(config), moe is not None, reasoning),
            is_moe=moe is not None,
            is_reasoning=reasoning,
            trust_remote_code=needs_remote_code(config),
            details=details,
            lora_target_modules=LORA_TARGET_MODULES.get(model_type(config), ()),
        )

    def requirements(self, source: ModelSource, detection: Detection) -> Requirements:
        return transformers_requirements(
            source, detection, extra=self.packages, optional=self.optional
        )


def basic_details(config: Config, *, context: bool) -> dict[str, Any]:
    """dtype, quantization method and (for text models) context length, where the config states them."""
    parts = list(_traits.text_configs(config))
    found = {
        "torch_dtype": _first_value(parts, DTYPE_KEYS),
        "context_length": _first_value(parts, CONTEXT_KEYS) if context else None,
        "quantization": quantization_method(config),
    }
    return {key: value for key, value in found.items() if value is not None}


def _first_value(parts: list[Config], keys: tuple[str, ...]) -> Any:
    return next((part[key] for part in parts for key in keys if part.get(key) is not None), None)


def capabilities(source: ModelSource, task: str, moe: bool, reasoning: bool) -> tuple[str, ...]:
    """Human labels for the report: the task, then chat / reasoning / mixture of experts."""
    labels = [task.replace("-", " ").title()]
    if _traits.has_chat_template(source):
        labels.append("Chat")
    if reasoning:
        labels.append("Reasoning")
    if moe:
        labels.append("Mixture of Experts")
    return tuple(labels)


def transformers_requirements(
    source: ModelSource,
    detection: Detection,
    *,
    extra: Iterable[Requirement] = (),
    optional: Iterable[Requirement] = (),
    base: tuple[Requirement, ...] = TRANSFORMERS_BASE,
) -> Requirements:
    """Base packages, extras from the config and tokenizer files, optional ones, and warnings."""
    config = root_config(source) or {}
    needed = unique([*extra, *config_packages(config), *tokenizer_packages(source)])
    names = {r.package for r in needed}
    return Requirements(
        base=base,
        architecture=needed,
        optional=unique(r for r in optional if r.package not in names),
        warnings=tuple(config_warnings(config, detection)),
    )


def config_packages(config: Config) -> Iterator[Requirement]:
    """Packages a config asks for: flash-attn, quantization kernels."""
    if wants_flash_attention(config):
        yield FLASH_ATTN
    yield from QUANTIZATION_PACKAGES.get(quantization_method(config) or "", ())


def wants_flash_attention(config: Config) -> bool:
    implementation = config.get("_attn_implementation") or config.get("attn_implementation")
    return implementation == "flash_attention_2" or any(
        config.get(k) for k in FLASH_ATTENTION_FLAGS
    )


def quantization_method(config: Config) -> str | None:
    """``bitsandbytes``, ``gptq``, ``awq``, ``fp8`` … from quantization_config, or None."""
    quantization = sub_config(config, "quantization_config")
    if quantization is None:
        return None
    method = quantization.get("quant_method")
    if isinstance(method, str):
        return method.lower()
    return (
        "bitsandbytes"
        if quantization.get("load_in_4bit") or quantization.get("load_in_8bit")
        else None
    )


def tokenizer_packages(source: ModelSource) -> Iterator[Requirement]:
    """sentencepiece / protobuf / tiktoken when the tokenizer files need them."""
    root_names = [f.name for f in source.files if not f.folder]
    if any(SENTENCEPIECE_FILE.match(name) for name in root_names):
        yield Requirement("sentencepiece", "tokenizer.model")
        if "tokenizer.json" not in root_names:
            yield Requirement("protobuf", "converts the sentencepiece tokenizer")
    tokenizer_class = str((source.config("tokenizer_config.json") or {}).get("tokenizer_class", ""))
    if (
        any(name.endswith(".tiktoken") for name in root_names)
        or "tiktoken" in tokenizer_class.lower()
    ):
        yield Requirement("tiktoken", "tokenizer")


def config_warnings(config: Config, detection: Detection) -> Iterator[str]:
    if detection.trust_remote_code:
        yield REMOTE_CODE_WARNING
    if wants_flash_attention(config):
        yield FLASH_ATTN_WARNING


def unique(requirements: Iterable[Requirement]) -> tuple[Requirement, ...]:
    """Requirements in order, first of each package kept."""
    seen: dict[str, Requirement] = {}
    for requirement in requirements:
        seen.setdefault(requirement.package, requirement)
    return tuple(seen.values())
