"""What model a folder holds: read model_info.json (written by the installer) or detect it.

Detection is structural, never by name: sentence-transformers files, then config.json
`architectures` / `model_type` through transformers' own auto-mappings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from llm_runtime.contract import EMBEDDING, GGUF, TEXT_GENERATION
from llm_runtime.detect import detect_media_family, detect_pipeline_task, flatten
from llm_runtime.errors import ModelLoadError, UnsupportedFamily
from llm_runtime.model_info import ModelInfo, ModelInfoError, model_info_path, read_model_info
from llm_runtime.moe_keys import EXPERT_COUNT_KEYS


@dataclass(frozen=True)
class ModelProfile:
    """The model to serve: its folder, family and the facts model_info.json adds."""

    model_dir: Path
    family: str
    model_id: str
    is_moe: bool = False
    is_reasoning: bool | None = None  # None: decide from the tokenizer at load time
    source: str = "detected"
    info: ModelInfo = field(default_factory=ModelInfo)

    @property
    def trust_remote_code(self) -> bool:
        """The user allowed the model's own code at install (model_info.json); never guessed."""
        return self.info.trust_remote_code


def find_model_info(model_dir: Path) -> tuple[ModelInfo, Path] | None:
    """The first model_info.json found, read strictly (llm_runtime.model_info), and its path."""
    path = model_info_path(model_dir)
    if path is None:
        return None
    try:
        return read_model_info(path), path
    except ModelInfoError as exc:
        raise ModelLoadError(str(exc)) from exc


def load_profile(model_dir: Path) -> ModelProfile:
    """Profile of model_dir from model_info.json when present, else detected from its files;
    a model whose own code (auto_map) the install did not allow is refused here, clearly."""
    profile = _load_profile(model_dir)
    require_code_opt_in(profile)
    return profile


def require_code_opt_in(profile: ModelProfile) -> None:
    """transformers would refuse (or prompt) later: say what to do instead."""
    config_path = profile.model_dir / "config.json"
    if profile.trust_remote_code or not config_path.is_file():
        return
    config = _read_json(config_path)
    if not isinstance(config.get("auto_map"), dict) or _known_model_type(config):
        return
    raise ModelLoadError(
        f"{profile.model_id} runs its own code (auto_map in config.json: "
        f"{', '.join(sorted(config['auto_map']))}), which its install did not allow. Read that "
        "code, then reinstall with `llm-installer install MODEL --trust-remote-code`."
    )


def _known_model_type(config: dict) -> bool:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return config.get("model_type") in CONFIG_MAPPING_NAMES


def _load_profile(model_dir: Path) -> ModelProfile:
    found = find_model_info(model_dir)
    if found and (family := found[0].family):
        info, path = found
        return ModelProfile(
            model_dir=model_dir,
            family=family,
            model_id=info.model_id or model_dir.name,
            is_moe=info.is_moe,
            is_reasoning=info.is_reasoning,
            source=str(path),
            info=info,
        )
    if not (model_dir / "config.json").is_file() and any(model_dir.glob("*.gguf")):
        return ModelProfile(model_dir=model_dir, family=GGUF, model_id=model_dir.resolve().name)
    diffusers_only = (model_dir / "model_index.json").is_file() and not (
        model_dir / "config.json"
    ).is_file()
    config = {} if diffusers_only else _read_json(model_dir / "config.json")
    return ModelProfile(
        model_dir=model_dir,
        family=detect_family(model_dir, config),
        model_id=model_dir.resolve().name,
        is_moe=is_moe_config(config),
    )


def detect_family(model_dir: Path, config: dict) -> str:
    """Family name from the folder's structure; raises UnsupportedFamily when unknown."""
    if (model_dir / "modules.json").is_file() or (
        model_dir / "config_sentence_transformers.json"
    ).is_file():
        return EMBEDDING
    media_family = detect_media_family(model_dir, config)
    if media_family is not None:
        return media_family
    architectures = config.get("architectures") or []
    causal, encoders = _auto_mapping_names()
    if any(a in causal or a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return TEXT_GENERATION
    if any(a in encoders for a in architectures):
        return EMBEDDING
    if not architectures and config.get("model_type") in _encoder_model_types():
        return EMBEDDING
    task = detect_pipeline_task(config)
    if task is not None:
        return task
    raise UnsupportedFamily(
        f"Cannot tell which family the model in {model_dir} belongs to "
        f"(architectures={architectures or None}, model_type={config.get('model_type')!r}). "
        "Supported here: causal language models (text-generation), sentence-transformers "
        "or encoder models (embedding), diffusers pipelines, seq2seq, speech, vision and "
        "multimodal models, and any task a transformers pipeline runs (fill-mask, "
        "depth-estimation...). Write model_info.json with a 'family' to override."
    )


def is_moe_config(config: dict) -> bool:
    sections = [config, config.get("text_config") or {}]
    return any((section.get(key) or 0) > 1 for section in sections for key in EXPERT_COUNT_KEYS)


def _auto_mapping_names() -> tuple[set[str], set[str]]:
    """(causal LM class names, base encoder class names) from transformers' auto-mappings."""
    from transformers.models.auto import modeling_auto as auto

    causal = set(flatten(auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()))
    base = {
        name
        for model_type, names in auto.MODEL_MAPPING_NAMES.items()
        if model_type in _encoder_model_types()
        for name in flatten([names])
    }
    return causal, base


def _encoder_model_types() -> set[str]:
    """Model types with a masked-LM head: BERT-like encoders (their bare model embeds)."""
    from transformers.models.auto import modeling_auto as auto

    return set(auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise UnsupportedFamily(
            f"{path.parent} has neither model_info.json nor config.json/modules.json: "
            "is this a model folder?"
        )
    return json.loads(path.read_text(encoding="utf-8"))
