"""Speech recognition: whisper-like seq2seq and CTC models; long audio is cut into chunks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from llm_runtime.contract import SPEECH_RECOGNITION
from llm_runtime.handlers.media_base import Transcription
from llm_runtime.handlers.pipeline_base import PipelineHandler
from llm_runtime.media import Payload, decode_audio

CHUNK_S = 30.0  # whisper's window; CTC models take the same chunks with a stride


class TranscribeBody(BaseModel):
    """/generate: `audio` (or `file`) as an upload, base64 or a data URI."""

    model_config = ConfigDict(extra="ignore")

    audio: Payload | None = None
    file: Payload | None = None
    language: str | None = None
    timestamps: bool = False

    @model_validator(mode="after")
    def _has_audio(self):
        if not (self.audio or self.file):
            raise ValueError("give 'audio': a WAV/FLAC/OGG upload, base64 or a data: URI")
        return self


class SpeechRecognitionHandler(PipelineHandler, Transcription):
    """The automatic-speech-recognition pipeline with chunk_length_s for long audio."""

    family = SPEECH_RECOGNITION
    task = "automatic-speech-recognition"
    inputs = ("audio",)
    outputs = ("text",)

    @property
    def sampling_rate(self) -> int:
        return int(self.pipe.feature_extractor.sampling_rate)

    @property
    def is_seq2seq(self) -> bool:
        return bool(getattr(self.pipe.model.config, "is_encoder_decoder", False))

    def details(self) -> dict[str, Any]:
        return {
            "sampling_rate": self.sampling_rate,
            "decoder": "seq2seq" if self.is_seq2seq else "ctc",
            "chunk_length_s": CHUNK_S,
            "audio_formats": ["wav", "flac", "ogg", "mp3"] if _has_soundfile() else ["wav"],
        }

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        request = TranscribeBody.model_validate(body)
        return await self.transcribe(
            audio=request.audio or request.file or b"",
            language=request.language,
            timestamps=request.timestamps,
        )

    async def transcribe(
        self, *, audio: Payload, language: str | None = None, timestamps: bool = False
    ) -> dict[str, Any]:
        samples = decode_audio(audio, self.sampling_rate)
        kwargs: dict[str, Any] = {"chunk_length_s": CHUNK_S, "batch_size": 4}
        if timestamps:
            kwargs["return_timestamps"] = True if self.is_seq2seq else "word"
        if language and self.is_seq2seq:
            kwargs["generate_kwargs"] = {"language": language}
        found = await self.run({"raw": samples, "sampling_rate": self.sampling_rate}, **kwargs)
        out: dict[str, Any] = {
            "text": found["text"].strip(),
            "duration": round(samples.size / self.sampling_rate, 3),
        }
        if timestamps and found.get("chunks"):
            out["chunks"] = [
                {"text": c["text"], "timestamp": list(c["timestamp"])} for c in found["chunks"]
            ]
        return out


def _has_soundfile() -> bool:
    try:
        import soundfile  # noqa: F401
    except ImportError:
        return False
    return True
