"""Capabilities of the media families, and the worker that runs one model call at a time.

Like `base.TextGeneration`, each capability names the endpoints it adds; the routes check for
the capability and otherwise answer 404 naming the endpoints the loaded family serves.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from llm_runtime.errors import Overloaded
from llm_runtime.values import TextRequest

T = TypeVar("T")


@dataclass(frozen=True)
class ImageJob:
    """One image generation request, already validated."""

    prompt: str
    negative_prompt: str | None = None
    steps: int = 25
    guidance_scale: float = 7.5
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    num_images: int = 1
    scheduler: str | None = None
    init_image: Any = None  # a PIL image: image-to-image
    strength: float = 0.75
    preview_every: int = 0  # 0: no previews


@dataclass
class ImageProgress:
    """Sent for every step: where the generation is, and a preview every few steps."""

    step: int
    total: int
    preview: str | None = None  # data URI (JPEG)


@dataclass
class ImageOutcome:
    images: list[str]  # base64 PNGs
    seed: int
    width: int
    height: int
    steps: int
    seconds: float
    interrupted: bool = False
    extra: dict = field(default_factory=dict)


ProgressCallback = Callable[[ImageProgress], None]


class Interrupted(Exception):
    """Raised inside a denoising loop when its generation is interrupted."""


class ImageGeneration(ABC):
    """Capability: text-to-image and image-to-image with step previews and interruption."""

    endpoints: ClassVar[tuple[str, ...]] = (
        "WS /ws",
        "POST /interrupt",
        "POST /v1/images/generations",
    )

    @abstractmethod
    async def generate_images(
        self, *, job: ImageJob, on_progress: ProgressCallback | None = None
    ) -> ImageOutcome:
        """Run job; on_progress is called from the worker thread after each step."""

    @abstractmethod
    def interrupt(self) -> int:
        """Stop every running and waiting generation; returns how many were stopped."""


class Transcription(ABC):
    """Capability: speech to text from an uploaded audio file."""

    endpoints: ClassVar[tuple[str, ...]] = ("POST /v1/audio/transcriptions",)

    @abstractmethod
    async def transcribe(
        self, *, audio: bytes, language: str | None = None, timestamps: bool = False
    ) -> dict[str, Any]:
        """`{"text", "duration", "chunks"?}` for the audio file's bytes."""


class SpeechSynthesis(ABC):
    """Capability: text to a WAV waveform."""

    endpoints: ClassVar[tuple[str, ...]] = ("POST /v1/audio/speech",)

    @abstractmethod
    async def synthesize(self, *, text: str) -> tuple[bytes, int]:
        """(WAV bytes, sampling rate) for text."""


class ImageInput(ABC):
    """Capability: text requests that carry images (multipart /generate, image_url parts)."""

    endpoints: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def request_from_generate(self, *, body: dict[str, Any]) -> tuple[TextRequest, bool]:
        """(request with its images, stream?) from a native /generate body."""

    @abstractmethod
    def request_from_chat(self, *, body: dict[str, Any]) -> tuple[TextRequest, bool, bool]:
        """(request, stream?, include_usage?) from an OpenAI chat body with image_url parts."""


class ModelWorker:
    """Runs blocking model calls one at a time off the event loop, with a bounded queue."""

    def __init__(self, *, max_queue: int) -> None:
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self._waiting = 0

    @property
    def pending(self) -> int:
        """Calls running or waiting."""
        return self._waiting

    async def run(self, stage: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._waiting >= self.max_queue:
            raise Overloaded(
                f"{self._waiting} requests are already waiting for the model; retry shortly."
            )
        self._waiting += 1
        try:
            return await asyncio.to_thread(self._call, stage, fn, args, kwargs)
        finally:
            self._waiting -= 1

    def _call(self, stage: str, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        from llm_runtime.loading import translate_oom  # torch: only once a model runs

        with self._lock, translate_oom(stage):
            return fn(*args, **kwargs)
