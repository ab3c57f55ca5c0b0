"""audio-generation: text-to-speech (VITS/MMS-TTS, Bark), music (MusicGen), voice conversion (SpeechT5)."""

from __future__ import annotations

from llm_installer.check.families._common import (
    AUDIO,
    Config,
    TransformersFamily,
    architecture,
    auto_map_family,
    head_family,
    model_type,
)
from llm_installer.check.families._table import AUDIO_GENERATION_TYPES
from llm_installer.check.source import ModelSource
from llm_installer.errors import UnsupportedArchitectureError
from llm_runtime.contract import AUDIO_GENERATION, TEXT_GENERATION

# (marker in the class name or model_type, task), first match wins; text-to-speech otherwise.
TASKS = (
    ("SpeechToSpeech", "audio-to-audio"),
    ("musicgen", "text-to-audio"),
    ("Musicgen", "text-to-audio"),
)
# transformers' text-to-spectrogram heads: they need a separate vocoder and speaker embeddings
# their folders do not hold, so the runtime cannot serve them offline (it refuses them too).
SPECTROGRAM_HEADS = frozenset({"SpeechT5ForTextToSpeech", "FastSpeech2ConformerModel"})


class AudioGenerationFamily(TransformersFamily):
    """An audio-output head (``…ForTextToSpeech``, ``…ForSpeechToSpeech``) or a TTS/music model_type."""

    name = AUDIO_GENERATION
    task = "text-to-speech"
    packages = AUDIO

    def matches(self, source: ModelSource, config: Config) -> bool:
        if architecture(config) in SPECTROGRAM_HEADS:
            raise UnsupportedArchitectureError(
                f"{architecture(config)} in {source.model_id} is a text-to-spectrogram model: it "
                "needs a separate vocoder and speaker embeddings, which its repo does not hold.",
                hint="Choose a text-to-waveform model instead (VITS/MMS-TTS, Bark, MusicGen...).",
            )
        family = head_family(architecture(config))
        if family in (None, TEXT_GENERATION) and model_type(config) in AUDIO_GENERATION_TYPES:
            return True
        return family == self.name or (family is None and auto_map_family(config) == self.name)

    def task_for(self, config: Config) -> str:
        names = f"{architecture(config)} {model_type(config)}"
        return next((task for marker, task in TASKS if marker in names), self.task)

    def details(self, source: ModelSource, config: Config) -> dict:
        rate = config.get("sampling_rate") or (source.config("preprocessor_config.json") or {}).get(
            "sampling_rate"
        )
        return {"sampling_rate": rate} if rate else {}
