"""Fallback: any other transformers pipeline task (text-classification, depth-estimation...).

/generate takes `inputs` (text, or an image/audio upload) and `parameters` passed to the
pipeline; /info lists the task and what it takes and returns.
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

# task -> (inputs, outputs) reported in /info
TASK_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text-classification": (("text",), ("labels",)),
    "token-classification": (("text",), ("entities",)),
    "question-answering": (("text",), ("answer",)),
    "audio-classification": (("audio",), ("labels",)),
    "depth-estimation": (("image",), ("image",)),
    "video-classification": (("video",), ("labels",)),
    "zero-shot-object-detection": (("image", "text"), ("boxes", "labels")),
    "mask-generation": (("image",), ("masks",)),
    "document-question-answering": (("image", "text"), ("answer",)),
    "table-question-answering": (("table", "text"), ("answer",)),
}


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
        self.task = str(profile.info.get("task") or profile.family)
        self.family = profile.family
        self.inputs, self.outputs = TASK_IO.get(self.task, (("text",), ("json",)))
        super().load(profile=profile, settings=settings)

    def details(self) -> dict[str, Any]:
        return {
            "fallback": "transformers pipeline",
            "request": "POST /generate {'inputs': text | 'image'/'audio' upload, 'parameters': {}}",
            "labels": self.labels()[:100],
        }

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request = TaskBody.model_validate(body)
        inputs = self._inputs(request)
        found = await self.run(inputs, **request.parameters)
        return {"task": self.task, "result": _jsonable(found)}

    def _inputs(self, request: TaskBody) -> Any:
        if request.image is not None:
            image = decode_image(request.image)
            if request.text is not None and self.task == "document-question-answering":
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
