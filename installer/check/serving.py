"""Which detected families an image can serve: llm_runtime.contract's table, read as data.

The host reads only the contract (names, handler paths, smoke requests; no model code, no
torch). A family check detects but no handler serves is refused by install before any download,
with the reason; tests/unit/test_parity.py keeps the table and both registries in step.
"""

from __future__ import annotations

from llm_runtime import contract

# Detected families with no runtime handler of their own, and why install refuses them.
NOT_SERVED: dict[str, str] = {
    row.name: reason
    for row in contract.FAMILIES.values()
    if (reason := contract.refusal_reason(row.name)) is not None
}
# Families check resolves to another family's model: served by that family's handler.
SERVED_ON_BASE: dict[str, str] = {
    row.name: row.served_on for row in contract.FAMILIES.values() if row.served_on
}


def served_families() -> frozenset[str]:
    """The family names the image's runtime has a handler for: its own handlers, and the
    pipeline tasks the host detects, which the runtime's pipeline fallback serves."""
    return frozenset(contract.handled_families()) | frozenset(contract.pipeline_tasks())


def refusal_reason(family: str) -> str | None:
    """Why install cannot serve ``family``, or None when an image can."""
    return contract.refusal_reason(family)
