"""Plain values passed between the server, the handlers and the batching engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

GREEDY_BELOW = 1e-5  # as vLLM: smaller temperatures decode greedily
DEFAULT_MAX_BODY_MB = 8
DEFAULT_PREFIX_CACHE_MB = 512
Channel = Literal["thinking", "answer"]
FinishReason = Literal["stop", "length", "cancelled", "error", "tool_calls"]


@dataclass(frozen=True)
class LoadSettings:
    """How to load a model: resolved from the command line before any handler runs."""

    device: str = "auto"
    dtype: str = "auto"
    quantization: Literal["8bit", "4bit"] | None = None
    lora_dir: Path | None = None
    max_batch_size: int = 16
    max_queue: int = 64
    batch_window_ms: float = 20.0
    threads: int | None = None
    batching: Literal["auto", "step", "generate"] = "auto"
    prefix_cache_mb: int = DEFAULT_PREFIX_CACHE_MB  # step batching's prompt KV cache
    trust_remote_code: bool = False  # the model's own code (auto_map): only as install recorded
    engine: Literal["transformers", "vllm"] = "transformers"
    engine_args: tuple[str, ...] = ()  # passed through to the engine (vLLM's own flags)
    logs_dir: Path | None = None  # where an engine's own log goes (vllm.log)


@dataclass(frozen=True)
class Capabilities:
    """What /info reports about the loaded model."""

    supports_reasoning: bool = False
    supports_streaming: bool = False
    supports_system_prompt: bool = False
    max_context_length: int | None = None
    inputs: tuple[str, ...] = ("text",)
    outputs: tuple[str, ...] = ("text",)


@dataclass(frozen=True)
class ModelDescription:
    """The loaded model as the API describes it."""

    family: str
    device: str
    dtype: str
    capabilities: Capabilities
    adapter: str | None = None
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings of one request; temperature 0 means greedy."""

    max_tokens: int | None = None  # None: as many as the context leaves, up to a default
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        """Temperatures below GREEDY_BELOW would overflow the scaled logits: they mean greedy."""
        return self.temperature < GREEDY_BELOW


@dataclass(frozen=True)
class ReasoningParams:
    """Reasoning controls of one request (only meaningful for reasoning models)."""

    enabled: bool | None = None  # None: the model's default (on for reasoning models)
    max_thinking_tokens: int | None = None
    max_answer_tokens: int | None = None
    show_thinking: bool = True


@dataclass(frozen=True)
class ToolCall:
    """One function call the assistant made (arguments: JSON text, as OpenAI sends it)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant turn that called tools
    tool_call_id: str | None = None  # a `tool` turn: the call it answers
    name: str | None = None


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call; parameters is its JSON schema."""

    name: str
    description: str | None = None
    parameters: dict | None = None


@dataclass(frozen=True)
class OutputSpec:
    """The shape a reply must take, engine-neutral (OpenAI's tools and response_format).

    tool_choice: "none", "auto", "required" or "function" (then tool_name names it).
    response_format: "text", "json_object" or "json_schema" (then json_schema holds it).
    """

    tools: tuple[ToolSpec, ...] = ()
    tool_choice: Literal["none", "auto", "required", "function"] = "auto"
    tool_name: str | None = None
    parallel_tool_calls: bool = True
    response_format: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict | None = None

    @property
    def calls_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"


@dataclass(frozen=True)
class TextRequest:
    """One text-generation request: either chat messages or a raw prompt."""

    messages: tuple[ChatMessage, ...] | None = None
    prompt: str | None = None
    sampling: SamplingParams = SamplingParams()
    stop: tuple[str, ...] = ()
    reasoning: ReasoningParams = ReasoningParams()
    output: OutputSpec = OutputSpec()
    logprobs: int | None = None  # None: none; k: the chosen token's and k alternatives


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's log-probability and its most likely alternatives."""

    token: str
    logprob: float
    bytes: tuple[int, ...]
    top: tuple[tuple[str, float, tuple[int, ...]], ...] = ()


@dataclass(frozen=True)
class ToolCallChunk:
    """A streamed piece of a tool call (OpenAI's delta: the first piece has id and name)."""

    index: int
    arguments: str
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of streamed text and the channel it belongs to (or a piece of a tool call)."""

    text: str
    channel: Channel = "answer"
    logprobs: tuple[TokenLogprob, ...] = ()
    tool_call: ToolCallChunk | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    thinking_tokens: int = 0
    answer_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TextResult:
    """The finished generation of one request."""

    text: str
    thinking: str
    finish_reason: FinishReason
    usage: Usage
    reasoning: bool = False
    time_to_first_token_s: float | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None  # the answer's tokens, when asked for
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: list[list[float]]
    prompt_tokens: int


@dataclass(frozen=True)
class ServeConfig:
    """Everything `serve` was asked to do."""

    model_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    logs_dir: Path = Path("logs")
    log_level: str = "info"
    load: LoadSettings = LoadSettings()
    max_body_bytes: int = DEFAULT_MAX_BODY_MB * 1024 * 1024
    allowed_hosts: tuple[str, ...] = ()  # beyond the defaults (see guards.py); "*" allows any
    cors_origins: tuple[str, ...] = ()  # empty: CORS off
