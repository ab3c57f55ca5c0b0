"""Ctrl+C during training saves a resumable checkpoint; --resume continues with its history."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from training_helpers import color_qa, trainer_command, trainer_env, write_json

from llm_runtime.training.cli import main


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
