"""zero-shot-image-classification: contrastive image-text models (CLIP, SigLIP, ALIGN …)."""

from __future__ import annotations

from llm_installer.check.families._common import (
    PILLOW,
    Config,
    TransformersFamily,
    architecture,
    head_family,
    is_bare_model,
    model_type,
    sub_config,
)
from llm_installer.check.families._table import ZERO_SHOT_IMAGE_TYPES
from llm_installer.check.source import ModelSource
from llm_runtime.contract import ZERO_SHOT_IMAGE


class ZeroShotImageFamily(TransformersFamily):
    """A bare dual-encoder class (``CLIPModel``) with text_config + vision_config, or a known type."""

    name = ZERO_SHOT_IMAGE
    task = "zero-shot-image-classification"
    packages = (PILLOW,)

    def matches(self, source: ModelSource, config: Config) -> bool:
        arch = architecture(config)
        family = head_family(arch)
        if family is not None:
            return family == self.name
        if not is_bare_model(arch):
            return False
        dual = sub_config(config, "text_config") and sub_config(config, "vision_config")
        return bool(dual) or model_type(config) in ZERO_SHOT_IMAGE_TYPES

    def details(self, source: ModelSource, config: Config) -> dict:
        found = {"projection_dim": config.get("projection_dim")}
        return {key: value for key, value in found.items() if value}
