"""Adaptive mode (training guide: "dynamically adjusts parameters, monitors performance trends").

After each evaluation, from the validation history:
- stalling (no new best, or the decision matrix says watch): learning rate ×0.5 and evaluations
  twice as often, so the minimum is approached in smaller steps and caught closely before
  patience runs out;
- improving steadily (each of the last IMPROVING_RUN evaluations better, the gap far below the
  overfitting threshold): learning rate ×1.25, up to twice the planned rate, and the evaluation
  interval back toward the plan's;
- after a change COOLDOWN evaluations pass before the next, so its effect shows first.

Pure logic over AutoLearnState (the changes are kept there, so they survive a resume); the
callback applies them to the optimizer and to the Trainer's evaluation/save interval.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from llm_runtime.training.autolearn import AutoLearnState, Decision, classify_trend
from llm_runtime.training.params import AutoLearnConfig

LOWER, RAISE = 0.5, 1.25
MIN_SCALE, MAX_SCALE = 1 / 32, 2.0  # of the planned learning rate
COOLDOWN = 3  # evaluations from one change to the next
IMPROVING_RUN = 3
MIN_EVALUATIONS = 3  # the first evaluations are too noisy to act on


@dataclass(frozen=True)
class Adjustment:
    lr_factor: float
    eval_steps: int
    reason: str


def learning_rate_scale(state: AutoLearnState) -> float:
    """The product of the adjustments so far (1.0: the planned rate)."""
    scale = 1.0
    for change in state.adjustments:
        scale *= change["lr_factor"]
    return scale


def adjust(
    state: AutoLearnState,
    decision: Decision,
    config: AutoLearnConfig,
    *,
    step: int,
    eval_steps: int,
    planned_eval_steps: int,
) -> Adjustment | None:
    """The change to make after this evaluation, recorded in `state`; None: keep going as is."""
    if decision.stop or state.evaluations < MIN_EVALUATIONS or _cooling_down(state):
        return None
    scale = learning_rate_scale(state)
    if not decision.improved or decision.action == "watch":
        factor = LOWER if scale * LOWER >= MIN_SCALE else 1.0
        change = Adjustment(factor, max(1, eval_steps // 2), _stall_reason(decision))
    elif _improving_steadily(state, decision, config) and scale * RAISE <= MAX_SCALE:
        change = Adjustment(RAISE, min(planned_eval_steps, eval_steps * 2), "steady improvement")
    else:
        return None
    if change.lr_factor == 1.0 and change.eval_steps == eval_steps:
        return None
    state.adjustments.append(
        {
            "evaluation": state.evaluations,
            "step": step,
            "lr_factor": change.lr_factor,
            "eval_steps": change.eval_steps,
            "reason": change.reason,
        }
    )
    return change


def _cooling_down(state: AutoLearnState) -> bool:
    last = state.adjustments[-1]["evaluation"] if state.adjustments else None
    return last is not None and state.evaluations - last < COOLDOWN


def _stall_reason(decision: Decision) -> str:
    if decision.action == "watch":
        return f"overfitting signs ({decision.reason})"
    return "validation loss stalls" if decision.trend_label.startswith("→") else "no new best"


def _improving_steadily(state: AutoLearnState, decision: Decision, config: AutoLearnConfig) -> bool:
    recent = state.val_losses[-(IMPROVING_RUN + 1) :]
    steady = len(recent) == IMPROVING_RUN + 1 and all(b < a for a, b in itertools.pairwise(recent))
    trend = classify_trend(decision.trend, config)
    return steady and trend == "improving" and decision.gap < config.overfitting_threshold / 2
