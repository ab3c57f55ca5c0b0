"""Detection of the media and task families from a folder, through transformers' auto-mappings.

`profile.detect_family` calls `detect_media_family` before its text-generation and embedding
checks, so a multimodal model (vision_config + text_config) is not mistaken for a plain causal
LM, and `detect_pipeline_task` after them: any other task transformers has a pipeline for.
"""

from __future__ import annotations

import functools
from pathlib import Path

from llm_runtime.contract import (
    AUDIO_GENERATION,
    DIFFUSION,
    FEATURE_EXTRACTION,
    IMAGE_CLASSIFICATION,
    IMAGE_SEGMENTATION,
    IMAGE_TEXT_TO_TEXT,
    OBJECT_DETECTION,
    SPEECH_RECOGNITION,
    TEXT2TEXT,
    ZERO_SHOT_IMAGE,
)
from llm_runtime.errors import UnsupportedFamily

# (family, auto-mapping names) in the order they are tried: the first match wins.
MAPPINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (IMAGE_TEXT_TO_TEXT, ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",)),
    (TEXT2TEXT, ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",)),
    (
        SPEECH_RECOGNITION,
        ("MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", "MODEL_FOR_CTC_MAPPING_NAMES"),
    ),
    (AUDIO_GENERATION, ("MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES",)),
    (ZERO_SHOT_IMAGE, ("MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES",)),
    (OBJECT_DETECTION, ("MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES",)),
    (
        IMAGE_SEGMENTATION,
        (
            "MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES",
            "MODEL_FOR_INSTANCE_SEGMENTATION_MAPPING_NAMES",
            "MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES",
            "MODEL_FOR_IMAGE_SEGMENTATION_MAPPING_NAMES",
        ),
    ),
    (IMAGE_CLASSIFICATION, ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",)),
)

# transformers pipeline tasks a family above serves (the others keep their task name as family).
TASK_FAMILIES = {
    "automatic-speech-recognition": SPEECH_RECOGNITION,
    "text-to-audio": AUDIO_GENERATION,
    "text2text-generation": TEXT2TEXT,
    "summarization": TEXT2TEXT,
    "translation": TEXT2TEXT,
    "image-feature-extraction": FEATURE_EXTRACTION,
}
SPECTROGRAM_MESSAGE = (
    "{names} is a text-to-spectrogram model (SpeechT5-like): it needs a separate vocoder "
    "(e.g. microsoft/speecht5_hifigan) and speaker embeddings, which its folder does not hold, "
    "so it cannot be served offline. Serve a text-to-waveform model instead (VITS/MMS, Bark, "
    "MusicGen...)."
)


def detect_media_family(model_dir: Path, config: dict) -> str | None:
    """The family of a diffusers, timm or media folder; None leaves it to the text checks."""
    if (model_dir / "model_index.json").is_file():
        return DIFFUSION
    if "architecture" in config and "pretrained_cfg" in config:
        return IMAGE_CLASSIFICATION  # a timm folder
    architectures = set(config.get("architectures") or [])
    if not architectures:
        return None
    refuse_spectrogram_models(architectures)
    for family, names in MAPPINGS:
        if architectures & _classes(names):
            return family
    return None


def detect_pipeline_task(config: dict) -> str | None:
    """The first transformers pipeline task whose model classes include an architecture, as
    the family that serves it; tried last, so a task with no family of its own (fill-mask,
    depth-estimation...) goes to the pipeline fallback."""
    architectures = set(config.get("architectures") or [])
    for task, classes in _pipeline_task_classes().items():
        if architectures & classes:
            return TASK_FAMILIES.get(task, task)
    return None


def pipeline_task_names() -> list[str]:
    """transformers' pipeline tasks with no family of their own: the fallback serves them."""
    from transformers.pipelines import SUPPORTED_TASKS

    from llm_runtime.handlers import FAMILIES

    return [task for task in SUPPORTED_TASKS if task not in FAMILIES and task not in TASK_FAMILIES]


def refuse_spectrogram_models(architectures: set[str]) -> None:
    """Raise UnsupportedFamily for text-to-spectrogram models (no offline vocoder)."""
    spectrogram = architectures & _classes(("MODEL_FOR_TEXT_TO_SPECTROGRAM_MAPPING_NAMES",))
    if spectrogram and not architectures & _classes(("MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES",)):
        raise UnsupportedFamily(SPECTROGRAM_MESSAGE.format(names=", ".join(sorted(spectrogram))))


@functools.cache
def _pipeline_task_classes() -> dict[str, set[str]]:
    """task -> the model classes its pipeline loads, from transformers' own task table. Tasks
    that load the bare AutoModel are left out: every base model would match them."""
    from transformers.pipelines import SUPPORTED_TASKS

    found: dict[str, set[str]] = {}
    for task, entry in SUPPORTED_TASKS.items():
        auto_classes = entry.get("pt") or ()
        if any(cls.__name__ == "AutoModel" for cls in auto_classes):
            continue
        mappings = [getattr(cls._model_mapping, "_model_mapping", {}) for cls in auto_classes]
        found[task] = set(flatten(value for names in mappings for value in names.values()))
    return found


def _classes(mapping_names: tuple[str, ...]) -> set[str]:
    from transformers.models.auto import modeling_auto as auto

    return set(flatten(v for name in mapping_names for v in getattr(auto, name, {}).values()))


def flatten(values) -> list[str]:
    out: list[str] = []
    for value in values:
        out.extend(value if isinstance(value, (list, tuple)) else [value])
    return out
