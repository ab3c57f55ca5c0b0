"""Which detected families an image can serve: the runtime's handler registry, read as data.

The host reads only ``llm_runtime.handlers.FAMILIES`` (names → module paths; no model code, no
torch). A family check detects but no handler serves is refused by install before any download,
with the reason below; tests/unit/test_parity.py keeps these tables and both registries in step.
"""

from __future__ import annotations

# Detected families with no runtime handler of their own, and why install refuses them.
NOT_SERVED: dict[str, str] = {}
# Families check resolves to another family's model: served by that family's handler.
SERVED_ON_BASE: dict[str, str] = {
    "peft-adapter": "an adapter is checked, installed and served on its base model",
}


def served_families() -> frozenset[str]:
    """The family names the image's runtime has a handler for: its own handlers, and the
    pipeline tasks the host detects, which the runtime's pipeline fallback serves (checked
    against transformers' own task list by tests/unit/test_pipeline_tasks.py)."""
    from llm_installer.families._table import PIPELINE_TASK_MARKERS
    from llm_runtime.handlers import FAMILIES

    return frozenset(FAMILIES) | frozenset(PIPELINE_TASK_MARKERS)


def refusal_reason(family: str) -> str | None:
    """Why install cannot serve ``family``, or None when an image can."""
    if family in served_families() or family in SERVED_ON_BASE:
        return None
    return NOT_SERVED.get(family, f"the runtime has no handler for the {family!r} family")
