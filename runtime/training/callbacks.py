"""TrainerCallbacks: auto-learning decisions, diverging-loss guard, TensorBoard scalars, Ctrl+C.

They only read the Trainer's logs and set its `control` flags; the training loop is the
Trainer's own.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import time
from collections import deque
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from llm_runtime.training import adaptive, autolearn
from llm_runtime.training.autolearn import AutoLearnState
from llm_runtime.training.outputs import write_json_atomically
from llm_runtime.training.params import AutoLearnConfig

STATE_FILE = "autolearn_state.json"
DIVERGENCE_WINDOW = 8
DIVERGENCE_FACTOR = 2.0
DIVERGENCE_MIN_RISE = 0.25  # absolute: near-zero losses double on noise alone
LR_REDUCTION = 0.5
DIVERGENCE_WARNING = """⚠️  Warning: Loss is increasing rapidly! (step {step}: {loss:.4f}, recent level {low:.4f})

Possible causes:
1. Learning rate too high
2. Bad data quality
3. Model instability

Automatically reducing learning rate: {old:.2e} → {new:.2e}"""


HOST_PATHS_ENV = "LLM_HOST_PATHS"  # {container path: host path}, set by the installer's train


def say(text: str) -> None:
    print(host_paths(text), flush=True)


def host_paths(text: str) -> str:
    """``text`` with container paths (/work/lora) as the host sees them, where mounts are known."""
    try:
        mounts = json.loads(os.environ.get(HOST_PATHS_ENV) or "{}")
    except ValueError:
        return text
    if not isinstance(mounts, dict) or not mounts:
        return text
    inside = "|".join(re.escape(str(k)) for k in sorted(mounts, key=len, reverse=True))
    pattern = rf"(?<![\w./-])({inside})(?![\w.-])"
    return re.sub(pattern, lambda match: str(mounts[match.group(1)]), text)


def scale_learning_rate(optimizer, scheduler, factor: float) -> tuple[float, float]:
    """Multiply the current and scheduled learning rates (LambdaLR schedules scale base_lrs)."""
    old = optimizer.param_groups[0]["lr"]
    for group in optimizer.param_groups:
        group["lr"] *= factor
    if scheduler is not None and hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
    return old, optimizer.param_groups[0]["lr"]


def format_elapsed(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


class ScalarWriter:
    """TensorBoard events with the spec's scalar names; a no-op when tensorboard is missing."""

    def __init__(self, log_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.writer = None
            say("⚠️  tensorboard is not installed: no events are written")
        else:
            self.writer = SummaryWriter(log_dir=str(log_dir))

    def scalar(self, name: str, value: float, step: int) -> None:
        if self.writer is not None and value is not None and math.isfinite(value):
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


class AutoLearningCallback(TrainerCallback):
    """After each evaluation: record, decide (seed 001 §5), print the block, maybe stop."""

    def __init__(self, config: AutoLearnConfig, state: AutoLearnState, writer: ScalarWriter):
        self.config, self.state, self.writer = config, state, writer
        self.recent_train: list[float] = []
        self.last_train = math.nan
        self.started = time.monotonic()
        self.decisions: list[autolearn.Decision] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.recent_train.append(float(logs["loss"]))
            self.last_train = float(logs["loss"])
            if args.eval_strategy == "no":
                self._perfect_without_validation(control)

    def _perfect_without_validation(self, control) -> None:
        """Without a validation set only the training loss can say the data is learnt."""
        if self.config.enabled and self.last_train < self.config.perfect_loss:
            self.state.stop_reason = "perfect_loss"
            control.should_training_stop = True
            say(
                f"🎯 Training loss {self.last_train:.4f} below {self.config.perfect_loss}: stopping"
            )

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not metrics or "eval_loss" not in metrics:
            return
        train = (
            sum(self.recent_train) / len(self.recent_train)
            if self.recent_train
            else self.last_train
        )
        self.recent_train = []
        if math.isnan(train):
            return
        decision = autolearn.evaluate(
            self.state, state.global_step, train, float(metrics["eval_loss"]), self.config
        )
        self.decisions.append(decision)
        self.writer.scalar("overfitting_score", decision.overfitting_score, state.global_step)
        say(
            autolearn.console_block(
                decision,
                self.state,
                step=state.global_step,
                max_steps=state.max_steps,
                elapsed=format_elapsed(time.monotonic() - self.started),
                config=self.config,
            )
        )
        if decision.stop:
            control.should_training_stop = True
        elif self.config.adaptive:
            self._adapt(args, state, decision, kwargs.get("optimizer"), kwargs.get("lr_scheduler"))

    def _adapt(self, args, state, decision, optimizer, scheduler) -> None:
        """Adaptive mode: apply the learning-rate and evaluation-interval change it decides."""
        change = adaptive.adjust(
            self.state,
            decision,
            self.config,
            step=state.global_step,
            eval_steps=state.eval_steps,
            planned_eval_steps=int(args.eval_steps),
        )
        if change is None or optimizer is None:
            return
        old = new = optimizer.param_groups[0]["lr"]
        if change.lr_factor != 1.0:
            old, new = scale_learning_rate(optimizer, scheduler, change.lr_factor)
        self.state.lr_reductions += change.lr_factor < 1.0
        _set_eval_interval(state, change.eval_steps)
        say(
            f"🔧 Adaptive mode, {change.reason}: learning rate {old:.2e} → {new:.2e}, "
            f"evaluating every {change.eval_steps} steps"
        )

    def on_train_begin(self, args, state, control, **kwargs):
        """A resumed adaptive run keeps the evaluation interval it had reached."""
        if self.config.adaptive and self.state.adjustments:
            _set_eval_interval(state, self.state.adjustments[-1]["eval_steps"])

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if folder.is_dir():
            write_json_atomically(folder / STATE_FILE, self.state.to_dict())
            say(f"💾 Saved checkpoint: {folder}")


def _set_eval_interval(state, steps: int) -> None:
    """Evaluate and save together (the best checkpoint is chosen at a save after an evaluation)."""
    state.eval_steps = state.save_steps = steps


def load_autolearn_state(checkpoint: Path | None) -> AutoLearnState:
    path = checkpoint / STATE_FILE if checkpoint else None
    if path is None or not path.is_file():
        return AutoLearnState()
    state = AutoLearnState.from_dict(json.loads(path.read_text(encoding="utf-8")))
    state.stop_reason = None
    return state


def is_diverging(loss: float, window) -> bool:
    """Not finite, or well above the recent typical loss (median: one lucky batch is no baseline)."""
    if not math.isfinite(loss):
        return True
    if len(window) < 3:
        return False
    typical = statistics.median(window)
    return loss > DIVERGENCE_FACTOR * typical and loss - typical > DIVERGENCE_MIN_RISE


class DivergenceCallback(TrainerCallback):
    """Loss far above its recent level (or not finite) → warn and halve the learning rate."""

    def __init__(self, autolearn_state: AutoLearnState):
        self.autolearn_state = autolearn_state
        self.window: deque[float] = deque(maxlen=DIVERGENCE_WINDOW)
        self.cooldown = 0

    def on_log(self, args, state, control, logs=None, optimizer=None, lr_scheduler=None, **kwargs):
        if not logs or "loss" not in logs or optimizer is None:
            return
        loss = float(logs["loss"])
        self.cooldown = max(0, self.cooldown - 1)
        if is_diverging(loss, self.window) and self.cooldown == 0:
            old, new = scale_learning_rate(optimizer, lr_scheduler, LR_REDUCTION)
            self.autolearn_state.lr_reductions += 1
            self.cooldown = DIVERGENCE_WINDOW
            low = statistics.median(self.window) if self.window else math.nan
            say(
                DIVERGENCE_WARNING.format(
                    step=state.global_step, loss=loss, low=low, old=old, new=new
                )
            )
        if math.isfinite(loss):
            self.window.append(loss)


class MetricsCallback(TrainerCallback):
    """The spec's TensorBoard scalars, tokens/s, MoE aux loss and per-expert load."""

    NAMES = {
        "loss": "loss/train",
        "eval_loss": "loss/validation",
        "learning_rate": "learning_rate",
        "grad_norm": "gradient_norm",
        "aux_loss": "moe/aux_loss",
        "eval_aux_loss": "moe/aux_loss_validation",
    }

    def __init__(self, writer: ScalarWriter, expert_monitor=None):
        self.writer, self.expert_monitor = writer, expert_monitor
        self.last_tokens: tuple[float, float] | None = None
        self.expert_load: dict[str, list[float]] = {}
        self.aux_losses: list[float] = []
        self.tokens_per_second: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        step = state.global_step
        for key, name in self.NAMES.items():
            if key in logs:
                self.writer.scalar(name, float(logs[key]), step)
        if "eval_loss" in logs:
            self.writer.scalar("perplexity", autolearn.perplexity(float(logs["eval_loss"])), step)
        if "aux_loss" in logs:
            self.aux_losses.append(float(logs["aux_loss"]))
        if "num_tokens" in logs and "loss" in logs:
            self._tokens_per_second(float(logs["num_tokens"]), step)
        if "loss" in logs:
            self._print_step(logs, state)
        if self.expert_monitor is not None and "loss" in logs:
            self._expert_load(step)

    def _tokens_per_second(self, tokens: float, step: int) -> None:
        now = time.monotonic()
        if (
            self.last_tokens is not None
            and now > self.last_tokens[1]
            and tokens > self.last_tokens[0]
        ):
            rate = (tokens - self.last_tokens[0]) / (now - self.last_tokens[1])
            self.tokens_per_second.append(rate)
            self.writer.scalar("tokens_per_second", rate, step)
        self.last_tokens = (tokens, now)

    def _print_step(self, logs: dict, state) -> None:
        speed = f" | {self.tokens_per_second[-1]:.0f} tok/s" if self.tokens_per_second else ""
        grad = f" | grad {logs['grad_norm']:.3f}" if "grad_norm" in logs else ""
        say(
            f"   step {state.global_step}/{state.max_steps} | epoch {state.epoch or 0:.2f} | "
            f"loss {logs['loss']:.4f} | lr {logs.get('learning_rate', 0):.2e}{grad}{speed}"
        )

    def _expert_load(self, step: int) -> None:
        shares = self.expert_monitor.shares()
        for layer, values in shares.items():
            for expert, share in enumerate(values):
                self.writer.scalar(f"moe/expert_load/{layer}/expert{expert}", share, step)
        self.expert_load = shares or self.expert_load

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.expert_load:
            spread = [
                f"{layer}: " + " ".join(f"{share:.0%}" for share in values)
                for layer, values in self.expert_load.items()
            ]
            aux = f" | aux loss {self.aux_losses[-1]:.4f}" if self.aux_losses else ""
            say(f"🧩 Expert load{aux}: " + "; ".join(spread))


class InterruptCallback(TrainerCallback):
    """Ctrl+C sets `requested`; at the end of the current step: save a checkpoint, stop."""

    def __init__(self):
        self.requested = False
        self.honoured = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
            self.honoured = True


class FinalStepCallback(TrainerCallback):
    """Evaluate and save at the last step, so `last/` and the best choice see the final weights."""

    def __init__(self, evaluate: bool):
        self.evaluate = evaluate

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_log = True
            control.should_save = True
            control.should_evaluate = self.evaluate
