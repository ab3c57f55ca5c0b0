"""Registry of model families: family name -> (module, class), imported only when used."""

from __future__ import annotations

import importlib

from llm_runtime.errors import UnsupportedFamily
from llm_runtime.handlers.base import Handler

# The family name is the contract with the host side (written as "family" in model_info.json).
FAMILIES: dict[str, tuple[str, str]] = {
    "text-generation": ("llm_runtime.handlers.text_generation", "TextGenerationHandler"),
    "embedding": ("llm_runtime.handlers.embeddings", "EmbeddingHandler"),
}


def supported_families() -> list[str]:
    """Family names this runtime can serve, sorted."""
    return sorted(FAMILIES)


def handler_class(family: str) -> type[Handler]:
    """Import and return the handler class for family; unknown names list what is supported."""
    try:
        module_name, class_name = FAMILIES[family]
    except KeyError:
        raise UnsupportedFamily(
            f"No handler for model family {family!r}. "
            f"Supported families: {', '.join(supported_families())}."
        ) from None
    return getattr(importlib.import_module(module_name), class_name)
