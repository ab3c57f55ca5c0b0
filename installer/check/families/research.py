"""llm-arch-research checkpoints (seed 002), told apart by structure before the families run.

Two forms exist. A raw checkpoint folder: a ``model.pt`` state dict of the project's own
GPT / GPT-2 / LLaMA classes, a JSON with ``model_config`` (``embed_dim``, ``num_heads``,
``num_layers`` …) and its BPE tokenizer. An hf-proxy folder: ``HFAdapter.save_pretrained`` wrote
config.json with ``model_type: "gpt"`` (no transformers class has it) and the same state dict
in ``pytorch_model.bin``. Neither loads in transformers without the project's code, so both are
refused with the way in: export with the code (``auto_map``) and install with
``--trust-remote-code``, which the runtime then honours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llm_installer.check.source import ModelSource
from llm_installer.errors import UnsupportedArchitectureError

RESEARCH_KEYS = frozenset({"embed_dim", "num_heads", "num_layers"})
RAW_WEIGHTS = (".pt", ".pth")
HF_PROXY_TYPE = "gpt"  # HFPretrainedConfig.model_type; transformers' own GPT-1 is "openai-gpt"
MAX_JSON_BYTES = 1_000_000
EXPORT_HINT = (
    "In the llm-arch-research checkout, save it as a Hugging Face folder that carries its code: "
    "hf-proxy's HFAdapter.save_pretrained(model, OUT, tokenizer=...) plus the model's modeling "
    "file and an auto_map entry in OUT/config.json (transformers' register_for_auto_class does "
    "both). Then: llm-installer install OUT --trust-remote-code."
)


def refuse_research_checkpoint(source: ModelSource) -> None:
    """Raise a clear UnsupportedArchitectureError for either research form; else do nothing."""
    weights = [f.path for f in source.files if f.path.endswith(RAW_WEIGHTS)]
    if weights and _research_config(source) is not None:
        raise UnsupportedArchitectureError(
            f"{source.model_id} is a from-scratch llm-arch-research checkpoint ({weights[0]}, "
            "a model_config with embed_dim/num_heads/num_layers and its own BPE tokenizer): its "
            "GPT/GPT-2/LLaMA classes are not part of transformers, so no image can load it as is.",
            hint=EXPORT_HINT,
        )
    config = source.config() or {}
    if config.get("model_type") == HF_PROXY_TYPE and not isinstance(config.get("auto_map"), dict):
        raise UnsupportedArchitectureError(
            f"{source.model_id} was saved by llm-arch-research's hf-proxy (model_type 'gpt', "
            "weights of the project's own GPT class) without its code: transformers cannot "
            "build that model from config.json alone.",
            hint=EXPORT_HINT,
        )


def _research_config(source: ModelSource) -> dict[str, Any] | None:
    """The model_config of a collected config, or of a small local JSON file."""
    candidates = list(source.configs.values())
    if source.local_path:
        candidates += list(_local_jsons(Path(source.local_path), source))
    for value in candidates:
        found = _model_config(value)
        if found is not None:
            return found
    return None


def _model_config(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    nested = value.get("model_config")
    for candidate in (nested, value):
        if isinstance(candidate, dict) and set(candidate) >= RESEARCH_KEYS:
            return candidate
    return None


def _local_jsons(folder: Path, source: ModelSource):
    for file in source.files:
        if "/" in file.path or not file.path.endswith(".json") or file.size > MAX_JSON_BYTES:
            continue
        try:
            yield json.loads((folder / file.path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
