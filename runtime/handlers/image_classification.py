"""Image classification: transformers classifiers and timm models (through TimmWrapper)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from llm_runtime.handlers.pipeline_base import ImageBody, PipelineHandler


class ClassifyBody(ImageBody):
    top_k: int = Field(default=5, ge=1, le=1000)


class ImageClassificationHandler(PipelineHandler):
    """`{"labels": [{"label", "score"}...]}` for an image, best first."""

    family = "image-classification"
    task = "image-classification"

    def details(self) -> dict[str, Any]:
        library = "timm" if "Timm" in (self.architecture or "") else "transformers"
        return {"library": library, "num_labels": len(self.labels())}

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request = ClassifyBody.model_validate(body)
        image = request.pil_image()
        found = await self.run(image, top_k=min(request.top_k, len(self.labels()) or 1))
        labels = [{"label": str(r["label"]), "score": float(r["score"])} for r in found]
        return {"labels": labels, "width": image.width, "height": image.height}
