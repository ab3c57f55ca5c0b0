"""Ctrl+C and kills during training, --resume, and what a fresh run does with old checkpoints."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from training_helpers import (
    adapter_tensors,
    color_qa,
    random_qa,
    train,
    trainer_command,
    trainer_env,
    write_json,
)

from llm_runtime.training.cli import main
from llm_runtime.training.options import TrainOptions, TrainPaths
from llm_runtime.training.outputs import latest_complete_checkpoint
from llm_runtime.training.trainer import find_resume_checkpoint


def _wait_for_checkpoint(folder: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any((c / "autolearn_state.json").is_file() for c in folder.glob("checkpoint-*")):
            return
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


def test_ctrl_c_then_resume_continues_with_history(tiny_llama, tmp_path):
    data = write_json(tmp_path / "qa.json", color_qa(64))
    out = tmp_path / "out"
    args = [
        "--model",
        str(tiny_llama),
        "--data",
        str(data),
        "--output-dir",
        str(out),
        "--no-tensorboard",
        "--learning-rate",
        "5e-3",
        "--epochs",
        "4",
        "--eval-steps",
        "3",
        "--batch-size",
        "8",
        "--force-epochs",
    ]
    process = subprocess.Popen(
        trainer_command(*args),
        env=trainer_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for_checkpoint(out / "checkpoints", process)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    report = json.loads((out / "logs" / "training" / "training_report.json").read_text())
    assert report["stop_reason"] == "interrupted"
    stopped_at = report["global_step"]
    assert 0 < stopped_at < report["training_parameters"]["max_steps"]
    assert (out / "checkpoints" / f"checkpoint-{stopped_at}" / "optimizer.pt").is_file()
    assert not (out / "lora").exists()  # no half-trained adapter replaces anything

    assert main([*args, "--resume"]) == 0
    resumed = json.loads((out / "logs" / "training" / "training_report.json").read_text())
    assert resumed["paths"]["resumed_from"].endswith(f"checkpoint-{stopped_at}")
    assert resumed["global_step"] == resumed["training_parameters"]["max_steps"] == 32
    state = json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text())
    logged_steps = [e["step"] for e in state["log_history"] if "loss" in e]
    assert min(logged_steps) < stopped_at < max(logged_steps)
    evaluations = [e for e in state["log_history"] if "eval_loss" in e]
    autolearn = json.loads((out / "checkpoints" / "last" / "autolearn_state.json").read_text())
    assert len(autolearn["val_losses"]) == len(evaluations)
    history = json.loads((out / "logs" / "training_history.json").read_text())
    assert [run["stop_reason"] for run in history] == ["interrupted", "max_epochs"]
    assert (out / "lora" / "adapter_model.safetensors").is_file()
    (events,) = (out / "logs" / "training").glob("run-*")  # the resumed run continues its series
    assert len(list(events.glob("events.out.tfevents.*"))) == 2


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        trainer_command(*args),
        env=trainer_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_evaluations(folder: Path, process: subprocess.Popen, count: int) -> None:
    """Until a checkpoint's auto-learning state holds `count` evaluations."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for state in folder.glob("checkpoint-*/autolearn_state.json"):
            with contextlib.suppress(OSError, ValueError):  # being written
                if len(json.loads(state.read_text())["val_losses"]) >= count:
                    return
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint with {count} evaluations appeared")


def _run_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model", str(model), "--data", str(data), "--output-dir", str(out),
        "--no-tensorboard", "--batch-size", "8", *extra,
    ]  # fmt: skip


def test_ctrl_c_ends_a_non_stop_run_with_its_best_adapter_in_lora(tiny_llama, tmp_path):
    data = write_json(tmp_path / "qa.json", color_qa(64))
    out = tmp_path / "out"
    args = _run_args(tiny_llama, data, out, "--mode", "non-stop", "--eval-steps", "2")
    process = _start([*args, "--learning-rate", "5e-3"])
    _wait_for_evaluations(out / "checkpoints", process, 3)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output  # Ctrl+C is how non-stop mode ends
    report = json.loads((out / "logs" / "training" / "training_report.json").read_text())
    assert report["stop_reason"] == "interrupted" and report["final_metrics"]["evaluations"] >= 3
    best = out / "checkpoints" / "best"
    assert adapter_tensors(out / "lora") == adapter_tensors(best)
    assert (best / "source_checkpoint.txt").read_text().strip() == (
        f"checkpoint-{report['final_metrics']['best_step']}"
    )
    info = json.loads((out / "lora" / "adapter_info.json").read_text())
    assert info["stop_reason"] == "interrupted"
    assert "lora/" in output and "best weights" in output


def test_a_fresh_run_sets_the_earlier_runs_checkpoints_aside(tiny_llama, tmp_path):
    data = write_json(tmp_path / "qa.json", color_qa(32))
    out = tmp_path / "out"
    args = ("--batch-size", "4", "--eval-steps", "2", "--force-epochs")
    train(tiny_llama, data, out, *args, "--max-steps", "6")
    first_best = adapter_tensors(out / "checkpoints" / "best")
    report = train(tiny_llama, data, out, *args, "--max-steps", "4", "--learning-rate", "1e-2")
    checkpoints = out / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]
    assert (checkpoints / "last" / "source_checkpoint.txt").read_text().strip() == "checkpoint-4"
    state = json.loads((checkpoints / "last" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and report["global_step"] == 4
    resume = find_resume_checkpoint(
        TrainOptions(model_dir=tiny_llama, data=str(data), paths=_paths(out), resume=True)
    )
    assert resume == checkpoints / "checkpoint-4"
    plan = json.loads((checkpoints / "training_plan.json").read_text())
    assert plan["max_steps"] == 4 and plan["learning_rate"] == 1e-2
    (aside,) = checkpoints.glob("previous-*")
    assert (aside / "checkpoint-6").is_dir()
    assert adapter_tensors(aside / "best") == first_best  # the earlier best is kept
    assert json.loads((aside / "training_plan.json").read_text())["max_steps"] == 6
    assert len(list((out / "logs" / "training").glob("run-*"))) == 2  # one TensorBoard run each

    # A fresh run that fails before training (here: no data) moves nothing.
    missing = tmp_path / "missing.json"
    assert main(["--model", str(tiny_llama), "--data", str(missing), "--output-dir", str(out)]) == 1
    assert (checkpoints / "checkpoint-4").is_dir() and len(
        list(checkpoints.glob("previous-*"))
    ) == 1


def _paths(out: Path) -> TrainPaths:
    return TrainPaths.for_model(out / "model", out)


def test_sigkill_then_resume_continues_from_the_last_complete_checkpoint(tiny_llama, tmp_path):
    data = write_json(tmp_path / "qa.json", color_qa(64))
    out = tmp_path / "out"
    args = _run_args(tiny_llama, data, out, "--epochs", "4", "--eval-steps", "3")
    args += ["--force-epochs", "--learning-rate", "5e-3"]
    process = _start(args)
    _wait_for_evaluations(out / "checkpoints", process, 2)
    process.kill()  # no handler runs: whatever was being written stays half-written
    process.communicate(timeout=60)
    assert not (out / "logs" / "training" / "training_report.json").exists()
    # The kill may land between the Trainer's files and our autolearn_state.json: such a
    # folder is not a resume point.
    resume_point = latest_complete_checkpoint(out / "checkpoints")
    assert resume_point is not None
    before = json.loads((resume_point / "autolearn_state.json").read_text())

    assert main([*args, "--resume"]) == 0
    report = json.loads((out / "logs" / "training" / "training_report.json").read_text())
    assert report["paths"]["resumed_from"] == str(resume_point)
    assert report["global_step"] == report["training_parameters"]["max_steps"] == 32
    state = json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text())
    stopped_at = int(resume_point.name.split("-")[1])
    logged = [e["step"] for e in state["log_history"] if "loss" in e]
    assert min(logged) < stopped_at < max(logged)  # the killed run's history is kept
    after = json.loads((out / "checkpoints" / "last" / "autolearn_state.json").read_text())
    assert after["val_losses"][: len(before["val_losses"])] == before["val_losses"]
    assert len(after["val_losses"]) == len([e for e in state["log_history"] if "eval_loss" in e])
    history = json.loads((out / "logs" / "training_history.json").read_text())
    assert [run["stop_reason"] for run in history] == ["max_epochs"]


def test_resume_keeps_patience_and_the_best_loss(tiny_llama, tmp_path):
    """Resumed from a checkpoint two evaluations past the best, patience 3 stops at the next one."""
    data = write_json(tmp_path / "random.json", random_qa(24))
    out = tmp_path / "out"
    args = ("--learning-rate", "3e-2", "--lora-r", "32", "--epochs", "60", "--eval-steps", "3")
    args += ("--batch-size", "6", "--validation-split", "0.25", "--patience", "3")
    args += ("--min-evaluations", "99")  # only patience stops this run
    first = train(tiny_llama, data, out, *args)
    assert first["stop_reason"] == "early_stopping_patience"
    states = {
        c: json.loads((c / "autolearn_state.json").read_text())
        for c in (out / "checkpoints").glob("checkpoint-*")
    }
    checkpoint, saved = next((c, s) for c, s in states.items() if s["patience_counter"] == 2)
    step = int(checkpoint.name.split("-")[1])

    resumed = train(tiny_llama, data, out, *args, "--resume-from", str(checkpoint))
    assert resumed["stop_reason"] == "early_stopping_patience"
    assert resumed["global_step"] == step + 3  # one more evaluation without a new best
    assert (
        resumed["final_metrics"]["best_step"]
        == saved["best_step"]
        == first["final_metrics"]["best_step"]
    )
    assert resumed["final_metrics"]["best_val_loss"] == pytest.approx(saved["best_val_loss"])


def test_a_checkpoint_without_its_autolearn_state_is_not_a_resume_point(tmp_path):
    for step, files in ((3, ("trainer_state.json", "autolearn_state.json")),
                        (6, ("trainer_state.json", "autolearn_state.json")),
                        (9, ("trainer_state.json",)),  # killed before our callback wrote
                        (12, ("adapter_model.safetensors",))):  # killed mid-save  # fmt: skip
        folder = tmp_path / "kept" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        for name in files:
            (folder / name).write_text("{}")
    assert latest_complete_checkpoint(tmp_path / "kept") == tmp_path / "kept" / "checkpoint-6"
    # A run that keeps no autolearn state (none of its checkpoints has one): trainer_state.json
    # alone marks a complete checkpoint.
    for step in (2, 4):
        folder = tmp_path / "plain" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_text("{}")
    assert latest_complete_checkpoint(tmp_path / "plain") == tmp_path / "plain" / "checkpoint-4"
