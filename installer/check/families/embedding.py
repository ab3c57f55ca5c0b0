"""embedding: sentence-transformers repos, and plain text encoders (``BertModel``, ``…ForMaskedLM``)."""

from __future__ import annotations

from typing import Any

from llm_installer.check.families._common import (
    TORCH,
    Config,
    TransformersFamily,
    architecture,
    auto_map_family,
    capabilities,
    head_family,
    is_bare_model,
    model_type,
    needs_remote_code,
    root_config,
    transformers_requirements,
)
from llm_installer.check.families.base import Detection, Family, Requirement, Requirements
from llm_installer.check.source import ModelSource
from llm_runtime.contract import EMBEDDING

SENTENCE_TRANSFORMERS_FILES = (
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
)
SENTENCE_TRANSFORMERS_BASE = (
    TORCH,
    Requirement("sentence-transformers"),
    Requirement("transformers"),
)
POOLING_TYPE = "sentence_transformers.models.Pooling"
NON_TEXT_KEYS = ("image_size", "patch_size", "num_channels", "num_mel_bins", "conv_dim")


class SentenceTransformersFamily(Family):
    """A repo with modules.json / config_sentence_transformers.json: sentence-transformers loads it."""

    name = EMBEDDING

    def detect(self, source: ModelSource) -> Detection | None:
        if not any(source.has_file(path) for path in SENTENCE_TRANSFORMERS_FILES):
            return None
        config = root_config(source) or {}
        return Detection(
            family=self.name,
            library="sentence-transformers",
            task="sentence-similarity",
            architecture=architecture(config) or None,
            model_type=model_type(config) or None,
            capabilities=capabilities(source, "sentence-similarity", False, False),
            trust_remote_code=needs_remote_code(config),
            details=sentence_transformers_details(source, config),
        )

    def requirements(self, source: ModelSource, detection: Detection) -> Requirements:
        return transformers_requirements(source, detection, base=SENTENCE_TRANSFORMERS_BASE)


class TextEncoderFamily(TransformersFamily):
    """A text backbone or masked-LM class without sentence-transformers files: mean-pooled embeddings."""

    name = EMBEDDING
    task = "feature-extraction"
    text_input = True

    def matches(self, source: ModelSource, config: Config) -> bool:
        arch = architecture(config)
        if auto_map_family(config) is not None or any(key in config for key in NON_TEXT_KEYS):
            return False
        return head_family(arch) == self.name or (is_bare_model(arch) and "vocab_size" in config)

    def details(self, source: ModelSource, config: Config) -> dict:
        return {"embedding_dimension": config.get("hidden_size") or config.get("d_model")}


def sentence_transformers_details(source: ModelSource, config: Config) -> dict[str, Any]:
    """Module types, pooling mode, max sequence length and embedding size."""
    modules = source.configs.get("modules.json")
    modules = modules if isinstance(modules, list) else []
    pooling = _pooling_config(source, modules)
    settings = source.config("sentence_bert_config.json") or {}
    st_config = source.config("config_sentence_transformers.json") or {}
    found = {
        "modules": [
            str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules if isinstance(m, dict)
        ],
        "pooling": [
            k[len("pooling_mode_") :]
            for k, v in pooling.items()
            if k.startswith("pooling_mode_") and v is True
        ],
        "max_seq_length": settings.get("max_seq_length"),
        "embedding_dimension": pooling.get("word_embedding_dimension") or config.get("hidden_size"),
        "similarity": st_config.get("similarity_fn_name"),
    }
    return {key: value for key, value in found.items() if value}


def _pooling_config(source: ModelSource, modules: list) -> dict[str, Any]:
    for module in modules:
        if isinstance(module, dict) and module.get("type") == POOLING_TYPE:
            return source.config(f"{module.get('path')}/config.json") or {}
    return {}
