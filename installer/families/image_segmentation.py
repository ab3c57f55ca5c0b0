"""image-segmentation: semantic, instance, universal and mask-generation models (SegFormer, Mask2Former, SAM)."""

from __future__ import annotations

from llm_installer.families._vision import VisionHeadFamily


class ImageSegmentationFamily(VisionHeadFamily):
    """``…ForSemanticSegmentation``, ``…ForUniversalSegmentation``, ``…ForMaskGeneration`` …"""

    name = "image-segmentation"
    task = "image-segmentation"
