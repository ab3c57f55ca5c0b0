"""Embeddings: sentence-transformers folders (modules.json) and plain encoders (mean pooling)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import torch

from llm_runtime.contract import EMBEDDING
from llm_runtime.handlers.base import Embedding, Handler
from llm_runtime.loading import remote_code, resolve_placement, translate_oom
from llm_runtime.profile import ModelProfile
from llm_runtime.schemas import EmbedBody
from llm_runtime.values import Capabilities, EmbeddingResult, LoadSettings, ModelDescription

log = logging.getLogger("llm_runtime")

BATCH_SIZE = 64
FALLBACK_MAX_LENGTH = 512


class EmbeddingHandler(Handler, Embedding):
    """One vector per input; inputs are encoded in batches of BATCH_SIZE on one thread."""

    family = EMBEDDING

    def load(self, *, profile: ModelProfile, settings: LoadSettings) -> None:
        self.profile, self.placement = profile, resolve_placement(settings)
        self.code = remote_code(settings)
        self._lock = threading.Lock()
        with translate_oom("loading"):
            if (profile.model_dir / "modules.json").is_file():
                self._load_sentence_transformer(profile)
            else:
                self._load_encoder(profile)
        log.info("Embedding model ready: %d dimensions", self.dimensions)

    def describe(self) -> ModelDescription:
        return ModelDescription(
            family=self.family,
            device=self.placement.device,
            dtype=self.placement.dtype_name,
            capabilities=Capabilities(
                max_context_length=self.max_length, inputs=("text",), outputs=("embedding",)
            ),
            details={
                "dimensions": self.dimensions,
                "library": "sentence-transformers" if self.st else "transformers",
                "pooling": "sentence-transformers modules" if self.st else "mean",
            },
        )

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request = EmbedBody.model_validate(body)
        result = await self.embed(inputs=request.items(), normalize=request.normalize)
        return {
            "embeddings": result.vectors,
            "dimensions": self.dimensions,
            "usage": {"prompt_tokens": result.prompt_tokens},
        }

    async def embed(
        self, *, inputs: list[str] | list[list[int]], normalize: bool
    ) -> EmbeddingResult:
        return await asyncio.to_thread(self._embed, inputs, normalize)

    def _embed(self, inputs: list, normalize: bool) -> EmbeddingResult:
        vectors, tokens = [], 0
        with self._lock, torch.inference_mode(), translate_oom("embedding"):
            for start in range(0, len(inputs), BATCH_SIZE):
                features = self._features(inputs[start : start + BATCH_SIZE])
                tokens += int(features["attention_mask"].sum())
                pooled = self._forward(features).float()
                if normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                vectors.extend(pooled.cpu().tolist())
        self.metrics.inc("embedding_inputs_total", len(inputs), "Inputs embedded")
        self.metrics.inc("prompt_tokens_total", tokens, "Prefill tokens processed")
        return EmbeddingResult(vectors=vectors, prompt_tokens=tokens)

    def _load_sentence_transformer(self, profile: ModelProfile) -> None:
        from sentence_transformers import SentenceTransformer

        self.st = SentenceTransformer(
            str(profile.model_dir), device=self.placement.device, **self.code
        )
        self.st.eval()
        self.tokenizer = self.st.tokenizer
        self.max_length = int(self.st.max_seq_length or FALLBACK_MAX_LENGTH)
        self.dimensions = int(self.st.get_sentence_embedding_dimension())

    def _load_encoder(self, profile: ModelProfile) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.st = None
        self.tokenizer = AutoTokenizer.from_pretrained(profile.model_dir, **self.code)
        self.model = AutoModel.from_pretrained(
            profile.model_dir, dtype=self.placement.dtype, **self.code
        )
        self.model = self.model.to(self.placement.device).eval()
        config = self.model.config
        self.max_length = int(getattr(config, "max_position_embeddings", FALLBACK_MAX_LENGTH))
        self.dimensions = int(config.hidden_size)

    def _features(self, batch: list) -> dict[str, torch.Tensor]:
        if isinstance(batch[0], str):
            features = self.tokenizer(
                batch,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        else:
            features = self._pad_token_ids(batch)
        return {k: v.to(self.placement.device) for k, v in features.items()}

    def _pad_token_ids(self, batch: list[list[int]]) -> dict[str, torch.Tensor]:
        rows = [ids[: self.max_length] for ids in batch]
        width = max(map(len, rows))
        pad = self.tokenizer.pad_token_id or 0
        ids = [row + [pad] * (width - len(row)) for row in rows]
        mask = [[1] * len(row) + [0] * (width - len(row)) for row in rows]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}

    def _forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.st is not None:
            return self.st(dict(features))["sentence_embedding"]
        hidden = self.model(**features).last_hidden_state
        mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
