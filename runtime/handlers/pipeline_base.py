"""Shared base of the families served through a transformers `pipeline` (vision, audio, tasks)."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from llm_runtime.handlers.base import Handler
from llm_runtime.handlers.media_base import ModelWorker
from llm_runtime.loading import remote_code, resolve_placement, translate_oom
from llm_runtime.media import Payload, decode_image
from llm_runtime.profile import ModelProfile
from llm_runtime.values import Capabilities, LoadSettings, ModelDescription

log = logging.getLogger("llm_runtime")


class ImageBody(BaseModel):
    """A /generate body holding one image: an upload, base64, a data URI (`image` or `image_url`)."""

    model_config = ConfigDict(extra="ignore")

    image: Payload | None = None
    image_url: Payload | None = None

    @model_validator(mode="after")
    def _has_image(self):
        if not (self.image or self.image_url):
            raise ValueError("give 'image': a file upload, base64 or a data: URI")
        return self

    def pil_image(self):
        return decode_image(self.image or self.image_url or "", "image")


class PipelineHandler(Handler):
    """Loads `pipeline(task, model=DIR)` and runs it on one worker thread."""

    task: str
    inputs: tuple[str, ...] = ("image",)
    outputs: tuple[str, ...] = ("labels",)

    def load(self, *, profile: ModelProfile, settings: LoadSettings) -> None:
        self.profile, self.placement = profile, resolve_placement(settings)
        self.code = remote_code(settings)
        self.worker = ModelWorker(max_queue=settings.max_queue)
        with translate_oom("loading"):
            self.pipe = self._make_pipeline(profile)
        log.info("%s pipeline ready (%s)", self.task, self.architecture)

    def _make_pipeline(self, profile: ModelProfile):
        from transformers import pipeline

        return pipeline(
            self.task,
            model=str(profile.model_dir),
            device=self.placement.device,
            dtype=self.placement.dtype,
            **self.code,
            **self.pipeline_kwargs(profile),
        )

    def pipeline_kwargs(self, profile: ModelProfile) -> dict[str, Any]:
        return {}

    @property
    def architecture(self) -> str | None:
        config = getattr(self.pipe.model, "config", None)
        return (getattr(config, "architectures", None) or [None])[0]

    def describe(self) -> ModelDescription:
        return ModelDescription(
            family=self.family,
            device=self.placement.device,
            dtype=self.placement.dtype_name,
            capabilities=Capabilities(inputs=self.inputs, outputs=self.outputs),
            details={"task": self.task, "architecture": self.architecture, **self.details()},
        )

    def details(self) -> dict[str, Any]:
        return {}

    def labels(self) -> list[str]:
        id2label = getattr(getattr(self.pipe.model, "config", None), "id2label", None) or {}
        return [id2label[k] for k in sorted(id2label)]

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        return await self.worker.run(self.task, self.pipe, *args, **kwargs)
