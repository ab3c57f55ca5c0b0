"""Pure parts: auto-learning decisions, parameter tables, errors, atomic outputs, CLI error paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from training_helpers import autolearn_config

from llm_runtime.training import autolearn, board, params
from llm_runtime.training.autolearn import AutoLearnState
from llm_runtime.training.callbacks import scale_learning_rate
from llm_runtime.training.cli import main
from llm_runtime.training.errors import OutOfMemory, UnsupportedMethod, is_out_of_memory
from llm_runtime.training.model import check_method
from llm_runtime.training.options import TrainOptions, TrainPaths
from llm_runtime.training.outputs import replace_directory

config = autolearn_config


def run(pairs, cfg=None) -> list[autolearn.Decision]:
    state, cfg = AutoLearnState(), cfg or config()
    return [autolearn.evaluate(state, i, t, v, cfg) for i, (t, v) in enumerate(pairs)]


def test_improving_run_continues():
    decisions = run([(2.0 - 0.1 * i, 2.1 - 0.1 * i) for i in range(8)])
    assert all(d.action == "continue" for d in decisions)
    assert decisions[-1].trend_label.startswith("↓")


def test_patience_stops_after_n_evaluations_without_improvement():
    decisions = run(
        [(1.0, 1.0), (0.9, 0.95), (0.8, 0.96), (0.7, 0.97), (0.6, 0.98)], config(min_evaluations=99)
    )
    assert [d.action for d in decisions][-1] == "stop"
    assert decisions[-1].reason == "early_stopping_patience"
    assert decisions[-1].evaluation - 2 == 3  # the minimum was evaluation 2


@pytest.mark.parametrize(
    ("val_end", "expected"),
    [(2.0, "severe_overfitting"), (1.12, "moderate_overfitting")],
)
def test_rising_validation_with_a_gap_stops_by_severity(val_end, expected):
    steps = 6
    pairs = [(1.0 - 0.02 * i, 1.0 + (val_end - 1.0) * i / (steps - 1)) for i in range(steps)]
    decisions = run(pairs, config(patience=99))
    assert decisions[-1].reason == expected and decisions[-1].stop


def test_force_epochs_reports_but_never_stops():
    pairs = [(1.0 - 0.05 * i, 1.0 + 0.2 * i) for i in range(8)]
    decisions = run(pairs, config(enabled=False))
    assert all(d.action != "stop" for d in decisions)
    assert "auto-stop off" in decisions[-1].reason


def test_text_tasks_stop_on_perplexity_explosion_and_show_perplexity():
    cfg = config(task_type="text", perplexity_limit=100.0, perfect_loss=0.5, patience=99)
    state = AutoLearnState()
    autolearn.evaluate(state, 1, 3.0, 3.0, cfg)
    decision = autolearn.evaluate(state, 2, 3.0, 5.0, cfg)
    assert decision.reason == "perplexity_explosion"
    block = autolearn.console_block(
        decision, state, step=2, max_steps=10, elapsed="00:00:01", config=cfg
    )
    assert "Perplexity" in block and "Decision: 🛑 Stop" in block and "Patience" in block


def test_perfect_loss_stops():
    assert run([(0.005, 0.2)])[0].reason == "perfect_loss"


def test_linear_trend_is_the_least_squares_slope():
    assert autolearn.linear_trend([1, 2, 3, 4, 5, 6], window=5) == pytest.approx(1.0)
    assert autolearn.linear_trend([5.0], window=5) == 0.0


def test_state_round_trips_for_resume():
    state = AutoLearnState()
    autolearn.evaluate(state, 3, 1.0, 1.1, config())
    assert AutoLearnState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


@pytest.mark.parametrize(
    ("size_b", "rank"), [(0.5, 8), (2, 16), (5, 32), (8, 64), (20, 128), (70, 256)]
)
def test_rank_table(size_b, rank):
    assert params.lora_rank(size_b) == rank


def test_learning_rate_and_batch_rules():
    assert params.learning_rate("full", 1, 100, "medium") == pytest.approx(5e-5)
    assert params.learning_rate("lora", 8, 100, "medium") == pytest.approx(1e-4)
    assert params.learning_rate("lora", 20, 20_000, "slow") == pytest.approx(
        2e-4 * 0.5 * 0.3 * 1.5 * 0.5
    )
    assert params.learning_rate("lora", 1, 10, "fast") == pytest.approx(4e-4)
    assert [params.batch_size(gb, 1000) for gb in (4, 12, 20, 80)] == [1, 2, 4, 8]
    assert params.batch_size(80, 12) == 3


def test_plan_honours_overrides_and_modes(tmp_path):
    facts = params.ModelFacts(
        parameters=int(2e9), is_moe=False, context_length=4096, free_memory_gb=40, device="cuda"
    )
    paths = TrainPaths.for_model(tmp_path / "model")
    options = TrainOptions(
        model_dir=tmp_path, data="x", paths=paths, mode="non-stop", lora_r=4, circular=True
    )
    plan = params.make_plan(
        options,
        facts,
        method="lora",
        train_items=400,
        examples=400,
        task_type="text",
        max_seq_length=512,
    )
    assert (plan.lora_r, plan.lora_alpha) == (4, 8)
    assert plan.scheduler == "constant" and not plan.autolearn.enabled
    assert plan.epochs == 100  # circular: --max-circular-epochs
    assert plan.autolearn.patience == 10 and plan.autolearn.overfitting_threshold == pytest.approx(
        0.3
    )
    assert params.TrainPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_default_layout_is_beside_the_model_folder(tmp_path):
    paths = TrainPaths.for_model(tmp_path / "model")
    assert paths.lora == tmp_path / "lora" and paths.checkpoints == tmp_path / "checkpoints"
    assert paths.logs == tmp_path / "logs" / "training"
    assert TrainPaths.for_model(Path("/model")).lora == Path("/lora")


def test_quantized_methods_need_cuda():
    with pytest.raises(UnsupportedMethod, match="NVIDIA GPU"):
        check_method("qlora", False, "cpu", "adamw_torch")
    with pytest.raises(UnsupportedMethod, match="--use-8bit"):
        check_method("lora", True, "cpu", "adamw_torch")
    check_method("lora", False, "cpu", "adamw_torch")


def test_out_of_memory_message_lists_the_suggestions():
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    message = OutOfMemory("CUDA out of memory").render()
    assert "--batch-size 1" in message and "--method qlora" in message and "--lora-r 8" in message


def test_a_failed_write_never_replaces_a_good_adapter(tmp_path):
    target = tmp_path / "lora"
    target.mkdir()
    (target / "adapter_model.safetensors").write_text("good")

    def broken(folder: Path) -> None:
        (folder / "adapter_model.safetensors").write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replace_directory(broken, target)
    assert (target / "adapter_model.safetensors").read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["lora"]


def test_learning_rate_reduction_scales_optimizer_and_schedule():
    import torch

    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([weight], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    old, new = scale_learning_rate(optimizer, scheduler, 0.5)
    assert (old, new) == (1e-3, 5e-4)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_cli_errors_are_messages(tiny_llama, tmp_path, capsys):
    assert (
        main(
            [
                "--model",
                str(tiny_llama),
                "--data",
                "squad:train",
                "--output-dir",
                str(tmp_path),
                "--no-tensorboard",
            ]
        )
        == 1
    )
    assert "Cannot load the Hugging Face dataset" in capsys.readouterr().err
    assert (
        main(
            [
                "--model",
                str(tiny_llama),
                "--data",
                "x.json",
                "--method",
                "qlora",
                "--output-dir",
                str(tmp_path),
                "--no-tensorboard",
            ]
        )
        == 1
    )
    assert "needs an NVIDIA GPU" in capsys.readouterr().err


def test_tensorboard_only_without_logs_and_its_command(tmp_path):
    assert main(["--model", str(tmp_path / "model"), "--tensorboard-only", "6123"]) == 1
    command = board.tensorboard_command(tmp_path / "logs", 6123, "0.0.0.0")
    assert command[1:3] == ["-m", "tensorboard.main"] and "6123" in command and "0.0.0.0" in command


def test_circular_schedule_doubles_the_batch_and_finds_resume_positions():
    from llm_runtime.training import circular

    schedule = circular.stages(2, 8, 100)
    assert schedule == ((0, 2), (34, 4), (68, 8))
    assert circular.stages(4, 4, 10) == ((0, 4),)
    assert circular.stages(1, 8, 3) == ((0, 1), (1, 2), (2, 4))  # fewer cycles than stages
    assert [circular.batch_for(schedule, c) for c in (0, 33, 34, 67, 68, 99)] == [2, 2, 4, 4, 8, 8]
    short = ((0, 2), (2, 4))
    # 10 items, accumulation 2: cycles of ceil(5/2)=3, 3, then ceil(3/2)=2 updates
    assert circular.total_updates(short, 4, 10, 2) == 3 + 3 + 2 + 2
    assert circular.position(short, 10, 2, 0) == (0, 0)
    assert circular.position(short, 10, 2, 4) == (1, 2)
    assert circular.position(short, 10, 2, 6) == (2, 0)
    assert circular.position(short, 10, 2, 7) == (2, 2)


def test_circular_plan_starts_small_with_one_accumulation_step(tmp_path):
    facts = params.ModelFacts(
        parameters=int(1e8), is_moe=False, context_length=512, free_memory_gb=40, device="cpu"
    )
    paths = TrainPaths.for_model(tmp_path / "model")
    options = TrainOptions(
        model_dir=tmp_path, data="x", paths=paths, circular=True, max_circular_epochs=10
    )
    plan = params.make_plan(
        options, facts, method="lora", train_items=100, examples=110,
        task_type="instruction", max_seq_length=128,
    )  # fmt: skip
    assert plan.batch_stages == ((0, 2), (4, 4), (8, 8))
    assert (plan.batch_size, plan.gradient_accumulation_steps) == (2, 1)
    assert plan.max_steps == 4 * 50 + 4 * 25 + 2 * 13
    assert params.TrainPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_divergence_needs_a_real_rise_above_the_recent_level():
    from llm_runtime.training.callbacks import is_diverging

    assert is_diverging(float("nan"), [])
    assert is_diverging(float("inf"), [1.0, 1.0, 1.0])
    assert not is_diverging(9.0, [1.0, 1.0])  # too little history
    assert is_diverging(2.5, [1.0, 1.1, 0.9])
    assert not is_diverging(1.9, [1.0, 1.1, 0.9])
    # near zero, noise doubles the loss without meaning anything
    assert not is_diverging(0.3, [0.1, 0.12, 0.09])
    # one lucky batch does not make the next ordinary one look diverging
    assert not is_diverging(1.0, [1.0, 0.2, 1.1, 0.9])
