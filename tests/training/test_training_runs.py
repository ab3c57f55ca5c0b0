"""End-to-end runs of the trainer on tiny CPU models: LoRA, auto-stop, force-epochs, MoE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from training_helpers import adapter_tensors, color_qa, eval_losses, random_qa, train, write_json

SCALARS = {
    "loss/train",
    "loss/validation",
    "learning_rate",
    "overfitting_score",
    "gradient_norm",
    "tokens_per_second",
}


def scalar_tags(folder: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in folder.glob("run-*/events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    return tags


@pytest.fixture(scope="module")
def lora_run(tiny_llama, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-run")
    data = write_json(root / "qa.json", color_qa(64))
    report = train(
        tiny_llama,
        data,
        root / "out",
        "--learning-rate",
        "5e-3",
        "--lora-r",
        "16",
        "--epochs",
        "3",
        "--eval-steps",
        "4",
        "--batch-size",
        "8",
    )
    return root / "out", report


def test_lora_run_lowers_validation_loss_and_saves_the_adapter(lora_run):
    out, report = lora_run
    losses = [loss for _, loss in eval_losses(out)]
    assert losses[-1] < losses[0]
    assert report["stop_reason"] in ("max_epochs", "early_stopping_patience")
    assert report["final_metrics"]["best_val_loss"] <= min(losses) + 1e-6
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_info.json"):
        assert (out / "lora" / name).is_file()
    info = json.loads((out / "lora" / "adapter_info.json").read_text())
    assert info["lora_config"]["r"] == 16 and info["lora_config"]["alpha"] == 32
    assert info["dataset_info"]["format"] == "qa"
    for folder in ("best", "last"):
        assert (out / "checkpoints" / folder / "adapter_model.safetensors").is_file()
    assert list((out / "checkpoints").glob("checkpoint-*"))


def test_lora_run_writes_logs_history_and_plot(lora_run):
    out, report = lora_run
    assert scalar_tags(out / "logs" / "training") >= SCALARS
    history = json.loads((out / "logs" / "training_history.json").read_text())
    assert len(history) == 1 and history[0]["stop_reason"] == report["stop_reason"]
    assert (out / "logs" / "training_history.png").stat().st_size > 1000
    for field in (
        "model_id",
        "training_completed",
        "duration_hours",
        "final_metrics",
        "lora_config",
        "dataset_info",
    ):
        assert field in report


def test_serving_with_the_adapter_changes_the_output(lora_run, tiny_llama, tmp_path):
    """The runtime server loads lora/ (--lora, as start.sh passes it) and answers differently."""
    import httpx
    from runtime_server import start_server

    out, _ = lora_run
    for name in ("base", "tuned"):
        (tmp_path / name).mkdir()
    servers = {
        "base": start_server(tiny_llama, tmp_path / "base"),
        "tuned": start_server(tiny_llama, tmp_path / "tuned", "--lora", str(out / "lora")),
    }
    try:
        for server in servers.values():
            server.wait_ready()
        info = httpx.get(f"{servers['tuned'].url}/info", timeout=10).json()
        assert info["adapter"] == str(out / "lora")
        body = {"prompt": "What is the color of the sky?", "max_tokens": 12, "temperature": 0}
        texts = {
            name: httpx.post(f"{server.url}/generate", json=body, timeout=120).json()["text"]
            for name, server in servers.items()
        }
    finally:
        for server in servers.values():
            server.stop()
    assert texts["base"] != texts["tuned"], texts


def test_overfitting_stops_within_patience_and_restores_best(tiny_llama, tmp_path):
    data = write_json(tmp_path / "random.json", random_qa(24))
    patience = 3
    report = train(
        tiny_llama,
        data,
        tmp_path / "out",
        "--learning-rate",
        "3e-2",
        "--lora-r",
        "32",
        "--epochs",
        "60",
        "--eval-steps",
        "3",
        "--batch-size",
        "6",
        "--validation-split",
        "0.25",
        "--patience",
        str(patience),
    )
    assert report["stop_reason"] in (
        "early_stopping_patience",
        "moderate_overfitting",
        "severe_overfitting",
        "overfitting_gap_growing",
        "perfect_loss",
    )
    losses = eval_losses(tmp_path / "out")
    best_index = min(range(len(losses)), key=lambda i: losses[i][1])
    assert len(losses) - 1 - best_index <= patience + 1
    assert report["global_step"] < report["training_parameters"]["max_steps"]
    assert report["final_metrics"]["best_step"] == losses[best_index][0]
    best = (tmp_path / "out" / "checkpoints" / "best" / "adapter_model.safetensors").read_bytes()
    assert adapter_tensors(tmp_path / "out" / "lora") == adapter_tensors(
        tmp_path / "out" / "checkpoints" / "best"
    )
    assert best


def test_force_epochs_runs_every_step(tiny_llama, tmp_path):
    data = write_json(tmp_path / "random.json", random_qa(24))
    report = train(
        tiny_llama,
        data,
        tmp_path / "out",
        "--learning-rate",
        "3e-2",
        "--epochs",
        "8",
        "--eval-steps",
        "2",
        "--batch-size",
        "6",
        "--validation-split",
        "0.25",
        "--patience",
        "1",
        "--min-evaluations",
        "2",
        "--force-epochs",
    )
    assert report["stop_reason"] == "max_epochs"
    assert report["global_step"] == report["training_parameters"]["max_steps"] == 24


def test_moe_lora_trains_expert_adapters_with_aux_loss(tiny_mixtral, tmp_path):
    from safetensors import safe_open

    data = write_json(tmp_path / "qa.json", color_qa(32))
    out = tmp_path / "out"
    report = train(
        tiny_mixtral,
        data,
        out,
        "--learning-rate",
        "1e-2",
        "--epochs",
        "1",
        "--eval-steps",
        "2",
        "--batch-size",
        "4",
        "--train-router",
    )
    assert report["method"] == "moe-lora"
    moe = report["moe"]
    assert moe["aux_loss"] and moe["aux_loss"] > 0
    assert moe["adapter_parameters_saved"] == moe["adapter_parameters_expected"] > 0
    assert set(moe["expert_parameters"]) == {"experts.gate_up_proj", "experts.down_proj"}
    assert len(moe["expert_load"]["layer0"]) == 4
    with safe_open(str(out / "lora" / "adapter_model.safetensors"), "pt") as handle:
        keys = list(handle.keys())
    assert any("experts" in k and "lora_A" in k for k in keys)
    assert any("mlp.gate" in k for k in keys)
    assert {"moe/aux_loss", "loss/train"} <= scalar_tags(out / "logs" / "training")


def test_circular_grows_the_batch_and_resumes_mid_schedule(tiny_llama, tmp_path):
    data = write_json(tmp_path / "random.json", random_qa(24))
    out = tmp_path / "out"
    args = ("--circular", "--max-circular-epochs", "6", "--batch-size", "8")
    args += ("--validation-split", "0.25")
    report = train(tiny_llama, data, out, *args, "--force-epochs")
    # 18 training items: the batch doubles 2 → 4 → 8 over three stretches of two cycles.
    assert report["training_parameters"]["batch_stages"] == [[0, 2], [2, 4], [4, 8]]
    assert report["circular"]["batch_sizes"] == [
        {"cycle": 1, "batch_size": 2},
        {"cycle": 3, "batch_size": 4},
        {"cycle": 5, "batch_size": 8},
    ]
    assert (
        report["global_step"] == report["training_parameters"]["max_steps"] == 9 + 9 + 5 + 5 + 3 + 3
    )
    assert report["epochs_completed"] == pytest.approx(6)

    # Step 30 lies in cycle 5 (28 updates before it), so a resume continues there with batch 8.
    resumed = train(
        tiny_llama, data, out, *args, "--force-epochs",
        "--resume-from", str(out / "checkpoints" / "checkpoint-30"),
    )  # fmt: skip
    assert resumed["circular"]["batch_sizes"] == [{"cycle": 5, "batch_size": 8}]
    assert resumed["global_step"] == 34


def test_circular_stops_on_perfect_loss(tiny_llama, tmp_path):
    data = write_json(tmp_path / "qa.json", color_qa(16))
    report = train(
        tiny_llama, data, tmp_path / "out", "--circular", "--method", "full",
        "--learning-rate", "2e-3", "--batch-size", "4", "--validation-split", "0",
    )  # fmt: skip
    assert report["stop_reason"] == "perfect_loss"
    assert report["global_step"] < report["training_parameters"]["max_steps"]
    assert report["final_metrics"]["train_loss"] < 0.01


def test_diverging_loss_halves_the_learning_rate(tiny_llama, tmp_path, capsys):
    data = write_json(tmp_path / "qa.json", color_qa(32))
    report = train(
        tiny_llama, data, tmp_path / "out", "--method", "full", "--learning-rate", "0.5",
        "--batch-size", "2", "--max-steps", "24", "--validation-split", "0",
        "--mode", "non-stop",  # a constant schedule: only reductions change the rate
    )  # fmt: skip
    assert report["learning_rate_reductions"] >= 1
    assert "Loss is increasing rapidly" in capsys.readouterr().out
    rates = [e["learning_rate"] for e in _log_history(tmp_path / "out") if "learning_rate" in e]
    assert rates[-1] == pytest.approx(0.5 * 0.5 ** report["learning_rate_reductions"])


def _log_history(out: Path) -> list[dict]:
    state = json.loads((out / "checkpoints" / "last" / "trainer_state.json").read_text())
    return state["log_history"]


def test_moe_lora_on_per_expert_modules_without_the_router(tiny_per_expert_moe, tmp_path):
    """Experts as nn.Linear modules get ordinary LoRA per expert; the router stays frozen."""
    from safetensors import safe_open

    data = write_json(tmp_path / "qa.json", color_qa(32))
    out = tmp_path / "out"
    report = train(
        tiny_per_expert_moe, data, out, "--learning-rate", "1e-2", "--max-steps", "4",
        "--eval-steps", "2", "--batch-size", "4",
    )  # fmt: skip
    moe = report["moe"]
    assert report["method"] == "moe-lora" and moe["expert_parameters"] == []
    assert not moe["router_trained"] and moe["aux_loss"] and moe["aux_loss"] > 0
    assert {"w1", "w2", "w3"} <= set(report["lora_config"]["target_modules"])
    assert moe["adapter_parameters_saved"] == moe["adapter_parameters_expected"] > 0
    with safe_open(str(out / "lora" / "adapter_model.safetensors"), "pt") as handle:
        keys = list(handle.keys())
    for expert in range(4):
        assert any(f"experts.{expert}.w1.lora_A" in k for k in keys), keys
    assert not any("mlp.gate." in k for k in keys)  # no router weights without --train-router
    assert len(moe["expert_load"]["layer1"]) == 4
