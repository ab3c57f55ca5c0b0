"""Fallback: any other task in transformers' pipeline table (fill-mask, depth-estimation...).

/generate takes `inputs` (text, or an image/audio upload) and `parameters` passed to the
pipeline; /info lists the task, what it takes and returns, and the parameters it accepts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from llm_runtime.errors import InvalidRequest
from llm_runtime.handlers.pipeline_base import PipelineHandler
from llm_runtime.media import decode_audio, decode_image, image_to_base64
from llm_runtime.profile import ModelProfile
from llm_runtime.values import LoadSettings

# What a task's pipeline takes, from the "type" transformers' task table gives it.
TYPE_INPUTS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "image": ("image",),
    "audio": ("audio",),
    "video": ("video",),
    "multimodal": ("image", "text"),
}
# task -> (inputs, outputs) for /info where the type alone does not say it.
TASK_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "token-classification": (("text",), ("entities",)),
    "question-answering": (("text",), ("answer",)),
    "fill-mask": (("text",), ("tokens",)),
    "depth-estimation": (("image",), ("image",)),
    "image-to-image": (("image",), ("image",)),
    "image-to-text": (("image",), ("text",)),
    "zero-shot-object-detection": (("image", "text"), ("boxes", "labels")),
    "mask-generation": (("image",), ("masks",)),
    "keypoint-matching": (("image",), ("keypoints",)),
    "visual-question-answering": (("image", "text"), ("answer",)),
    "document-question-answering": (("image", "text"), ("answer",)),
    "table-question-answering": (("table", "text"), ("answer",)),
    "any-to-any": (("text", "image", "audio"), ("text",)),
}


def task_io(task: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(inputs, outputs) of a pipeline task for /info."""
    if task in TASK_IO:
        return TASK_IO[task]
    from transformers.pipelines import SUPPORTED_TASKS

    kind = SUPPORTED_TASKS.get(task, {}).get("type", "text")
    outputs = ("labels",) if task.endswith("classification") else ("json",)
    return TYPE_INPUTS.get(kind, ("text",)), outputs


class TaskBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inputs: Any = None
    text: str | None = None
    image: str | bytes | None = None
    audio: str | bytes | None = None
    parameters: dict[str, Any] = {}


class PipelineTaskHandler(PipelineHandler):
    """`pipeline(task)` for a task with no family of its own."""

    family = "pipeline"

    def load(self, *, profile: ModelProfile, settings: LoadSettings) -> None:
        self.task = str(profile.info.task or profile.family)
        self.family = profile.family
        self.inputs, self.outputs = task_io(self.task)
        super().load(profile=profile, settings=settings)

    def details(self) -> dict[str, Any]:
        return {
            "fallback": "transformers pipeline",
            "pipeline": type(self.pipe).__name__,
            "request": "POST /generate {'inputs': text | 'image'/'audio' upload, 'parameters': {}}",
            "parameters": self.parameters(),
            "labels": self.labels()[:100],
        }

    def parameters(self) -> list[str]:
        """The names `parameters` may hold: what the pipeline's own argument parser takes."""
        import inspect

        signature = inspect.signature(self.pipe._sanitize_parameters)
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [name for name, p in signature.parameters.items() if p.kind in kinds]

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request = TaskBody.model_validate(body)
        inputs = self._inputs(request)
        from transformers.pipelines import PipelineException

        try:
            found = await self.run(inputs, **request.parameters)
        except (PipelineException, ValueError, TypeError) as exc:  # how pipelines refuse input
            raise InvalidRequest(
                f"The {self.task} pipeline refused the request: {exc}. Its parameters: "
                f"{', '.join(self.parameters()) or 'none'}."
            ) from exc
        return {"task": self.task, "result": _jsonable(found)}

    def _inputs(self, request: TaskBody) -> Any:
        if request.image is not None:
            image = decode_image(request.image)
            if request.text is not None and self.task.endswith("question-answering"):
                return {"image": image, "question": request.text}
            return image
        if request.audio is not None:
            rate = int(self.pipe.feature_extractor.sampling_rate)
            return {"raw": decode_audio(request.audio, rate), "sampling_rate": rate}
        value = request.inputs if request.inputs is not None else request.text
        if value is None:
            raise InvalidRequest("give 'inputs' (or 'text', 'image', 'audio') for this task.")
        return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "save") and hasattr(value, "mode"):  # a PIL image
        return image_to_base64(value)
    if hasattr(value, "tolist"):  # a tensor
        return value.tolist()
    return value
