"""image-classification: transformers ``…ForImageClassification`` models and timm checkpoints."""

from __future__ import annotations

from typing import Any

from llm_installer.check.families._common import TORCH, root_config, tokenizer_packages
from llm_installer.check.families._vision import VisionHeadFamily
from llm_installer.check.families.base import Detection, Family, Requirement, Requirements
from llm_installer.check.source import ModelSource
from llm_runtime.contract import IMAGE_CLASSIFICATION

TIMM_PRETRAINED_KEYS = ("pretrained_cfg", "num_classes")


class ImageClassificationFamily(VisionHeadFamily):
    """``ViTForImageClassification``, ``ResNetForImageClassification`` …"""

    name = IMAGE_CLASSIFICATION
    task = "image-classification"


class TimmImageClassificationFamily(Family):
    """A timm checkpoint: config.json with ``architecture`` and ``pretrained_cfg``, no transformers keys."""

    name = IMAGE_CLASSIFICATION

    def detect(self, source: ModelSource) -> Detection | None:
        config = root_config(source)
        if config is None or not is_timm_config(config):
            return None
        return Detection(
            family=self.name,
            library="timm",
            task="image-classification",
            architecture=config["architecture"],
            capabilities=("Image Classification",),
            details=timm_details(config),
        )

    def requirements(self, source: ModelSource, detection: Detection) -> Requirements:
        return Requirements(
            base=(TORCH, Requirement("timm")),
            architecture=(Requirement("pillow", "image input"), *tokenizer_packages(source)),
            optional=(Requirement("safetensors", "optional, faster weight loading"),),
        )


def is_timm_config(config: dict[str, Any]) -> bool:
    has_timm_keys = any(key in config for key in TIMM_PRETRAINED_KEYS)
    return (
        isinstance(config.get("architecture"), str)
        and has_timm_keys
        and "architectures" not in config
    )


def timm_details(config: dict[str, Any]) -> dict[str, Any]:
    pretrained = cfg if isinstance(cfg := config.get("pretrained_cfg"), dict) else {}
    found = {
        "num_classes": config.get("num_classes", pretrained.get("num_classes")),
        "input_size": pretrained.get("input_size"),
        "label_names": len(config["label_names"])
        if isinstance(config.get("label_names"), list)
        else None,
    }
    return {key: value for key, value in found.items() if value is not None}
