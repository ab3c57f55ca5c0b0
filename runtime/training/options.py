"""What the user asked for (TrainOptions) and where the outputs go (TrainPaths)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

METHODS = ("lora", "qlora", "full", "moe-lora")
MODES = ("slow", "medium", "fast", "non-stop", "adaptive")
OPTIMIZERS = ("adamw_torch", "adamw_bnb_8bit", "paged_adamw_8bit", "adafactor")


@dataclass(frozen=True)
class TrainPaths:
    """The model directory's training layout (DESIGN.md): lora/, checkpoints/, logs/training/.

    In the image the model is /model, so the defaults are /lora, /checkpoints, /logs: the
    read-write mounts. training_history.json/.png live beside the TensorBoard events in logs/,
    because the model directory itself is not mounted in the container.
    """

    lora: Path
    checkpoints: Path
    logs: Path

    @classmethod
    def for_model(
        cls,
        model_dir: Path,
        output_dir: Path | None = None,
        *,
        lora: Path | None = None,
        checkpoints: Path | None = None,
        logs: Path | None = None,
    ) -> TrainPaths:
        root = output_dir or model_dir.resolve().parent
        return cls(
            lora=lora or root / "lora",
            checkpoints=checkpoints or root / "checkpoints",
            logs=logs or root / "logs" / "training",
        )

    @property
    def report(self) -> Path:
        return self.logs / "training_report.json"

    @property
    def history(self) -> Path:
        return self.logs.parent / "training_history.json"

    @property
    def plot(self) -> Path:
        return self.logs.parent / "training_history.png"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last"

    @property
    def plan(self) -> Path:
        return self.checkpoints / "training_plan.json"


@dataclass(frozen=True)
class TrainOptions:
    """Every command-line choice; None means "decide automatically"."""

    model_dir: Path
    data: str
    paths: TrainPaths
    method: str | None = None
    mode: str = "medium"
    dataset_format: str | None = None
    max_examples: int | None = None
    validation_split: float = 0.1
    epochs: float | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    learning_rate: float | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None
    max_seq_length: int | None = None
    optimizer: str = "adamw_torch"
    gradient_checkpointing: bool | None = None
    use_8bit: bool = False
    train_router: bool = False
    router_aux_loss_coef: float | None = None
    circular: bool = False
    max_circular_epochs: int = 100
    force_epochs: bool = False
    patience: int | None = None
    overfitting_threshold: float | None = None
    min_evaluations: int = 5
    eval_steps: int | None = None
    resume: bool = False
    resume_from: Path | None = None
    from_adapter: Path | None = None  # continue training this adapter (an installed adapter repo)
    tensorboard: bool = True
    tensorboard_port: int = 6006
    tensorboard_host: str = "127.0.0.1"
    seed: int = 42
    device: str = "auto"
    extra: dict = field(default_factory=dict)
