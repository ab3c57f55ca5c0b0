"""Text-to-text generation: encoder-decoder models (T5, BART, mT5, Pegasus...), streamed."""

from __future__ import annotations

import logging
from typing import Any

from llm_runtime.admission import HEAD_CHARS_PER_TOKEN
from llm_runtime.contract import TEXT2TEXT
from llm_runtime.errors import InvalidRequest
from llm_runtime.handlers.base import Handler, TextGeneration, TextStream
from llm_runtime.loading import load_model, remote_code, resolve_placement
from llm_runtime.profile import ModelProfile
from llm_runtime.schemas import GenerateBody
from llm_runtime.text_formats import native_result
from llm_runtime.threaded_stream import GenerationSlot, generate_stream
from llm_runtime.values import Capabilities, LoadSettings, ModelDescription, TextRequest

log = logging.getLogger("llm_runtime")

DEFAULT_MAX_TOKENS = 256
FALLBACK_INPUT_LENGTH = 512


class Text2TextHandler(Handler, TextGeneration):
    """AutoModelForSeq2SeqLM `generate`, one request at a time, streamed token by token."""

    family = TEXT2TEXT

    def load(self, *, profile: ModelProfile, settings: LoadSettings) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.profile, self.placement = profile, resolve_placement(settings)
        self.tokenizer = AutoTokenizer.from_pretrained(profile.model_dir, **remote_code(settings))
        self.model, _ = load_model(
            AutoModelForSeq2SeqLM, profile.model_dir, settings, self.placement, adapter=False
        )
        self.slot = GenerationSlot(settings.max_queue)
        self.max_input = self._max_input_length()

    def describe(self) -> ModelDescription:
        return ModelDescription(
            family=self.family,
            device=self.placement.device,
            dtype=self.placement.dtype_name,
            capabilities=Capabilities(
                supports_streaming=True,
                supports_system_prompt=True,
                max_context_length=self.max_input,
            ),
            details={
                "architecture": (self.model.config.architectures or [None])[0],
                "encoder_decoder": True,
                "chat": "messages are joined into one input text",
            },
        )

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request = GenerateBody.model_validate(body).to_text_request()
        return native_result(await self.start(request=request).result(), request)

    def start(self, *, request: TextRequest) -> TextStream:
        # Truncated to max_input tokens anyway: never tokenize megabytes on the event loop.
        text = self._input_text(request)[: self.max_input * HEAD_CHARS_PER_TOKEN]
        inputs = self.tokenizer(
            text, return_tensors="pt", truncation=True, max_length=self.max_input
        ).to(self.placement.device)
        return generate_stream(
            model=self.model,
            tokenizer=self.tokenizer,
            slot=self.slot,
            inputs=inputs,
            request=request,
            default_max_tokens=DEFAULT_MAX_TOKENS,
        )

    def count_tokens(self, *, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _input_text(self, request: TextRequest) -> str:
        if request.messages is None:
            return request.prompt or ""
        parts = [m.content for m in request.messages if m.role in ("system", "user")]
        text = "\n".join(p for p in parts if p)
        if not text.strip():
            raise InvalidRequest("The messages hold no system or user text to transform.")
        return text

    def _max_input_length(self) -> int:
        config = self.model.config
        for name in ("max_position_embeddings", "n_positions"):
            value = getattr(config, name, None)
            if value:
                return int(value)
        limit = self.tokenizer.model_max_length
        return int(limit) if limit and limit < 1_000_000 else FALLBACK_INPUT_LENGTH
