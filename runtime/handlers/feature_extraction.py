"""Feature extraction: raw encoder features as vectors, from text (mean pooling) or images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_runtime.contract import FEATURE_EXTRACTION
from llm_runtime.errors import InvalidRequest
from llm_runtime.handlers.embeddings import EmbeddingHandler
from llm_runtime.handlers.media_base import ModelWorker
from llm_runtime.handlers.pipeline_base import ImageBody
from llm_runtime.loading import remote_code, resolve_placement, translate_oom
from llm_runtime.profile import ModelProfile
from llm_runtime.values import Capabilities, EmbeddingResult, LoadSettings, ModelDescription

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model")


class FeatureExtractionHandler(EmbeddingHandler):
    """Text encoders reuse the embedding handler; image encoders use image-feature-extraction."""

    family = FEATURE_EXTRACTION

    def load(self, *, profile: ModelProfile, settings: LoadSettings) -> None:
        self.image_pipe: Any = None
        if _has_tokenizer(profile.model_dir):
            super().load(profile=profile, settings=settings)
            return
        from transformers import pipeline

        self.profile, self.placement = profile, resolve_placement(settings)
        self.worker = ModelWorker(max_queue=settings.max_queue)
        with translate_oom("loading"):
            self.image_pipe = pipeline(
                "image-feature-extraction",
                model=str(profile.model_dir),
                device=self.placement.device,
                dtype=self.placement.dtype,
                **remote_code(settings),
            )
        self.dimensions = int(self.image_pipe.model.config.hidden_size)

    def describe(self) -> ModelDescription:
        if self.image_pipe is None:
            description = super().describe()
            return ModelDescription(**{**description.__dict__, "family": self.family})
        return ModelDescription(
            family=self.family,
            device=self.placement.device,
            dtype=self.placement.dtype_name,
            capabilities=Capabilities(inputs=("image",), outputs=("embedding",)),
            details={"dimensions": self.dimensions, "pooling": "pooler output or CLS"},
        )

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        if self.image_pipe is None:
            return await super().generate(body=body)
        image = ImageBody.model_validate(body).pil_image()
        vector = await self.worker.run("extracting", self._image_vector, image)
        return {"embeddings": [vector], "dimensions": len(vector)}

    async def embed(
        self, *, inputs: list[str] | list[list[int]], normalize: bool
    ) -> EmbeddingResult:
        if self.image_pipe is not None:
            raise InvalidRequest("This is an image encoder: POST /generate with an 'image'.")
        return await super().embed(inputs=inputs, normalize=normalize)

    def _image_vector(self, image) -> list[float]:
        import numpy as np

        features = np.asarray(self.image_pipe(image, pool=True), dtype=np.float32)
        return features.reshape(-1).tolist()


def _has_tokenizer(model_dir: Path) -> bool:
    return any((model_dir / name).is_file() for name in TOKENIZER_FILES)
