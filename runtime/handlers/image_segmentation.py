"""Image segmentation (semantic, instance, panoptic): one PNG mask per segment."""

from __future__ import annotations

from typing import Any

from llm_runtime.contract import IMAGE_SEGMENTATION
from llm_runtime.handlers.pipeline_base import ImageBody, PipelineHandler
from llm_runtime.media import image_to_base64


class ImageSegmentationHandler(PipelineHandler):
    """`{"segments": [{"label", "score", "mask": base64 PNG (L, image size)}]}`."""

    family = IMAGE_SEGMENTATION
    task = "image-segmentation"
    outputs = ("masks", "labels")

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        image = ImageBody.model_validate(body).pil_image()
        found = await self.run(image)
        segments = [
            {
                "label": str(r["label"]),
                "score": None if r.get("score") is None else float(r["score"]),
                "mask": image_to_base64(r["mask"]),
            }
            for r in found
        ]
        return {"segments": segments, "width": image.width, "height": image.height}
