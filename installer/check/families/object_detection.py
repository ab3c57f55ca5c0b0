"""object-detection: ``…ForObjectDetection`` models (DETR, RT-DETR, YOLOS …)."""

from __future__ import annotations

from llm_installer.check.families._vision import VisionHeadFamily
from llm_runtime.contract import OBJECT_DETECTION


class ObjectDetectionFamily(VisionHeadFamily):
    """DETR-like detectors; DETR's timm backbone adds timm to the requirements."""

    name = OBJECT_DETECTION
    task = "object-detection"
