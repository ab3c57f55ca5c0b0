"""Any other transformers pipeline task, detected by the head in the class name: text and token
classification, audio and video classification, depth estimation, keypoint matching (served by the
runtime's pipeline fallback; the family name is the task name)."""

from __future__ import annotations

from dataclasses import replace

from llm_installer.check.families._common import (
    AUDIO,
    PILLOW,
    Config,
    TransformersFamily,
    architecture,
    root_config,
    transformers_requirements,
)
from llm_installer.check.families._table import PIPELINE_TASK_MARKERS
from llm_installer.check.families.base import Detection, Requirement, Requirements
from llm_installer.check.families.feature_extraction import modality
from llm_installer.check.source import ModelSource

IMAGE_TASKS = frozenset(
    {
        "depth-estimation",
        "keypoint-matching",
        "video-classification",
    }
)
MAX_LABELS = 20  # labels shown in the report; /info lists them all


def pipeline_tasks() -> list[str]:
    """The task names this detector can answer (each one a runtime family)."""
    return list(PIPELINE_TASK_MARKERS)


def task_of(config: Config) -> str | None:
    """The pipeline task the architecture's head names, or None."""
    arch = architecture(config)
    task = next((t for t, marks in PIPELINE_TASK_MARKERS.items() if arch.endswith(marks)), None)
    if task == "text-classification" and modality(config) == "audio":
        return "audio-classification"
    return task


class PipelineTaskFamily(TransformersFamily):
    """A task head with no family of its own; ``family`` and ``task`` are the task's name."""

    name = "pipeline-task"
    task = "text-classification"
    text_input = True

    def matches(self, source: ModelSource, config: Config) -> bool:
        return task_of(config) is not None

    def task_for(self, config: Config) -> str:
        return task_of(config) or self.task

    def details(self, source: ModelSource, config: Config) -> dict:
        labels = config.get("id2label")
        if not isinstance(labels, dict) or not labels:
            return {}
        ordered = [str(labels[k]) for k in sorted(labels, key=_label_order)]
        return {"num_labels": len(ordered), "labels": ordered[:MAX_LABELS]}

    def detect(self, source: ModelSource) -> Detection | None:
        found = super().detect(source)
        return replace(found, family=found.task) if found else None

    def requirements(self, source: ModelSource, detection: Detection) -> Requirements:
        config = root_config(source) or {}
        extra: tuple[Requirement, ...] = ()
        if detection.task == "audio-classification":
            extra = AUDIO
        elif detection.task in IMAGE_TASKS or modality(config) == "image":
            extra = (PILLOW,)
        return transformers_requirements(source, detection, extra=extra)


def _label_order(key: str) -> tuple[int, str]:
    return (int(key), "") if str(key).lstrip("-").isdigit() else (0, str(key))
