"""Automatic training parameters: tables from the training guide and Step 5, every value overridable."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from llm_runtime.training import circular
from llm_runtime.training.options import TrainOptions

# (upper bound in billions of parameters, LoRA rank): the training guide's table.
RANK_TABLE = ((1, 8), (3, 16), (7, 32), (13, 64), (30, 128), (math.inf, 256))
# (upper bound in GB of free memory, batch size): Step 5's get_optimal_batch_size.
BATCH_TABLE = ((8, 1), (16, 2), (24, 4), (math.inf, 8))
# Step 5's base is 5e-5 for whole-model training; adapters take the usual LoRA rate (MoE seed: 2e-4).
BASE_LR = {"full": 5e-5, "lora": 2e-4, "qlora": 2e-4, "moe-lora": 2e-4}
EFFECTIVE_BATCH = 16


@dataclass(frozen=True)
class Mode:
    lr_factor: float
    epochs: float
    evals_per_epoch: int
    auto_stop: bool
    adaptive: bool = False
    scheduler: str = "linear"


NON_STOP_EPOCHS = 1_000_000
MODES = {
    "slow": Mode(0.5, 5, 2, True),
    "medium": Mode(1.0, 3, 4, True),
    "fast": Mode(2.0, 1, 10, True),
    "non-stop": Mode(0.3, NON_STOP_EPOCHS, 4, False, scheduler="constant"),
    "adaptive": Mode(1.0, 3, 4, True, adaptive=True),
}


@dataclass(frozen=True)
class Thresholds:
    """Auto-learning thresholds of a task type (training guide, "Task-Specific Behavior")."""

    perfect_loss: float
    overfitting_threshold: float
    patience: int
    perplexity_limit: float | None


TASK_THRESHOLDS = {
    "instruction": Thresholds(0.01, 0.10, 3, None),
    "text": Thresholds(0.5, 0.20, 5, 100.0),
}
# Circular training repeats a small dataset: tolerate more before stopping.
CIRCULAR_TOLERANCE = {"patience": 2, "overfitting_threshold": 1.5}


@dataclass(frozen=True)
class AutoLearnConfig:
    enabled: bool
    patience: int
    overfitting_threshold: float
    min_evaluations: int
    perfect_loss: float
    perplexity_limit: float | None
    task_type: str
    adaptive: bool = False
    trend_window: int = 5
    trend_epsilon: float = 0.001
    severe_gap: float = 0.5


@dataclass(frozen=True)
class ModelFacts:
    """What the parameter choice needs to know about the model and the machine."""

    parameters: int
    is_moe: bool
    context_length: int
    free_memory_gb: float
    device: str

    @property
    def size_b(self) -> float:
        return self.parameters / 1e9


@dataclass(frozen=True)
class TrainPlan:
    """The resolved hyperparameters; saved with the checkpoints so a resume reuses them."""

    method: str
    mode: str
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: tuple[str, ...] | None
    learning_rate: float
    batch_size: int
    gradient_accumulation_steps: int
    epochs: float
    max_steps: int
    eval_steps: int
    max_seq_length: int
    optimizer: str
    gradient_checkpointing: bool
    scheduler: str
    autolearn: AutoLearnConfig
    batch_stages: circular.Stages = ()  # circular mode: ((first cycle, batch size), ...)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainPlan:
        fields = {**data, "autolearn": AutoLearnConfig(**data["autolearn"])}
        fields["batch_stages"] = tuple(tuple(stage) for stage in data.get("batch_stages", ()))
        fields["target_modules"] = (
            tuple(fields["target_modules"]) if fields["target_modules"] else None
        )
        return cls(**fields)


def from_table(table, value: float) -> int:
    return next(result for bound, result in table if value < bound)


def lora_rank(size_b: float) -> int:
    return from_table(RANK_TABLE, size_b)


def learning_rate(method: str, size_b: float, examples: int, mode: str) -> float:
    """Step 5's rule: halve above 7B, ×0.3 above 13B, ×1.5 above 10k examples; then the mode's factor."""
    rate = BASE_LR[method]
    rate *= 0.5 if size_b > 7 else 1.0
    rate *= 0.3 if size_b > 13 else 1.0
    rate *= 1.5 if examples > 10_000 else 1.0
    return rate * MODES[mode].lr_factor


def batch_size(free_memory_gb: float, train_items: int) -> int:
    """Step 5's memory table, never more than a quarter of the data (so an epoch has steps)."""
    return max(1, min(from_table(BATCH_TABLE, free_memory_gb), train_items // 4))


def accumulation(batch: int, train_items: int) -> int:
    """Aim at an effective batch of 16, keeping at least four optimizer steps per epoch."""
    return max(1, min(EFFECTIVE_BATCH // batch, train_items // (batch * 4)))


def default_seq_length(facts: ModelFacts) -> int:
    return max(16, min(2048, facts.context_length))


def text_block_length(total_tokens: int, max_seq_length: int) -> int:
    """Pack text into blocks of max_seq_length, smaller for tiny corpora so there are ≥16 blocks."""
    fitting = 2 ** int(math.log2(max(32, total_tokens // 16)))
    return max(16, min(max_seq_length, fitting))


def autolearn_config(options: TrainOptions, task_type: str, mode: Mode) -> AutoLearnConfig:
    base = TASK_THRESHOLDS[task_type]
    patience = options.patience or base.patience
    threshold = options.overfitting_threshold or base.overfitting_threshold
    if options.circular:
        patience = options.patience or int(patience * CIRCULAR_TOLERANCE["patience"])
        threshold = (
            options.overfitting_threshold or threshold * CIRCULAR_TOLERANCE["overfitting_threshold"]
        )
    return AutoLearnConfig(
        enabled=mode.auto_stop and not options.force_epochs,
        patience=patience,
        overfitting_threshold=threshold,
        min_evaluations=options.min_evaluations,
        perfect_loss=base.perfect_loss,
        perplexity_limit=base.perplexity_limit,
        task_type=task_type,
        adaptive=mode.adaptive,
    )


def make_plan(
    options: TrainOptions,
    facts: ModelFacts,
    *,
    method: str,
    train_items: int,
    examples: int,
    task_type: str,
    max_seq_length: int,
    family_targets: tuple[str, ...] | None = None,
) -> TrainPlan:
    """The plan; LoRA targets: --target-modules, else the family's (model_info.json), else
    every linear layer."""
    mode = MODES[options.mode]
    rank = options.lora_r or lora_rank(facts.size_b)
    epochs = options.epochs or (options.max_circular_epochs if options.circular else mode.epochs)
    stages: circular.Stages = ()
    if options.circular:
        stages = circular_stages(options, facts, train_items, int(math.ceil(epochs)))
        batch, accum = stages[0][1], options.gradient_accumulation_steps or 1
        planned = circular.total_updates(stages, int(math.ceil(epochs)), train_items, accum)
    else:
        batch = options.batch_size or batch_size(facts.free_memory_gb, train_items)
        accum = options.gradient_accumulation_steps or accumulation(batch, train_items)
        planned = math.ceil(steps_in(train_items, batch, accum) * min(epochs, NON_STOP_EPOCHS))
    total_steps = options.max_steps or planned
    steps_per_epoch = steps_in(train_items, batch, accum)
    eval_steps = options.eval_steps or max(1, round(steps_per_epoch / mode.evals_per_epoch))
    return TrainPlan(
        method=method,
        mode=options.mode,
        lora_r=rank,
        lora_alpha=options.lora_alpha or 2 * rank,
        lora_dropout=options.lora_dropout,
        target_modules=options.target_modules or family_targets,
        learning_rate=options.learning_rate
        or learning_rate(method, facts.size_b, examples, options.mode),
        batch_size=batch,
        gradient_accumulation_steps=accum,
        epochs=float(epochs),
        max_steps=total_steps,
        eval_steps=eval_steps,
        max_seq_length=max_seq_length,
        optimizer=options.optimizer,
        gradient_checkpointing=_checkpointing(options, facts, method),
        scheduler=mode.scheduler,
        autolearn=autolearn_config(options, task_type, mode),
        batch_stages=stages,
    )


def steps_in(train_items: int, batch: int, accum: int) -> int:
    """Optimizer updates in one epoch."""
    return max(1, math.ceil(train_items / (batch * accum)))


def circular_stages(
    options: TrainOptions, facts: ModelFacts, train_items: int, cycles: int
) -> circular.Stages:
    """Up to --batch-size (or the memory table's, at most half the data), from a quarter of it."""
    cap = options.batch_size or max(
        1, min(from_table(BATCH_TABLE, facts.free_memory_gb), train_items // 2)
    )
    return circular.stages(max(1, cap // 4), cap, cycles)


def _checkpointing(options: TrainOptions, facts: ModelFacts, method: str) -> bool:
    """On for QLoRA and whenever the weights take over a quarter of the free memory."""
    if options.gradient_checkpointing is not None:
        return options.gradient_checkpointing
    weights_gb = facts.parameters * 2 / 1e9
    return method == "qlora" or weights_gb > facts.free_memory_gb / 4
