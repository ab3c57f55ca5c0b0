"""Audio generation: text-to-speech and text-to-audio models transformers supports (VITS/MMS,
Bark, MusicGen...), answered as 16-bit WAV."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llm_runtime.contract import AUDIO_GENERATION
from llm_runtime.detect import refuse_spectrogram_models
from llm_runtime.handlers.media_base import SpeechSynthesis
from llm_runtime.handlers.pipeline_base import PipelineHandler
from llm_runtime.media import wav_bytes
from llm_runtime.profile import ModelProfile
from llm_runtime.schemas import SEED_MAX, SEED_MIN
from llm_runtime.values import LoadSettings


class SpeakBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1, max_length=4096)
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX)


class AudioGenerationHandler(PipelineHandler, SpeechSynthesis):
    """The text-to-audio pipeline; `/generate` answers base64 WAV, /v1/audio/speech raw WAV."""

    family = AUDIO_GENERATION
    task = "text-to-audio"
    inputs = ("text",)
    outputs = ("audio",)

    def load(self, *, profile: ModelProfile, settings: LoadSettings) -> None:
        # model_info.json may name this family for a SpeechT5-like model: say why it can't run
        # before transformers tries to download a vocoder.
        path = profile.model_dir / "config.json"
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        refuse_spectrogram_models(set(config.get("architectures") or []))
        super().load(profile=profile, settings=settings)

    def details(self) -> dict[str, Any]:
        return {"sampling_rate": self._sampling_rate(), "format": "wav"}

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request = SpeakBody.model_validate(body)
        wav, rate = await self.synthesize(text=request.text, seed=request.seed)
        return {
            "audio": base64.b64encode(wav).decode("ascii"),
            "format": "wav",
            "sampling_rate": rate,
            "duration": round((len(wav) - 44) / 2 / rate, 3),
        }

    async def synthesize(self, *, text: str, seed: int | None = None) -> tuple[bytes, int]:
        found = await self.worker.run("generating audio", self._speak, text, seed)
        samples = np.asarray(found["audio"], dtype=np.float32).reshape(-1)
        rate = int(found["sampling_rate"])
        return wav_bytes(samples, rate), rate

    def _speak(self, text: str, seed: int | None) -> dict[str, Any]:
        import torch

        if seed is not None:
            torch.manual_seed(seed)
        return self.pipe(text)

    def _sampling_rate(self) -> int | None:
        config = self.pipe.model.config
        rate = getattr(config, "sampling_rate", None) or getattr(self.pipe, "sampling_rate", None)
        return int(rate) if rate else None
