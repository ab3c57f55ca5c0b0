"""What train.sh does with each model family: which trainer, which methods, or why not.

The rows are llm_runtime.contract's (the one table of families): the trainer refuses before
loading anything, and `check`'s training table (llm_installer.check.profile) says the same. Pure data:
importing it loads no torch.
"""

from __future__ import annotations

from llm_runtime.contract import (
    STATE_SPACE,
    TrainingSupport,
    trainable_families,
    training_support,
)
from llm_runtime.training.errors import TrainingError

__all__ = [
    "TRAINERS",
    "FamilyNotTrainable",
    "TrainingSupport",
    "require_trainable",
    "training_support",
]

TRAINERS: dict[str, TrainingSupport] = {
    family: training_support(family) for family in trainable_families()
}


class FamilyNotTrainable(TrainingError):
    title = "train.sh cannot fine-tune this model"
    hint = "What works: " + "; ".join(
        f"{name} ({row.data})" for name, row in TRAINERS.items() if name != STATE_SPACE
    )


def require_trainable(family: str, method: str | None) -> TrainingSupport:
    """Refuse a family (or a method) train.sh cannot do, before anything is loaded."""
    support = training_support(family)
    if not support.trainable:
        raise FamilyNotTrainable(f"{family}: {support.reason}.")
    if method is not None and method not in support.methods:
        raise FamilyNotTrainable(
            f"--method {method} does not apply to {family} models: {support.reason}. "
            f"Use --method {' or '.join(support.methods)}."
        )
    return support
