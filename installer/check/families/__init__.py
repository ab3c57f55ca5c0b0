"""The family registry: detectors tried in a fixed order, each imported only when reached.

Like vllm's model registry, a table maps names to ``"module:Class"`` strings so that ``check``
imports no heavy code (never torch, never transformers). Order: most specific first —

1. ``gguf``: GGUF files and no other weights.
2. ``peft-adapter``: adapter_config.json without full weights.
3. ``diffusion``: model_index.json.
4. ``embedding`` (sentence-transformers): modules.json / config_sentence_transformers.json.
5. ``image-classification`` (timm): ``architecture`` + ``pretrained_cfg``.
6. ``image-text-to-text``: a generative class with a vision tower (or original LLaVA).
7. ``state-space``: mamba / mamba2 / jamba / rwkv / zamba … model types.
8. ``speech-recognition``, 9. ``audio-generation``: audio heads and model types.
10. ``text2text-generation``: encoder-decoder language models.
11. ``zero-shot-image-classification``: dual encoders (CLIP-like).
12-14. ``image-classification``, ``object-detection``, ``image-segmentation``: vision heads.
15. ``text-generation``: causal LMs (and custom code with AutoModelForCausalLM).
16. ``feature-extraction``: bare vision/audio backbones; 17. ``embedding``: bare text encoders.
18. Last, any other transformers pipeline task by its head (``…ForSequenceClassification`` →
    ``text-classification``, ``…ForDepthEstimation`` → ``depth-estimation`` …): the family name
    is the task name, served by the runtime's pipeline fallback.

Every family name here is the contract with the runtime (``model_info.json``); the detector
table itself lives in ``llm_runtime.contract`` (pure data, no model code).
"""

from __future__ import annotations

import importlib
from functools import cache

from llm_installer.check.config_files import main_config_path
from llm_installer.check.families.base import Detection, Family, Requirements
from llm_installer.check.source import ModelSource
from llm_installer.errors import NoConfigError, UnsupportedArchitectureError
from llm_runtime import contract

# (family name, "module:Class" under llm_installer.check.families), in detection order: the rows of
# llm_runtime.contract, the one table of families the runtime's handler registry derives from too.
DETECTORS: tuple[tuple[str, str], ...] = contract.DETECTORS
PIPELINE_TASKS = contract.PIPELINE_DETECTOR  # tried last; its families are task names


def _pipeline_tasks() -> list[str]:
    from llm_installer.check.families.pipeline_task import pipeline_tasks

    return pipeline_tasks()


def supported_families() -> list[str]:
    """Every family name check can answer, in detection order, without importing any detector."""
    return list(dict.fromkeys([*(name for name, _ in DETECTORS), *_pipeline_tasks()]))


def detect_family(source: ModelSource) -> tuple[Detection, Requirements]:
    """The first detector that claims ``source``, with that family's requirements."""
    from llm_installer.check.families.research import refuse_research_checkpoint

    refuse_research_checkpoint(source)  # seed 002's from-scratch forms: a message, not a guess
    for target in (*(target for _, target in DETECTORS), PIPELINE_TASKS):
        family = load_detector(target)
        detection = family.detect(source)
        if detection is not None:
            return detection, family.requirements(source, detection)
    raise _no_family_error(source)


def family_for(name: str) -> Family:
    """The first detector registered under family ``name`` (for requirements of a saved profile)."""
    target = next((target for family, target in DETECTORS if family == name), None)
    if target is None and name in _pipeline_tasks():
        target = PIPELINE_TASKS
    if target is None:
        raise UnsupportedArchitectureError(
            f"Unknown model family {name!r}. Supported families: {', '.join(supported_families())}."
        )
    return load_detector(target)


@cache
def load_detector(target: str) -> Family:
    """Import ``module:Class`` from this package and instantiate it (once)."""
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, class_name)()


def _no_family_error(source: ModelSource) -> Exception:
    path = main_config_path(source.configs)
    if path is None:
        return NoConfigError(f"No configuration files found in {source.model_id}")
    config = source.config(path) or {}
    names = config.get("architectures") or [config.get("model_type") or "unknown"]
    return UnsupportedArchitectureError(
        f"Unsupported model architecture {', '.join(map(str, names))} in {source.model_id}. "
        f"Supported families: {', '.join(supported_families())}.",
        hint="Families are detected from config.json, model_index.json, modules.json, "
        "adapter_config.json or *.gguf files; open an issue with the repo id to add this one.",
    )
