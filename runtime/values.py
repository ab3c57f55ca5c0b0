"""Plain values passed between the server, the handlers and the batching engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Channel = Literal["thinking", "answer"]
FinishReason = Literal["stop", "length", "cancelled", "error"]


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
        return self.temperature <= 0.0


@dataclass(frozen=True)
class ReasoningParams:
    """Reasoning controls of one request (only meaningful for reasoning models)."""

    enabled: bool | None = None  # None: the model's default (on for reasoning models)
    max_thinking_tokens: int | None = None
    max_answer_tokens: int | None = None
    show_thinking: bool = True


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class TextRequest:
    """One text-generation request: either chat messages or a raw prompt."""

    messages: tuple[ChatMessage, ...] | None = None
    prompt: str | None = None
    sampling: SamplingParams = SamplingParams()
    stop: tuple[str, ...] = ()
    reasoning: ReasoningParams = ReasoningParams()


@dataclass(frozen=True)
class TextDelta:
    """A piece of streamed text and the channel it belongs to."""

    text: str
    channel: Channel = "answer"


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
