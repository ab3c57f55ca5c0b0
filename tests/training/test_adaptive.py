"""Adaptive mode's decisions on synthetic loss histories, and their effect in a real run."""

from __future__ import annotations

import json

import pytest
from training_helpers import autolearn_config, random_qa, write_json

from llm_runtime.training import adaptive, autolearn, params
from llm_runtime.training.autolearn import AutoLearnState
from llm_runtime.training.cli import main


def config(**overrides) -> params.AutoLearnConfig:
    """Adaptive, and nothing but the adaptive rules in the way (no patience, wide threshold)."""
    adaptive_base = {"patience": 99, "overfitting_threshold": 0.5, "min_evaluations": 2}
    return autolearn_config(
        **{**adaptive_base, "perfect_loss": 0.001, "adaptive": True, **overrides}
    )


def replay(val_losses, *, train_gap=0.0, eval_steps=8, cfg=None):
    """Feed evaluations one by one, applying each change's interval as the callback does."""
    state, cfg = AutoLearnState(), cfg or config()
    changes = []
    for index, val in enumerate(val_losses):
        decision = autolearn.evaluate(state, index, val - train_gap, val, cfg)
        change = adaptive.adjust(
            state, decision, cfg, step=index, eval_steps=eval_steps, planned_eval_steps=8
        )
        changes.append(change)
        eval_steps = change.eval_steps if change else eval_steps
    return state, changes


def test_steady_improvement_raises_the_rate_with_a_cooldown_and_a_ceiling():
    state, changes = replay([2.0 - 0.1 * i for i in range(16)])
    raised = [i for i, c in enumerate(changes) if c]
    assert raised[0] == adaptive.IMPROVING_RUN  # needs IMPROVING_RUN better evaluations in a row
    assert all(b - a >= adaptive.COOLDOWN for a, b in zip(raised, raised[1:], strict=False))
    assert all(changes[i].lr_factor == adaptive.RAISE for i in raised)
    assert adaptive.learning_rate_scale(state) <= adaptive.MAX_SCALE
    assert len(raised) == 3  # 1.25 ** 3 < 2 < 1.25 ** 4: the ceiling stops further raises


def test_a_stall_lowers_the_rate_and_evaluates_more_often():
    losses = [2.0, 1.8, 1.6, 1.6, 1.61, 1.62, 1.63, 1.64, 1.65]
    state, changes = replay(losses)
    lowered = [(i, c) for i, c in enumerate(changes) if c]
    first, change = lowered[0]
    assert first == 3  # the first evaluation without a new best
    assert change.lr_factor == adaptive.LOWER and change.eval_steps == 4
    assert [i for i, _ in lowered] == [3, 6]  # then again after the cooldown
    assert lowered[1][1].eval_steps == 2
    assert state.adjustments[-1] == {
        "evaluation": 7, "step": 6, "lr_factor": 0.5, "eval_steps": 2,
        "reason": lowered[1][1].reason,
    }  # fmt: skip


def test_a_wide_gap_never_raises_the_rate():
    _, changes = replay([2.0 - 0.1 * i for i in range(10)], train_gap=0.5)
    assert not any(changes)  # improving, but validation sits far above training


def test_no_change_on_the_first_evaluations_or_on_a_stop():
    _, changes = replay([2.0, 2.5, 3.0])
    assert changes[:2] == [None, None]  # too early (MIN_EVALUATIONS), though it worsens
    assert changes[2].lr_factor == adaptive.LOWER
    state, cfg = AutoLearnState(), config(patience=1)
    for index, val in enumerate([1.0, 0.9, 0.8, 0.85]):
        decision = autolearn.evaluate(state, index, val, val, cfg)
    assert decision.stop
    assert adaptive.adjust(state, decision, cfg, step=3, eval_steps=8, planned_eval_steps=8) is None


def test_the_rate_has_a_floor():
    state, changes = replay([1.0, 0.9, 0.8] + [0.8 + 0.001 * i for i in range(1, 40)])
    assert adaptive.learning_rate_scale(state) >= adaptive.MIN_SCALE
    late = [c for c in changes[-6:] if c]
    assert all(c.lr_factor == 1.0 for c in late)  # at the floor only the interval may change


def test_adjustments_survive_a_resume_through_the_state_file():
    state, _ = replay([2.0, 1.8, 1.6, 1.6, 1.7])
    restored = AutoLearnState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored.adjustments == state.adjustments and restored.adjustments


def test_adaptive_run_changes_the_rate_and_the_evaluation_interval(tiny_llama, tmp_path):
    """Unlearnable data stalls the validation loss: the run lowers its rate and evaluates closer."""
    data = write_json(tmp_path / "random.json", random_qa(24))
    out = tmp_path / "out"
    code = main(
        [
            "--model", str(tiny_llama), "--data", str(data), "--output-dir", str(out),
            "--no-tensorboard", "--mode", "adaptive", "--learning-rate", "3e-2",
            "--batch-size", "6", "--validation-split", "0.25", "--epochs", "12",
            "--eval-steps", "4", "--force-epochs",
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "logs" / "training" / "training_report.json").read_text())
    changes = report["adaptive_adjustments"]
    lowered = next(c for c in changes if c["lr_factor"] < 1)
    state = json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text())
    log = state["log_history"]
    evals = [e["step"] for e in log if "eval_loss" in e]
    after = [s for s in evals if s > lowered["step"]]
    assert after[0] - lowered["step"] == lowered["eval_steps"] < 4  # closer evaluations
    rates = {e["step"]: e["learning_rate"] for e in log if "learning_rate" in e}
    before = max(s for s in rates if s <= lowered["step"])
    after = min(s for s in rates if s > lowered["step"])
    decay = _linear_decay(after, state) / _linear_decay(before, state)
    assert rates[after] / rates[before] == pytest.approx(0.5 * decay, rel=1e-3)
    assert report["learning_rate_reductions"] >= 1


def _linear_decay(step: int, state: dict) -> float:
    """Transformers' linear schedule after warm-up, proportional to the steps left; the rate
    logged at a step is the one that step trained with (the schedule advances after it)."""
    return state["max_steps"] - step + 1
