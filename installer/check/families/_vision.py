"""What the transformers vision-head families share: the head marker match and backbone packages."""

from __future__ import annotations

from collections.abc import Iterator

from llm_installer.check.families._common import (
    PILLOW,
    Config,
    TransformersFamily,
    architecture,
    auto_map_family,
    head_family,
    root_config,
    transformers_requirements,
)
from llm_installer.check.families.base import Detection, Requirement, Requirements
from llm_installer.check.source import ModelSource

TIMM = Requirement("timm", "backbone weights and layers")
TIMM_MODEL_TYPES = ("timm_wrapper", "timm_backbone")


class VisionHeadFamily(TransformersFamily):
    """A transformers vision model whose class name carries this family's head marker."""

    packages = (PILLOW,)

    def matches(self, source: ModelSource, config: Config) -> bool:
        family = head_family(architecture(config))
        return family == self.name or (family is None and auto_map_family(config) == self.name)

    def details(self, source: ModelSource, config: Config) -> dict:
        labels = config.get("id2label")
        return {"num_labels": len(labels)} if isinstance(labels, dict) else {}

    def requirements(self, source: ModelSource, detection: Detection) -> Requirements:
        extra = (*self.packages, *backbone_packages(source))
        return transformers_requirements(source, detection, extra=extra, optional=self.optional)


def backbone_packages(source: ModelSource) -> Iterator[Requirement]:
    """timm when the model or its backbone comes from timm (DETR's ResNet, TimmWrapper …)."""
    config = root_config(source) or {}
    if config.get("use_timm_backbone") or config.get("model_type") in TIMM_MODEL_TYPES:
        yield TIMM
