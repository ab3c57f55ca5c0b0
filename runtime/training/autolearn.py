"""Auto-learning: decide after each evaluation whether to continue, watch or stop (seed 001 §5).

Pure logic over the loss history (no torch): validation trend by linear regression over the
last evaluations, train/validation gap and its trend, patience, minimum evaluations, severity,
perfect loss and (for text) perplexity explosion. The state is a plain dict-able value so it
survives a resume inside the checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from llm_runtime.training.params import AutoLearnConfig


@dataclass
class AutoLearnState:
    """Mutable history of one training run (and of the runs it resumed)."""

    steps: list[int] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    best_val_loss: float = math.inf
    best_step: int = 0
    best_evaluation: int = 0
    patience_counter: int = 0
    lr_reductions: int = 0
    stop_reason: str | None = None
    adjustments: list[dict] = field(default_factory=list)  # adaptive mode's changes

    @property
    def evaluations(self) -> int:
        return len(self.val_losses)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AutoLearnState:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Decision:
    """The outcome of one evaluation, as the console block and the report show it."""

    evaluation: int
    improved: bool
    trend: float
    trend_label: str
    gap: float
    gap_growing: bool
    severity: str
    action: str  # continue | watch | stop
    reason: str
    overfitting_score: float

    @property
    def stop(self) -> bool:
        return self.action == "stop"


def linear_trend(values: list[float], window: int) -> float:
    """Slope of the last `window` values by least squares; 0 until there are two points."""
    recent = values[-window:]
    if len(recent) < 2:
        return 0.0
    slope, _ = np.polyfit(np.arange(len(recent)), np.asarray(recent, dtype=float), 1)
    return float(slope)


def relative_gap(state: AutoLearnState, window: int) -> float:
    train = float(np.mean(state.train_losses[-window:]))
    val = float(np.mean(state.val_losses[-window:]))
    return (val - train) / train if train > 0 else 0.0


def _gap_series(state: AutoLearnState) -> list[float]:
    return [
        (v - t) / t if t > 0 else 0.0
        for t, v in zip(state.train_losses, state.val_losses, strict=True)
    ]


# The seed's decision matrix: (trend label, gap large/growing) → severity, action, reason.
TREND_LABELS = (
    ("rapidly_worsening", "↑↑ Rapidly worsening"),
    ("worsening", "↑ Worsening"),
    ("stable", "→ Stable"),
    ("improving", "↓ Improving"),
)


def classify_trend(slope: float, config: AutoLearnConfig) -> str:
    if slope < -config.trend_epsilon:
        return "improving"
    if slope <= config.trend_epsilon:
        return "stable"
    return "rapidly_worsening" if slope > 10 * config.trend_epsilon else "worsening"


def matrix(
    trend: str, gap: float, gap_growing: bool, config: AutoLearnConfig
) -> tuple[str, str, str]:
    """(severity, action, reason) from the decision matrix, before patience is applied."""
    over = gap > config.overfitting_threshold
    if trend == "improving":
        return "none", "continue", "improving"
    if trend == "stable":
        if gap_growing and gap > 2 * config.overfitting_threshold:
            return "moderate", "stop", "overfitting_gap_growing"
        return (
            ("mild", "watch", "gap_growing")
            if gap_growing and over
            else ("none", "continue", "stable")
        )
    if gap > config.severe_gap:
        return "severe", "stop", "severe_overfitting"
    if over:
        return "moderate", "stop", "moderate_overfitting"
    return "mild", "watch", "validation_rising"


def evaluate(
    state: AutoLearnState, step: int, train_loss: float, val_loss: float, config: AutoLearnConfig
) -> Decision:
    """Record one evaluation and decide (seed flowchart: best → patience → overfitting checks)."""
    state.steps.append(step)
    state.train_losses.append(train_loss)
    state.val_losses.append(val_loss)
    improved = val_loss < state.best_val_loss
    if improved:
        state.best_val_loss, state.best_step = val_loss, step
        state.best_evaluation, state.patience_counter = state.evaluations, 0
    else:
        state.patience_counter += 1
    window = config.trend_window
    slope = linear_trend(state.val_losses, window)
    gap = relative_gap(state, window)
    gap_growing = linear_trend(_gap_series(state), window) > config.trend_epsilon
    trend = classify_trend(slope, config)
    severity, action, reason = _decide(state, trend, gap, gap_growing, train_loss, val_loss, config)
    if action == "stop" and not config.enabled:
        action, reason = "continue", f"{reason} (auto-stop off)"
    if action == "stop":
        state.stop_reason = reason
    return Decision(
        state.evaluations,
        improved,
        slope,
        dict(TREND_LABELS)[trend],
        gap,
        gap_growing,
        severity,
        action,
        reason,
        overfitting_score=max(0.0, gap),
    )


def _decide(state, trend, gap, gap_growing, train_loss, val_loss, config) -> tuple[str, str, str]:
    if state.patience_counter >= config.patience:
        return "moderate", "stop", "early_stopping_patience"
    if train_loss < config.perfect_loss:
        return "none", "stop", "perfect_loss"
    if _perplexity_exploded(state, val_loss, config):
        return "severe", "stop", "perplexity_explosion"
    if state.evaluations < config.min_evaluations:
        return "none", "continue", "insufficient_data"
    return matrix(trend, gap, gap_growing, config)


def _perplexity_exploded(state: AutoLearnState, val_loss: float, config: AutoLearnConfig) -> bool:
    """Text tasks: perplexity jumped over the limit after having been under it."""
    limit = config.perplexity_limit
    return limit is not None and perplexity(state.best_val_loss) < limit < perplexity(val_loss)


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))


ACTION_LABELS = {
    "continue": "✅ Continue training",
    "watch": "⚠️ Watch (overfitting signs)",
    "stop": "🛑 Stop",
}


def console_block(
    decision: Decision,
    state: AutoLearnState,
    *,
    step: int,
    max_steps: int,
    elapsed: str,
    config: AutoLearnConfig,
) -> str:
    """The seed's per-evaluation block, plus the guide's perplexity line for text tasks."""
    train, val = state.train_losses[-1], state.val_losses[-1]
    lines = [
        f"📊 Evaluation #{decision.evaluation} - Steps: {step}/{max_steps} | ⏱️ Time: {elapsed}",
        f"├─ Train Loss: {train:.4f}{_delta(state.train_losses)}",
        f"├─ Val Loss: {val:.4f}{_delta(state.val_losses)} | 🎯 Best Val: {state.best_val_loss:.4f}"
        f" (step {state.best_step})",
    ]
    if config.task_type == "text":
        lines.append(f"├─ 📖 Perplexity: {perplexity(val):.1f}")
    lines += [
        f"├─ Trend: {decision.trend_label} (slope {decision.trend:+.4f})",
        f"├─ Gap: {val - train:.3f} ({decision.gap:.0%}){' ↗ growing' if decision.gap_growing else ''}",
        f"├─ ⏳ Patience: {state.patience_counter}/{config.patience}",
        f"└─ Decision: {ACTION_LABELS[decision.action]} ({decision.reason})",
    ]
    return "\n".join(lines)


def _delta(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    change = values[-1] - values[-2]
    return f" ({'↓' if change < 0 else '↑'} {abs(change):.4f})"
