"""The host-side family contract: detect a model family from a ModelSource, and name its needs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from llm_installer.check.source import ModelSource


@dataclass(frozen=True)
class Detection:
    """What a detector found. ``family`` is the contract name shared with the runtime."""

    family: str
    library: str
    task: str
    architecture: str | None = None
    model_type: str | None = None
    capabilities: tuple[str, ...] = ()
    is_moe: bool = False
    is_reasoning: bool = False
    trust_remote_code: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)
    lora_target_modules: tuple[str, ...] = ()  # the family's LoRA targets; () = "all-linear"


@dataclass(frozen=True)
class Requirement:
    """One pip package with an optional note (e.g. "requires CUDA compilation")."""

    package: str
    note: str = ""

    def __str__(self) -> str:
        return f"{self.package} ({self.note})" if self.note else self.package


@dataclass(frozen=True)
class Requirements:
    """Packages grouped as the report shows them, plus warnings about hard installs."""

    base: tuple[Requirement, ...] = ()
    architecture: tuple[Requirement, ...] = ()
    optional: tuple[Requirement, ...] = ()
    warnings: tuple[str, ...] = ()


class Family(ABC):
    """A model family on the host side: one detector and one requirement spec."""

    name: ClassVar[str]
    """The family name written into model_info.json (the runtime's handler key)."""

    @abstractmethod
    def detect(self, source: ModelSource) -> Detection | None:
        """Return a Detection when ``source`` belongs to this family, else None."""

    @abstractmethod
    def requirements(self, source: ModelSource, detection: Detection) -> Requirements:
        """Return the packages this model needs inside its image."""
