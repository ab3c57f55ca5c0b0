"""Image classification: transformers classifiers and timm models (through TimmWrapper)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from llm_runtime.contract import IMAGE_CLASSIFICATION
from llm_runtime.handlers.pipeline_base import ImageBody, PipelineHandler
from llm_runtime.profile import ModelProfile

TIMM_MODEL_TYPE = "timm_wrapper"  # what transformers makes of a timm config.json


class ClassifyBody(ImageBody):
    top_k: int = Field(default=5, ge=1, le=1000)


class ImageClassificationHandler(PipelineHandler):
    """`{"labels": [{"label", "score"}...]}` for an image, best first."""

    family = IMAGE_CLASSIFICATION
    task = "image-classification"

    def _make_pipeline(self, profile: ModelProfile):
        from transformers import AutoConfig, pipeline

        config = AutoConfig.from_pretrained(profile.model_dir, **self.code)
        if config.model_type != TIMM_MODEL_TYPE:
            return super()._make_pipeline(profile)
        model = load_timm_classifier(profile.model_dir, config, dtype=self.placement.dtype)
        return pipeline(
            self.task,
            model=model,
            image_processor=str(profile.model_dir),
            device=self.placement.device,
        )

    @property
    def is_timm(self) -> bool:
        return getattr(self.pipe.model.config, "model_type", None) == TIMM_MODEL_TYPE

    @property
    def architecture(self) -> str | None:
        return self.pipe.model.config.architecture if self.is_timm else super().architecture

    def details(self) -> dict[str, Any]:
        library = "timm" if self.is_timm else "transformers"
        return {"library": library, "num_labels": len(self.labels())}

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request = ClassifyBody.model_validate(body)
        image = request.pil_image()
        found = await self.run(image, top_k=min(request.top_k, len(self.labels()) or 1))
        labels = [{"label": str(r["label"]), "score": float(r["score"])} for r in found]
        return {"labels": labels, "width": image.width, "height": image.height}


def load_timm_classifier(model_dir: Path, config, *, dtype):
    """TimmWrapperForImageClassification of a timm folder (config.json + model.safetensors).

    timm >= 1.0.30 records `num_classes` in config.json's `model_args`, and the wrapper passes
    `num_classes` itself: timm.create_model would get it twice, so it is dropped from model_args.
    """
    from transformers import AutoModelForImageClassification

    args = {k: v for k, v in (config.model_args or {}).items() if k != "num_classes"}
    config.model_args = args or None
    return AutoModelForImageClassification.from_pretrained(model_dir, config=config, dtype=dtype)
