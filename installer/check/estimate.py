"""Resource estimates from a repo's file list and configs: parameters, memory, disk. No torch.

``estimate`` gathers them: the weight set (``llm_installer.check.weights``), the parameter count
(``llm_installer.check.params``), the model's shapes (``llm_installer.check.shapes``) and the memory to
serve and to fine-tune it (``llm_installer.check.memory``, whose docstring has the formulas).

Disk: the chosen weight files + every non-weight file (configs, tokenizers) + 3 GiB for the
environment (image layers); ``repo_total`` is the whole repo, all formats included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llm_installer.check.memory import (
    GiB,
    InferenceEstimate,
    TrainingEstimate,
    default_context,
    estimate_inference,
    estimate_training,
)
from llm_installer.check.params import (
    MoeCounts,
    ParamCount,
    count_parameters,
    main_config,
    moe_counts,
    quantization_label,
)
from llm_installer.check.shapes import ModelShape, model_shape
from llm_installer.check.source import ModelSource
from llm_installer.check.weights import WeightSet, choose_weights, is_weight_path

ENVIRONMENT_BYTES = 3 * GiB
INFERENCE_DTYPES = ("fp32", "fp16", "bf16", "int8", "int4")
TRAINING_ROWS = (
    ("lora", "fp16"),
    ("lora", "fp32"),
    ("qlora", "int4"),
    ("full", "fp16"),
    ("full", "fp32"),
)

# The seed's rule: weight file size × coefficient, per dtype.
SEED_COEFFICIENTS = {"fp32": 2.0, "fp16": 1.5, "bf16": 1.5, "int8": 1.3, "int4": 1.2}
SEED_WEIGHT_SUFFIXES = (".bin", ".safetensors", ".pt", ".pth")


@dataclass(frozen=True)
class DiskEstimate:
    weights: int
    other_files: int
    repo_total: int
    environment: int = ENVIRONMENT_BYTES

    @property
    def model_files(self) -> int:
        return self.weights + self.other_files

    @property
    def total(self) -> int:
        return self.model_files + self.environment


@dataclass(frozen=True)
class Estimates:
    weights: WeightSet
    params: ParamCount
    shape: ModelShape | None
    moe: MoeCounts | None
    context_length: int
    inference: tuple[InferenceEstimate, ...]
    training: tuple[TrainingEstimate, ...]
    disk: DiskEstimate
    seed_rule: Mapping[str, int] = field(default_factory=dict)
    quantization: str | None = None

    def inference_for(self, dtype: str) -> InferenceEstimate:
        return next(e for e in self.inference if e.dtype == dtype)


def estimate(source: ModelSource, *, context_length: int | None = None) -> Estimates:
    """Every estimate for ``source``; ``context_length`` overrides the default context."""
    weights = choose_weights(source)
    config = main_config(source)
    shape = model_shape(config)
    params = count_parameters(source, weights, shape)
    context = context_length or default_context(shape)
    return Estimates(
        weights=weights,
        params=params,
        shape=shape,
        moe=moe_counts(params.total, shape),
        context_length=context,
        inference=tuple(
            estimate_inference(params.total, shape, d, context) for d in INFERENCE_DTYPES
        ),
        training=tuple(estimate_training(params.total, shape, m, d) for m, d in TRAINING_ROWS),
        disk=estimate_disk(source, weights),
        seed_rule=seed_rule_estimate(seed_weight_bytes(source)),
        quantization=quantization_label(config),
    )


def estimate_disk(source: ModelSource, weights: WeightSet) -> DiskEstimate:
    """The chosen weights + all non-weight files + the environment; and the whole repo's size."""
    other = sum(f.size for f in source.files if not is_weight_path(f.path))
    return DiskEstimate(weights=weights.size, other_files=other, repo_total=source.total_size)


def seed_weight_bytes(source: ModelSource) -> int:
    """What the seed's rule sums: every .bin/.safetensors/.pt/.pth file, all formats together."""
    return sum(f.size for f in source.files if f.path.endswith(SEED_WEIGHT_SUFFIXES))


def seed_rule_estimate(weight_file_bytes: int) -> dict[str, int]:
    """The seed's rule: weight file size × 1.2 (int4) / 1.3 (int8) / 1.5 (fp16, bf16) / 2.0 (fp32)."""
    return {dtype: int(weight_file_bytes * k) for dtype, k in SEED_COEFFICIENTS.items()}
