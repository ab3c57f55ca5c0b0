"""Request bodies, validated by pydantic: the native API and the OpenAI-compatible one."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llm_runtime.values import ChatMessage, ReasoningParams, SamplingParams, TextRequest

MAX_STOP_SEQUENCES = 16
MAX_EMBEDDING_INPUTS = 2048
SEED_RANGE = {"ge": -(2**63), "le": 2**64 - 1}  # what torch.Generator.manual_seed takes
MIN_TOP_P = 1e-6  # smaller (with sampling) leaves no probability to sample from
MIN_REPETITION_PENALTY = 0.01  # smaller divides logits into infinities


def check_stops(value):
    """A stop string or list: at most MAX_STOP_SEQUENCES, none empty."""
    stops = [value] if isinstance(value, str) else (value or [])
    if len(stops) > MAX_STOP_SEQUENCES:
        raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
    if any(not s for s in stops):
        raise ValueError("stop sequences must not be empty")
    return value


class ContentPart(BaseModel):
    type: Literal["text"]
    text: str


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def to_message(self) -> ChatMessage:
        content = self.content or ""
        if isinstance(content, list):
            content = "".join(part.text for part in content)
        role = "system" if self.role == "developer" else self.role
        return ChatMessage(role=role, content=content)


class SamplingFields(BaseModel):
    """Decoding settings shared by every text endpoint."""

    model_config = ConfigDict(extra="ignore")

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, ge=MIN_TOP_P, le=1.0)
    top_k: int = Field(default=0, ge=0)
    repetition_penalty: float = Field(default=1.0, ge=MIN_REPETITION_PENALTY, le=10.0)
    seed: int | None = Field(default=None, **SEED_RANGE)
    stop: str | list[str] | None = None

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value):
        return check_stops(value)

    def sampling(self) -> SamplingParams:
        return SamplingParams(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            repetition_penalty=self.repetition_penalty,
            seed=self.seed,
        )

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())


class ReasoningFields(BaseModel):
    """The seed's reasoning controls, accepted by every text endpoint."""

    reasoning_mode: bool | None = None
    max_thinking_tokens: int | None = Field(default=None, ge=0)
    max_answer_tokens: int | None = Field(default=None, ge=1)
    show_thinking: bool = True

    def reasoning(self, enabled: bool | None = None) -> ReasoningParams:
        on = self.reasoning_mode if enabled is None else enabled
        return ReasoningParams(
            enabled=on,
            max_thinking_tokens=self.max_thinking_tokens,
            max_answer_tokens=self.max_answer_tokens,
            show_thinking=self.show_thinking,
        )


class GenerateBody(SamplingFields, ReasoningFields):
    """POST /generate and /generate/stream for text models: exactly one of `prompt` or
    `messages`. Unknown fields are refused (400 naming them)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = None
    messages: list[MessageIn] | None = None
    system_prompt: str | None = None
    stop_sequences: list[str] | None = None
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    stream: bool = False

    @field_validator("stop_sequences")
    @classmethod
    def _check_stop_sequences(cls, value):
        return check_stops(value)

    @model_validator(mode="after")
    def _one_input(self):
        if len(self.stops() + tuple(self.stop_sequences or ())) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop and stop_sequences together")
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("'prompt' must not be empty")
        if self.messages is not None and not self.messages:
            raise ValueError("'messages' must hold at least one message")
        return self

    def to_text_request(self) -> TextRequest:
        messages = None
        if self.messages is not None:
            system = [ChatMessage("system", self.system_prompt)] if self.system_prompt else []
            messages = tuple(system + [m.to_message() for m in self.messages])
        return TextRequest(
            messages=messages,
            prompt=None if messages else self.prompt,
            sampling=self.sampling(),
            stop=self.stops() + tuple(self.stop_sequences or ()),
            reasoning=self.reasoning(),
        )


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionBody(SamplingFields, ReasoningFields):
    """POST /v1/chat/completions (OpenAI), plus vLLM's top_k/repetition_penalty extensions."""

    model: str | None = None
    messages: list[MessageIn] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    chat_template_kwargs: dict | None = None

    def to_text_request(self) -> TextRequest:
        sampling = self.sampling()
        if self.max_completion_tokens is not None and self.max_tokens is None:
            sampling = SamplingParams(
                **{**sampling.__dict__, "max_tokens": self.max_completion_tokens}
            )
        toggle = (self.chat_template_kwargs or {}).get("enable_thinking")
        return TextRequest(
            messages=tuple(m.to_message() for m in self.messages),
            sampling=sampling,
            stop=self.stops(),
            reasoning=self.reasoning(enabled=toggle if toggle is not None else self.reasoning_mode),
        )


class CompletionBody(SamplingFields, ReasoningFields):
    """POST /v1/completions (OpenAI legacy completions)."""

    model: str | None = None
    prompt: str | list[str] = Field(min_length=1)
    max_tokens: int | None = Field(default=16, ge=1)
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    echo: bool = False

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, value):
        prompts = [value] if isinstance(value, str) else value
        if any(not p for p in prompts):
            raise ValueError("prompts must not be empty")
        return value

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def to_text_requests(self) -> list[TextRequest]:
        return [
            TextRequest(
                prompt=p, sampling=self.sampling(), stop=self.stops(), reasoning=self.reasoning()
            )
            for p in self.prompts()
        ]


EmbeddingInput = str | list[str] | list[int] | list[list[int]]


class EmbeddingsBody(BaseModel):
    """POST /v1/embeddings: texts or token-id arrays; float or base64 vectors."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    normalize: bool = True

    @field_validator("input")
    @classmethod
    def _check_input(cls, value):
        items = [value] if isinstance(value, str) else value
        if not items:
            raise ValueError("'input' must not be empty")
        if len(items) > MAX_EMBEDDING_INPUTS:
            raise ValueError(f"at most {MAX_EMBEDDING_INPUTS} inputs per request")
        if any(isinstance(i, (str, list)) and len(i) == 0 for i in items):
            raise ValueError("inputs must not be empty strings or empty token lists")
        return value

    def inputs(self) -> list[str] | list[list[int]]:
        if isinstance(self.input, str):
            return [self.input]
        if self.input and isinstance(self.input[0], int):
            return [list(self.input)]  # one token-id sequence
        return list(self.input)


class EmbedBody(BaseModel):
    """POST /generate for embedding models: `texts` (or `input`) and `normalize`."""

    model_config = ConfigDict(extra="ignore")

    texts: str | list[str] | None = None
    input: str | list[str] | None = None
    normalize: bool = True

    @model_validator(mode="after")
    def _has_texts(self):
        value = self.texts if self.texts is not None else self.input
        items = [value] if isinstance(value, str) else (value or [])
        if not items or any(not t for t in items):
            raise ValueError("give 'texts': a non-empty string or list of non-empty strings")
        if len(items) > MAX_EMBEDDING_INPUTS:
            raise ValueError(f"at most {MAX_EMBEDDING_INPUTS} texts per request")
        return self

    def items(self) -> list[str]:
        value = self.texts if self.texts is not None else self.input
        return [value] if isinstance(value, str) else list(value)
