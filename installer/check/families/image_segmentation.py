"""image-segmentation: semantic, instance, universal and mask-generation models (SegFormer, SAM …)."""

from __future__ import annotations

from llm_installer.check.families._common import Config, architecture, is_bare_model, model_type
from llm_installer.check.families._table import MASK_GENERATION_TYPES
from llm_installer.check.families._vision import VisionHeadFamily
from llm_installer.check.source import ModelSource
from llm_runtime.contract import IMAGE_SEGMENTATION


class ImageSegmentationFamily(VisionHeadFamily):
    """``…ForSemanticSegmentation``, ``…ForUniversalSegmentation``, or a SAM-like mask generator."""

    name = IMAGE_SEGMENTATION
    task = "image-segmentation"

    def matches(self, source: ModelSource, config: Config) -> bool:
        if is_bare_model(architecture(config)) and model_type(config) in MASK_GENERATION_TYPES:
            return True
        return super().matches(source, config)
