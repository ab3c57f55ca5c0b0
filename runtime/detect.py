"""Detection of the media and task families from a folder, through transformers' auto-mappings.

Called by `profile.detect_family` before its text-generation and embedding checks, so a
multimodal model (vision_config + text_config) is not mistaken for a plain causal LM.
"""

from __future__ import annotations

from pathlib import Path

# (family, auto-mapping names) in the order they are tried: the first match wins.
MAPPINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("image-text-to-text", ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",)),
    ("text2text-generation", ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",)),
    (
        "speech-recognition",
        ("MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", "MODEL_FOR_CTC_MAPPING_NAMES"),
    ),
    (
        "audio-generation",
        ("MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES", "MODEL_FOR_TEXT_TO_SPECTROGRAM_MAPPING_NAMES"),
    ),
    ("zero-shot-image-classification", ("MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES",)),
    ("object-detection", ("MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES",)),
    (
        "image-segmentation",
        (
            "MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES",
            "MODEL_FOR_INSTANCE_SEGMENTATION_MAPPING_NAMES",
            "MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES",
            "MODEL_FOR_IMAGE_SEGMENTATION_MAPPING_NAMES",
        ),
    ),
    ("image-classification", ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",)),
)

# Task heads with no family of their own: served by the generic pipeline handler.
PIPELINE_TASKS: tuple[tuple[str, str], ...] = (
    ("text-classification", "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"),
    ("token-classification", "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES"),
    ("question-answering", "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES"),
    ("audio-classification", "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES"),
    ("depth-estimation", "MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES"),
    ("video-classification", "MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES"),
    ("zero-shot-object-detection", "MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES"),
    ("mask-generation", "MODEL_FOR_MASK_GENERATION_MAPPING_NAMES"),
    ("document-question-answering", "MODEL_FOR_DOCUMENT_QUESTION_ANSWERING_MAPPING_NAMES"),
    ("table-question-answering", "MODEL_FOR_TABLE_QUESTION_ANSWERING_MAPPING_NAMES"),
)


def detect_media_family(model_dir: Path, config: dict) -> str | None:
    """The family of a diffusers, timm or task-head folder; None leaves it to the text checks."""
    if (model_dir / "model_index.json").is_file():
        return "diffusion"
    if "architecture" in config and "pretrained_cfg" in config:
        return "image-classification"  # a timm folder
    architectures = set(config.get("architectures") or [])
    if not architectures:
        return None
    for family, names in MAPPINGS:
        if architectures & _classes(names):
            return family
    for task, name in PIPELINE_TASKS:
        if architectures & _classes((name,)):
            return task
    return None


def pipeline_task_names() -> list[str]:
    return [task for task, _ in PIPELINE_TASKS]


def _classes(mapping_names: tuple[str, ...]) -> set[str]:
    from transformers.models.auto import modeling_auto as auto

    found: set[str] = set()
    for name in mapping_names:
        for value in getattr(auto, name, {}).values():
            found.update(value if isinstance(value, (list, tuple)) else [value])
    return found
