"""The handler contract: one subclass per model family, loaded once, then asked for answers.

A handler declares what it can do by inheriting capability interfaces (`TextGeneration`,
`Embedding`, ...); the server routes a request to the handler only when it has the capability,
and otherwise answers 404 naming the endpoints the loaded family does serve.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from llm_runtime.metrics import Metrics
    from llm_runtime.profile import ModelProfile
    from llm_runtime.values import (
        EmbeddingResult,
        LoadSettings,
        ModelDescription,
        TextDelta,
        TextRequest,
        TextResult,
    )


COMMON_ENDPOINTS = (
    "GET /health",
    "GET /health/ready",
    "GET /info",
    "GET /metrics",
    "GET /v1/models",
    "POST /generate",
)


class Handler(ABC):
    """Serves one model family: `load` once, then `describe` and `generate`."""

    family: str  # a class attribute; the generic pipeline handler sets its own per model

    @classmethod
    def served_endpoints(cls) -> list[str]:
        """Every endpoint this family answers: the common ones plus its capabilities'."""
        extra = [e for base in cls.__mro__ for e in vars(base).get("endpoints", ())]
        return [*COMMON_ENDPOINTS, *dict.fromkeys(extra)]

    def __init__(self, *, metrics: Metrics) -> None:
        self.metrics = metrics

    @abstractmethod
    def load(self, *, profile: ModelProfile, settings: LoadSettings) -> None:
        """Load the model in profile.model_dir on the device and dtype settings name."""

    async def started(self) -> None:
        """Runs once on the serving event loop after load() (for engines whose clients live on
        that loop); the default has nothing to do."""
        return None

    @abstractmethod
    def describe(self) -> ModelDescription:
        """Family, device, dtype and capabilities of the loaded model for /info."""

    @abstractmethod
    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        """Answer the family's native POST /generate body (validated by the handler)."""

    def close(self) -> None:
        """Release worker threads and memory; the default has nothing to release."""
        return None


class TextStream(ABC):
    """One running generation: iterate for deltas, then read `result`; cancel to stop early."""

    @property
    @abstractmethod
    def reasoning(self) -> bool:
        """True when the output is split into thinking and answer."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[TextDelta]:
        """Yield text deltas as the model produces them."""

    @abstractmethod
    async def result(self) -> TextResult:
        """Wait for the end of the generation and return its text, reason and usage."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop generating for this request (the client went away)."""


class TextGeneration(ABC):
    """Capability: chat and completion text generation with streaming."""

    endpoints: ClassVar[tuple[str, ...]] = (
        "POST /generate/stream",
        "GET /generate/stream",
        "WS /ws",
        "POST /v1/chat/completions",
        "POST /v1/completions",
    )

    @abstractmethod
    def start(self, *, request: TextRequest) -> TextStream:
        """Validate and queue a request; raises InvalidRequest or Overloaded."""

    @abstractmethod
    def count_tokens(self, *, text: str) -> int:
        """Number of tokens text encodes to."""


class Embedding(ABC):
    """Capability: vectors for texts or token-id sequences."""

    endpoints: ClassVar[tuple[str, ...]] = ("POST /v1/embeddings",)

    @abstractmethod
    async def embed(
        self, *, inputs: list[str] | list[list[int]], normalize: bool
    ) -> EmbeddingResult:
        """One vector per input, in input order."""
