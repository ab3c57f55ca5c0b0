"""Registry of model families: family name -> (module, class), imported only when used.

Derived from llm_runtime.contract, the one table of families both sides share."""

from __future__ import annotations

import importlib

from llm_runtime.contract import (
    PIPELINE_FALLBACK,
    TRANSFORMERS,
    engine_handlers,
    family_spec,
    handled_families,
)
from llm_runtime.errors import UnsupportedFamily
from llm_runtime.handlers.base import Handler

# The family name is the contract with the host side (written as "family" in model_info.json);
# the rows come from llm_runtime.contract, the table the host's detectors derive from too.
FAMILIES: dict[str, tuple[str, str]] = handled_families()
# Families served by another engine than transformers: (family, engine) -> (module, class).
ENGINE_HANDLERS: dict[tuple[str, str], tuple[str, str]] = engine_handlers()


def supported_families() -> list[str]:
    """Family names this runtime can serve, sorted (pipeline tasks last)."""
    from llm_runtime.detect import pipeline_task_names

    return sorted(FAMILIES) + pipeline_task_names()


def handler_class(family: str, engine: str = TRANSFORMERS) -> type[Handler]:
    """Import and return the handler class for family (on engine); unknown names list what is
    supported."""
    if engine != TRANSFORMERS and not _own_engine(family, engine):
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


def _own_engine(family: str, engine: str) -> bool:
    """The family's own handler runs this engine itself (gguf on llama.cpp)."""
    spec = family_spec(family)
    return spec is not None and engine in spec.engines and (family, engine) not in ENGINE_HANDLERS
