"""Object detection (DETR, YOLOS, RT-DETR...): boxes in image pixels, labels, scores."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from llm_runtime.contract import OBJECT_DETECTION
from llm_runtime.handlers.pipeline_base import ImageBody, PipelineHandler


class DetectBody(ImageBody):
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)


class ObjectDetectionHandler(PipelineHandler):
    """`{"objects": [{"label", "score", "box": {xmin, ymin, xmax, ymax}}]}`, best first."""

    family = OBJECT_DETECTION
    task = "object-detection"
    outputs = ("boxes", "labels")

    def details(self) -> dict[str, Any]:
        return {"num_labels": len(self.labels())}

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request = DetectBody.model_validate(body)
        image = request.pil_image()
        found = await self.run(image, threshold=request.threshold)
        objects = [
            {"label": str(r["label"]), "score": float(r["score"]), "box": _clamp(r["box"], image)}
            for r in sorted(found, key=lambda r: -r["score"])
        ]
        return {"objects": objects, "width": image.width, "height": image.height}


def _clamp(box: dict[str, Any], image) -> dict[str, int]:
    limits = {"xmin": image.width, "xmax": image.width, "ymin": image.height, "ymax": image.height}
    return {k: int(min(max(0, round(float(box[k]))), limit)) for k, limit in limits.items()}
