"""Zero-shot image classification (CLIP, SigLIP...): scores for candidate labels."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from llm_runtime.contract import ZERO_SHOT_IMAGE
from llm_runtime.handlers.pipeline_base import ImageBody, PipelineHandler


class ZeroShotBody(ImageBody):
    candidate_labels: list[str]
    hypothesis_template: str = "This is a photo of {}."

    @field_validator("candidate_labels", mode="before")
    @classmethod
    def _split(cls, value):
        if isinstance(value, str):  # a form field: "cat, dog, bird"
            value = value.split(",")
        if isinstance(value, list):  # "cat, dog," has a trailing comma, not an empty label
            value = [str(v).strip() for v in value if str(v).strip()]
        if not value:
            raise ValueError("give at least one non-empty candidate label, e.g. 'a cat, a dog'")
        return value


class ZeroShotImageClassificationHandler(PipelineHandler):
    """`{"labels": [{"label", "score"}]}` over the request's candidate_labels, best first."""

    family = ZERO_SHOT_IMAGE
    task = "zero-shot-image-classification"
    inputs = ("image", "text")

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request = ZeroShotBody.model_validate(body)
        image = request.pil_image()
        found = await self.run(
            image,
            candidate_labels=request.candidate_labels,
            hypothesis_template=request.hypothesis_template,
        )
        labels = [{"label": str(r["label"]), "score": float(r["score"])} for r in found]
        return {"labels": labels, "width": image.width, "height": image.height}
