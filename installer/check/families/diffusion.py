"""diffusion: diffusers pipelines described by model_index.json (Stable Diffusion, SDXL, FLUX …)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llm_installer.check.config_files import MODEL_INDEX
from llm_installer.check.families._common import (
    QUANTIZATION_PACKAGES,
    TORCH,
    quantization_method,
    unique,
)
from llm_installer.check.families.base import Detection, Family, Requirement, Requirements
from llm_installer.check.source import ModelSource
from llm_runtime.contract import DIFFUSION

# (marker in the pipeline class name, task), first match wins; text-to-image otherwise.
PIPELINE_TASKS = (
    ("Img2Img", "image-to-image"),
    ("Inpaint", "image-inpainting"),
    ("Upscale", "image-to-image"),
    ("Video", "text-to-video"),
    ("Audio", "text-to-audio"),
)
SENTENCEPIECE_TOKENIZERS = ("T5Tokenizer", "LlamaTokenizer", "GemmaTokenizer")


class DiffusionFamily(Family):
    """A repo whose model_index.json names a pipeline class and its components."""

    name = DIFFUSION

    def detect(self, source: ModelSource) -> Detection | None:
        index = source.config(MODEL_INDEX)
        if index is None or not isinstance(index.get("_class_name"), str):
            return None
        pipeline = index["_class_name"]
        task = next(
            (task for marker, task in PIPELINE_TASKS if marker in pipeline), "text-to-image"
        )
        return Detection(
            family=self.name,
            library="diffusers",
            task=task,
            architecture=pipeline,
            capabilities=(task.replace("-", " ").title(),),
            details={
                "pipeline": pipeline,
                "components": components(index),
                "diffusers_version": index.get("_diffusers_version"),
            },
        )

    def requirements(self, source: ModelSource, detection: Detection) -> Requirements:
        libraries = {library for library, _ in detection.details["components"].values()}
        base = [TORCH, Requirement("diffusers"), Requirement("accelerate")]
        if "transformers" in libraries:
            base.insert(2, Requirement("transformers"))
        return Requirements(
            base=tuple(base),
            architecture=unique(component_packages(source, detection)),
            optional=(Requirement("xformers", "optional, memory-efficient attention on CUDA"),),
        )


def components(index: dict[str, Any]) -> dict[str, list[str]]:
    """{component: [library, class]} for every component the pipeline names (nulls skipped)."""
    return {
        name: list(value)
        for name, value in index.items()
        if not name.startswith("_") and isinstance(value, list) and len(value) == 2 and value[0]
    }


def component_packages(source: ModelSource, detection: Detection) -> Iterator[Requirement]:
    """sentencepiece for T5-style tokenizers, quantization kernels named in component configs."""
    for name, (_, class_name) in detection.details["components"].items():
        if class_name.startswith(SENTENCEPIECE_TOKENIZERS):
            yield Requirement("sentencepiece", f"{name} tokenizer")
            yield Requirement("protobuf", f"{name} tokenizer")
        config = source.config(f"{name}/config.json") or {}
        yield from QUANTIZATION_PACKAGES.get(quantization_method(config) or "", ())
