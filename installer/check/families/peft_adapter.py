"""peft-adapter: a LoRA (or other PEFT) adapter repo; its base model is checked on its own."""

from __future__ import annotations

from typing import Any

from llm_installer.check.families._common import TRANSFORMERS_BASE
from llm_installer.check.families.base import Detection, Family, Requirement, Requirements
from llm_installer.check.source import ModelSource
from llm_runtime.contract import FEATURE_EXTRACTION, PEFT_ADAPTER, TEXT2TEXT, TEXT_GENERATION

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHT_PREFIX = "adapter_model"
TASKS = {
    "CAUSAL_LM": TEXT_GENERATION,
    "SEQ_2_SEQ_LM": TEXT2TEXT,
    "FEATURE_EXTRACTION": FEATURE_EXTRACTION,
    "SEQ_CLS": "text-classification",
    "TOKEN_CLS": "token-classification",
    "QUESTION_ANS": "question-answering",
}
DETAIL_KEYS = (
    "base_model_name_or_path",
    "peft_type",
    "task_type",
    "r",
    "lora_alpha",
    "target_modules",
)


class PeftAdapterFamily(Family):
    """adapter_config.json at the root, and no full-model weights beside the adapter's."""

    name = PEFT_ADAPTER

    def detect(self, source: ModelSource) -> Detection | None:
        adapter = source.config(ADAPTER_CONFIG)
        full_weights = [
            f for f in source.weight_files if not f.name.startswith(ADAPTER_WEIGHT_PREFIX)
        ]
        if adapter is None or full_weights:
            return None
        task = TASKS.get(str(adapter.get("task_type")), "unknown")
        return Detection(
            family=self.name,
            library="peft",
            task=task,
            architecture=adapter.get("peft_type"),
            capabilities=("Adapter",),
            details=adapter_details(adapter),
        )

    def requirements(self, source: ModelSource, detection: Detection) -> Requirements:
        base_model = detection.details.get("base_model_name_or_path") or "(not named)"
        return Requirements(
            base=(*TRANSFORMERS_BASE, Requirement("peft")),
            warnings=(
                f"This is a PEFT adapter: its base model {base_model} must be checked and "
                "downloaded too; the base decides the family and the memory needed.",
            ),
        )


def adapter_details(adapter: dict[str, Any]) -> dict[str, Any]:
    """The adapter facts the report shows: base model, PEFT type, rank, target modules."""
    return {key: adapter[key] for key in DETAIL_KEYS if adapter.get(key) is not None}
