"""state-space: Mamba, Mamba-2, RWKV and hybrids (Jamba, Zamba, Bamba …), with their kernels."""

from __future__ import annotations

import dataclasses

from llm_installer.check.families._common import (
    OPTIONAL_BITSANDBYTES,
    Config,
    TransformersFamily,
    model_type,
    root_config,
    transformers_requirements,
)
from llm_installer.check.families._table import STATE_SPACE_TYPES
from llm_installer.check.families.base import Detection, Requirement, Requirements
from llm_installer.check.source import ModelSource
from llm_runtime.contract import STATE_SPACE

KERNEL_NOTES = {
    "mamba-ssm": "requires CUDA compilation",
    "causal-conv1d": "requires CUDA",
    "rwkv": "RWKV inference kernels",
}
ORIGINAL_MAMBA_KEY = "ssm_cfg"  # state-spaces/mamba-* checkpoints: no model_type, mamba_ssm format
MAMBA_WARNING = "This model requires mamba-ssm which needs CUDA compilation"


class StateSpaceFamily(TransformersFamily):
    """A model_type from the state-space table, or an original mamba_ssm config (``ssm_cfg``)."""

    name = STATE_SPACE
    task = "text-generation"
    generative = True
    optional = (OPTIONAL_BITSANDBYTES,)

    def matches(self, source: ModelSource, config: Config) -> bool:
        return model_type(config) in STATE_SPACE_TYPES or ORIGINAL_MAMBA_KEY in config

    def details(self, source: ModelSource, config: Config) -> dict:
        return {"kernels": list(kernel_packages(config))}

    def detect(self, source: ModelSource) -> Detection | None:
        detection = super().detect(source)
        if detection is not None and not detection.model_type:
            return dataclasses.replace(detection, library="mamba-ssm", model_type="mamba")
        return detection

    def requirements(self, source: ModelSource, detection: Detection) -> Requirements:
        config = root_config(source) or {}
        kernels = tuple(Requirement(p, KERNEL_NOTES.get(p, "")) for p in kernel_packages(config))
        found = transformers_requirements(source, detection, extra=kernels, optional=self.optional)
        warnings = (MAMBA_WARNING,) if "mamba-ssm" in kernel_packages(config) else ()
        return dataclasses.replace(found, warnings=(*warnings, *found.warnings))


def kernel_packages(config: Config) -> tuple[str, ...]:
    """The special packages a state-space model_type needs (mamba-ssm, causal-conv1d, rwkv)."""
    if ORIGINAL_MAMBA_KEY in config and not model_type(config):
        return STATE_SPACE_TYPES["mamba"]
    return STATE_SPACE_TYPES.get(model_type(config), ())
