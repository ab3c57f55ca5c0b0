"""An installed model's folder (DESIGN.md "Model directory") and its states."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from llm_installer.check.checker import check_file_stem

GENERATED = (
    "Dockerfile",
    "model_info.json",
    "start.sh",
    "train.sh",
    "compose.yml",
    ".install_complete",
)
KEPT = (
    "lora",
    "checkpoints",
    "logs",
)  # the user's adapters, checkpoints and logs are never deleted


@dataclass(frozen=True)
class ModelPaths:
    root: Path

    @classmethod
    def for_model(cls, models_dir: Path, model_id: str) -> ModelPaths:
        return cls(models_dir / check_file_stem(model_id))

    @property
    def weights(self) -> Path:
        return self.root / "model"

    @property
    def info(self) -> Path:
        return self.root / "model_info.json"

    @property
    def complete_marker(self) -> Path:
        return self.root / ".install_complete"

    @property
    def install_log(self) -> Path:
        return self.root / "install.log"

    @property
    def dockerfile(self) -> Path:
        return self.root / "Dockerfile"

    @property
    def state(self) -> str:
        """absent | incomplete | complete."""
        if self.complete_marker.exists():
            return "complete"
        return "incomplete" if self.root.exists() else "absent"

    def create(self) -> None:
        for folder in (self.root, *(self.root / name for name in KEPT)):
            folder.mkdir(parents=True, exist_ok=True)

    def clean_generated(self, *, keep_weights: bool) -> None:
        """Remove what install writes (keeping lora/, checkpoints/, logs/ and, when asked, weights)."""
        for name in GENERATED:
            (self.root / name).unlink(missing_ok=True)
        if not keep_weights:
            shutil.rmtree(self.weights, ignore_errors=True)
