"""speech-recognition: Whisper-like speech seq2seq, CTC (wav2vec2 …), RNN-T and audio-LLM transcribers."""

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
from llm_installer.check.families._table import SPEECH_RECOGNITION_TYPES
from llm_installer.check.source import ModelSource
from llm_runtime.contract import SPEECH_RECOGNITION, TEXT_GENERATION


class SpeechRecognitionFamily(TransformersFamily):
    """A speech head (``…ForCTC``, ``…ForSpeechSeq2Seq``) or a speech-to-text model_type."""

    name = SPEECH_RECOGNITION
    task = "automatic-speech-recognition"
    packages = AUDIO

    def matches(self, source: ModelSource, config: Config) -> bool:
        family = head_family(architecture(config))
        if family in (None, TEXT_GENERATION) and model_type(config) in SPEECH_RECOGNITION_TYPES:
            return True
        return family == self.name or (family is None and auto_map_family(config) == self.name)

    def details(self, source: ModelSource, config: Config) -> dict:
        processor = source.config("preprocessor_config.json") or {}
        found = {
            "sampling_rate": processor.get("sampling_rate") or config.get("sampling_rate"),
            "num_mel_bins": config.get("num_mel_bins"),
        }
        return {key: value for key, value in found.items() if value}
