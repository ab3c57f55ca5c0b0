"""Registry of model families: family name -> (module, class), imported only when used."""

from __future__ import annotations

import importlib

from llm_runtime.errors import UnsupportedFamily
from llm_runtime.handlers.base import Handler

# The family name is the contract with the host side (written as "family" in model_info.json).
FAMILIES: dict[str, tuple[str, str]] = {
    "text-generation": ("llm_runtime.handlers.text_generation", "TextGenerationHandler"),
    "embedding": ("llm_runtime.handlers.embeddings", "EmbeddingHandler"),
    "text2text-generation": ("llm_runtime.handlers.text2text", "Text2TextHandler"),
    "diffusion": ("llm_runtime.handlers.diffusion", "DiffusionHandler"),
    "speech-recognition": ("llm_runtime.handlers.speech_recognition", "SpeechRecognitionHandler"),
    "audio-generation": ("llm_runtime.handlers.audio_generation", "AudioGenerationHandler"),
    "image-classification": (
        "llm_runtime.handlers.image_classification",
        "ImageClassificationHandler",
    ),
    "object-detection": ("llm_runtime.handlers.object_detection", "ObjectDetectionHandler"),
    "image-segmentation": (
        "llm_runtime.handlers.image_segmentation",
        "ImageSegmentationHandler",
    ),
    "zero-shot-image-classification": (
        "llm_runtime.handlers.zero_shot_image",
        "ZeroShotImageClassificationHandler",
    ),
    "image-text-to-text": ("llm_runtime.handlers.image_text_to_text", "ImageTextToTextHandler"),
    "feature-extraction": ("llm_runtime.handlers.feature_extraction", "FeatureExtractionHandler"),
    "state-space": ("llm_runtime.handlers.state_space", "StateSpaceHandler"),
    "gguf": ("llm_runtime.handlers.gguf", "GgufHandler"),
}
# Families served by another engine than transformers: (family, engine) -> (module, class).
ENGINE_HANDLERS: dict[tuple[str, str], tuple[str, str]] = {
    ("text-generation", "vllm"): ("llm_runtime.engines.vllm_handler", "VllmTextHandler"),
}
# Any other transformers pipeline task (text-classification, depth-estimation, ...).
PIPELINE_FALLBACK = ("llm_runtime.handlers.pipeline_task", "PipelineTaskHandler")


def supported_families() -> list[str]:
    """Family names this runtime can serve, sorted (pipeline tasks last)."""
    from llm_runtime.detect import pipeline_task_names

    return sorted(FAMILIES) + pipeline_task_names()


def handler_class(family: str, engine: str = "transformers") -> type[Handler]:
    """Import and return the handler class for family (on engine); unknown names list what is
    supported."""
    if engine != "transformers":
        if (family, engine) not in ENGINE_HANDLERS:
            served = ", ".join(f"{f} on {e}" for f, e in ENGINE_HANDLERS)
            raise UnsupportedFamily(
                f"The {engine} engine does not serve {family!r} models; it serves {served}."
            )
        module_name, class_name = ENGINE_HANDLERS[family, engine]
        return getattr(importlib.import_module(module_name), class_name)
    try:
        module_name, class_name = FAMILIES.get(family) or _pipeline_fallback(family)
    except KeyError:
        raise UnsupportedFamily(
            f"No handler for model family {family!r}. "
            f"Supported families: {', '.join(supported_families())}."
        ) from None
    return getattr(importlib.import_module(module_name), class_name)


def _pipeline_fallback(family: str) -> tuple[str, str]:
    from llm_runtime.detect import pipeline_task_names

    if family in pipeline_task_names():
        return PIPELINE_FALLBACK
    raise KeyError(family)
