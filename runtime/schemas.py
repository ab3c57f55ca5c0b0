"""Request bodies, validated by pydantic: the native API and the OpenAI-compatible one."""

from __future__ import annotations

import json
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llm_runtime.values import (
    ChatMessage,
    OutputSpec,
    ReasoningParams,
    SamplingParams,
    TextRequest,
    ToolCall,
    ToolSpec,
)

MAX_STOP_SEQUENCES = 16
MAX_EMBEDDING_INPUTS = 2048
MAX_TOP_LOGPROBS = 20  # OpenAI's and vLLM's limit
MAX_CHOICES = 16
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"  # OpenAI's rule for function and schema names
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1  # what torch.Generator.manual_seed takes
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


class FunctionCallIn(BaseModel):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(BaseModel):
    """An earlier assistant turn's call, as the client sends it back in the history."""

    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCallIn

    def to_call(self) -> ToolCall:
        arguments = self.function.arguments
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, separators=(",", ":"))
        return ToolCall(id=self.id, name=self.function.name, arguments=arguments)


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def to_message(self) -> ChatMessage:
        content = self.content or ""
        if isinstance(content, list):
            content = "".join(part.text for part in content)
        role = "system" if self.role == "developer" else self.role
        return ChatMessage(
            role=role,
            content=content,
            tool_calls=tuple(c.to_call() for c in self.tool_calls or ()),
            tool_call_id=self.tool_call_id,
            name=self.name,
        )


class FunctionIn(BaseModel):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolIn(BaseModel):
    type: Literal["function"]
    function: FunctionIn

    def to_spec(self) -> ToolSpec:
        f = self.function
        return ToolSpec(name=f.name, description=f.description, parameters=f.parameters)


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaIn | None = None

    @model_validator(mode="after")
    def _schema_given(self):
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type 'json_schema' needs a 'json_schema' object: {name, schema}")
        return self


class StructuredFields(BaseModel):
    """Engine-neutral output controls: response_format (both endpoints) and n."""

    response_format: ResponseFormat | None = None
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)

    def _format(self) -> dict[str, Any]:
        fmt = self.response_format
        if fmt is None:
            return {}
        schema = fmt.json_schema.json_schema if fmt.json_schema else None
        return {"response_format": fmt.type, "json_schema": schema}


class SamplingFields(BaseModel):
    """Decoding settings shared by every text endpoint."""

    model_config = ConfigDict(extra="ignore")

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, ge=MIN_TOP_P, le=1.0)
    top_k: int = Field(default=0, ge=0)
    repetition_penalty: float = Field(default=1.0, ge=MIN_REPETITION_PENALTY, le=10.0)
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX)
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


class ChatCompletionBody(SamplingFields, ReasoningFields, StructuredFields):
    """POST /v1/chat/completions (OpenAI), plus vLLM's top_k/repetition_penalty extensions."""

    model: str | None = None
    messages: list[MessageIn] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    chat_template_kwargs: dict | None = None
    tools: list[ToolIn] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)

    @model_validator(mode="after")
    def _consistent(self):
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        names = [t.function.name for t in self.tools or ()]
        if len(set(names)) < len(names):
            raise ValueError("tools: function names must be unique")
        choice = self.tool_choice
        if choice in ("required",) or isinstance(choice, NamedToolChoice):
            if not names:
                raise ValueError("tool_choice 'required' or a named function needs 'tools'")
            if self.response_format is not None and self.response_format.type != "text":
                raise ValueError(
                    "tool_choice 'required' or a named function cannot be combined with a JSON "
                    "response_format; drop one of them"
                )
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(
                f"tool_choice names '{choice.function.name}', which is not in tools "
                f"({', '.join(names)})"
            )
        return self

    def output_spec(self) -> OutputSpec:
        choice: Literal["none", "auto", "required", "function"] = "auto"
        name = None
        if isinstance(self.tool_choice, NamedToolChoice):
            choice, name = "function", self.tool_choice.function.name
        elif self.tool_choice:
            choice = self.tool_choice
        return OutputSpec(
            tools=tuple(t.to_spec() for t in self.tools or ()),
            tool_choice=choice,
            tool_name=name,
            parallel_tool_calls=self.parallel_tool_calls,
            **self._format(),
        )

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
            output=self.output_spec(),
            logprobs=(self.top_logprobs or 0) if self.logprobs else None,
        )


class CompletionBody(SamplingFields, ReasoningFields, StructuredFields):
    """POST /v1/completions (OpenAI legacy completions; response_format as vLLM takes it)."""

    model: str | None = None
    prompt: str | list[str] = Field(min_length=1)
    max_tokens: int | None = Field(default=16, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)

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
                prompt=p,
                sampling=self.sampling(),
                stop=self.stops(),
                reasoning=self.reasoning(),
                output=OutputSpec(**self._format()),
                logprobs=self.logprobs,
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
        return cast("list[str] | list[list[int]]", list(self.input))  # texts or id sequences


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
        return [value] if isinstance(value, str) else list(value or ())
