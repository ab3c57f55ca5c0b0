"""Text generation: transformers causal LMs, dense and MoE, reasoning or not."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from llm_runtime.admission import HEAD_CHARS_PER_TOKEN
from llm_runtime.batching import BatchEngine
from llm_runtime.continuous import StepBatchEngine, supports_step_batching
from llm_runtime.contract import TEXT_GENERATION
from llm_runtime.decoding import RowState
from llm_runtime.errors import InvalidRequest, ModelLoadError
from llm_runtime.handlers.base import Handler, TextGeneration, TextStream
from llm_runtime.loading import (
    load_model,
    remote_code,
    resolve_placement,
)
from llm_runtime.profile import ModelProfile
from llm_runtime.reasoning import ReasoningTokens, detect_reasoning
from llm_runtime.schemas import GenerateBody
from llm_runtime.structured import GrammarFactory, JsonConstraint, output_schema
from llm_runtime.text_formats import native_result
from llm_runtime.tool_calls import (
    ToolCallStream,
    fallback_system_prompt,
    openai_tool,
    require_tool_rendering,
    template_messages,
    template_supports_tools,
)
from llm_runtime.values import (
    Capabilities,
    LoadSettings,
    ModelDescription,
    OutputSpec,
    TextRequest,
)

log = logging.getLogger("llm_runtime")

DEFAULT_MAX_TOKENS = 512
FALLBACK_CONTEXT = 2048


class TextGenerationHandler(Handler, TextGeneration):
    """Causal LMs through transformers `generate`, batched by a BatchEngine."""

    family = TEXT_GENERATION
    openai_features = frozenset({"tools", "response_format", "logprobs", "n"})

    def load(self, *, profile: ModelProfile, settings: LoadSettings) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # LLMs take bf16 on a CPU with bf16 instructions (as vLLM); state-space kernels keep fp32
        cpu_bf16 = profile.family == TEXT_GENERATION
        self.profile, self.placement = profile, resolve_placement(settings, cpu_bf16=cpu_bf16)
        self.tokenizer = AutoTokenizer.from_pretrained(profile.model_dir, **remote_code(settings))
        self.model, self.adapter = load_model(
            AutoModelForCausalLM, profile.model_dir, settings, self.placement
        )
        self.think = self._reasoning_tokens(profile)
        self.eos_ids = self._eos_ids()
        self.max_context = self._max_context()
        self.grammars = GrammarFactory(self.tokenizer, self._vocab_size())
        engine_class = self._engine_class(settings)
        prefix_cache = {"prefix_cache_bytes": settings.prefix_cache_mb * 2**20}
        self.engine = engine_class(
            model=self.model,
            pad_id=self._pad_id(),
            metrics=self.metrics,
            max_batch_size=settings.max_batch_size,
            max_queue=settings.max_queue,
            batch_window_s=settings.batch_window_ms / 1000,
            **(prefix_cache if engine_class is StepBatchEngine else {}),
        )

    def _engine_class(self, settings: LoadSettings) -> type[BatchEngine]:
        step_ok = supports_step_batching(self.model)
        if settings.batching == "step" and not step_ok:
            raise ModelLoadError(
                "--batching step needs a plain full-attention KV cache; use --batching generate."
            )
        use_step = settings.batching == "step" or (settings.batching == "auto" and step_ok)
        self.batching = "step" if use_step else "generate"
        log.info("Batching: %s", self.batching)
        return StepBatchEngine if use_step else BatchEngine

    def describe(self) -> ModelDescription:
        template = self._template()
        return ModelDescription(
            family=self.family,
            device=self.placement.device,
            dtype=self.placement.dtype_name,
            adapter=str(self.adapter) if self.adapter else None,
            capabilities=Capabilities(
                supports_reasoning=self.think is not None,
                supports_streaming=True,
                supports_system_prompt=self._accepts_system_prompt(),
                max_context_length=self.max_context,
            ),
            details={
                "architecture": (self.model.config.architectures or [None])[0],
                "is_moe": self.profile.is_moe,
                "batching": self.batching,
                "is_reasoning": self.think is not None,
                "chat_template": bool(template),
                "thinking_toggle": bool(self.think and self.think.template_toggle),
                "parameters": sum(p.numel() for p in self.model.parameters()),
            },
        )

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request = GenerateBody.model_validate(body).to_text_request()
        return native_result(await self.start(request=request).result(), request)

    def start(self, *, request: TextRequest) -> TextStream:
        return self.submit([self.prepare(request=request)])[0]

    def prepare(self, *, request: TextRequest) -> RowState:
        """The request's CPU work (chat template, tokenizer, limits); fine off the event loop."""
        thinking = self._thinking_enabled(request)
        constraint = self._constraint(request.output)
        prompt_ids = self._prompt_ids(request, thinking)
        sampling = dataclasses.replace(
            request.sampling, max_tokens=self._max_tokens(request, len(prompt_ids))
        )
        row = RowState(
            tokenizer=self.tokenizer,
            prompt_ids=prompt_ids,
            sampling=sampling,
            stop=request.stop,
            eos_ids=self.eos_ids,
            emit=lambda _: None,  # the engine connects the row to its stream
            think=self.think if thinking else None,
            banned_ids=frozenset({self.think.start_id})
            if self.think and not thinking
            else frozenset(),
            max_thinking_tokens=request.reasoning.max_thinking_tokens,
            max_answer_tokens=request.reasoning.max_answer_tokens,
            constraint=constraint,
            top_logprobs=request.logprobs,
            token_bytes=self.grammars.token_bytes,
        )
        row.output = request.output  # submit wraps tool-calling rows' streams
        return row

    def submit(self, rows: list[RowState]) -> list[TextStream]:
        """Queue every row or none (InvalidRequest, Overloaded): must run on the event loop."""
        streams = self.engine.submit_all(rows)
        return [
            ToolCallStream(stream, row.output) if row.output and row.output.calls_tools else stream
            for stream, row in zip(streams, rows, strict=True)
        ]

    def check_room(self, count: int) -> None:
        """Raise now if count more requests could not be queued (before any CPU work)."""
        self.engine.check_room(count)

    def _constraint(self, output: OutputSpec) -> JsonConstraint | None:
        schema = output_schema(output)
        return None if schema is None else self.grammars.constraint(schema)

    def count_tokens(self, *, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def close(self) -> None:
        if getattr(self, "engine", None) is not None:
            self.engine.close()

    def _thinking_enabled(self, request: TextRequest) -> bool:
        if self.think is None:
            return False
        enabled = request.reasoning.enabled
        return True if enabled is None else enabled

    def _prompt_ids(self, request: TextRequest, thinking: bool) -> list[int]:
        if request.messages is None:
            ids = self._encode(request.prompt or "", special=True)
        else:
            ids = self._encode(self._render_chat(request, thinking), special=False)
        if not ids:
            raise InvalidRequest("The prompt encodes to no tokens.")
        return ids

    def _encode(self, text: str, *, special: bool) -> list[int]:
        """Token ids of text; a text whose head alone fills the context is refused before
        the whole of it is tokenized."""
        head_chars = self.max_context * HEAD_CHARS_PER_TOKEN
        if len(text) > head_chars:
            head = self.tokenizer.encode(text[:head_chars], add_special_tokens=special)
            if len(head) >= self.max_context:
                raise InvalidRequest(
                    f"The prompt is longer than this model's context of {self.max_context} "
                    f"tokens (its first {head_chars} characters alone are {len(head)} tokens). "
                    "Shorten the prompt.",
                    code="context_length_exceeded",
                )
        return self.tokenizer.encode(text, add_special_tokens=special)

    def _render_chat(self, request: TextRequest, thinking: bool) -> str:
        output = request.output
        native = template_supports_tools(self._template())
        if output.calls_tools and not native:
            require_tool_rendering(self._accepts_system_prompt())
        messages = template_messages(request.messages or (), native)
        extra: dict[str, Any] = (
            {"enable_thinking": thinking} if self.think and self.think.template_toggle else {}
        )
        if output.calls_tools and native:
            extra["tools"] = [openai_tool(t) for t in output.tools]
        elif output.calls_tools:
            messages = fallback_system_prompt(messages, output.tools)
        if not self._template():
            # No chat template: a plain transcript the model can continue.
            lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
            return "\n".join(lines) + "\nAssistant:"
        try:
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True, **extra
            )
        except Exception as exc:  # jinja's TemplateError, or a template's raise_exception
            raise InvalidRequest(
                f"The model's chat template refused these messages: {exc}. Check the roles "
                "and their order (e.g. user/assistant alternating)."
            ) from None

    def _max_tokens(self, request: TextRequest, prompt_len: int) -> int:
        room = self.max_context - prompt_len
        wanted = request.sampling.max_tokens
        if room <= 0 or (wanted is not None and wanted > room):
            raise InvalidRequest(
                f"This model's context is {self.max_context} tokens; the prompt uses "
                f"{prompt_len} and max_tokens asks for {wanted or 1} more. Shorten the "
                "prompt or lower max_tokens.",
                code="context_length_exceeded",
            )
        return wanted if wanted is not None else min(DEFAULT_MAX_TOKENS, room)

    def _reasoning_tokens(self, profile: ModelProfile) -> ReasoningTokens | None:
        if profile.is_reasoning is False:
            return None
        return detect_reasoning(self.tokenizer)

    def _vocab_size(self) -> int:
        head = self.model.get_output_embeddings()
        return int(head.weight.shape[0]) if head is not None else len(self.tokenizer)

    def _eos_ids(self) -> frozenset[int]:
        ids = set()
        for source in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if source is not None:
                ids.update(source if isinstance(source, list) else [source])
        return frozenset(ids)

    def _pad_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id):
            if candidate is not None:
                return candidate
        return 0

    def _max_context(self) -> int:
        config = self.model.config
        value = getattr(config, "max_position_embeddings", None)
        if value is None and hasattr(config, "get_text_config"):
            value = getattr(config.get_text_config(), "max_position_embeddings", None)
        if value is None:
            limit = self.tokenizer.model_max_length
            value = limit if limit and limit < 1_000_000 else FALLBACK_CONTEXT
        return int(value)

    def _accepts_system_prompt(self) -> bool:
        """Whether the chat template renders a system message (some templates raise)."""
        if not self._template():
            return True
        probe = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
        try:
            rendered = self.tokenizer.apply_chat_template(probe, tokenize=False)
        except Exception:
            return False
        return "S" in rendered

    def _template(self) -> str:
        template = self.tokenizer.chat_template
        return template if isinstance(template, str) else ""
