"""object-detection: ``…ForObjectDetection`` models (DETR, RT-DETR, YOLOS …)."""

from __future__ import annotations

from llm_installer.families._vision import VisionHeadFamily


class ObjectDetectionFamily(VisionHeadFamily):
    """DETR-like detectors; DETR's timm backbone adds timm to the requirements."""

    name = "object-detection"
    task = "object-detection"
