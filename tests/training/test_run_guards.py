"""What protects a run and its outputs: out-of-memory messages, refused method combinations,
model_info.json found where the image keeps it, the family's LoRA targets, the MoE adapter
check before the swap, and the router aux loss on multimodal configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from training_helpers import color_qa, train, write_json

from llm_runtime.training import moe, outputs
from llm_runtime.training.cli import main
from llm_runtime.training.errors import UnsupportedMethod, is_out_of_memory
from llm_runtime.training.model import _enable_router_aux_loss, check_method, read_spec


def _real_error(action) -> BaseException:
    try:
        action()
    except BaseException as error:  # noqa: BLE001 - the error itself is what is tested
        return error
    raise AssertionError("no error raised")


def test_cpu_and_python_allocation_failures_count_as_out_of_memory():
    import torch

    cpu = _real_error(lambda: torch.empty(2**50, dtype=torch.uint8))
    assert "can't allocate memory" in str(cpu) and is_out_of_memory(cpu)
    assert is_out_of_memory(_real_error(lambda: bytearray(2**62)))  # MemoryError, no message

    def wrapped():
        try:
            torch.empty(2**50, dtype=torch.uint8)
        except RuntimeError as error:
            raise ValueError("loading failed") from error

    assert is_out_of_memory(_real_error(wrapped))
    assert not is_out_of_memory(ValueError("shapes do not match"))


def test_out_of_memory_outside_the_training_loop_is_a_message(tiny_llama, tmp_path, capsys):
    """A LoRA rank no memory holds: PEFT's allocation fails while wrapping the model."""
    data = write_json(tmp_path / "qa.json", color_qa(16))
    code = main(
        [
            "--model", str(tiny_llama), "--data", str(data), "--output-dir", str(tmp_path / "o"),
            "--no-tensorboard", "--lora-r", str(2**40),
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "Error: Out of memory" in err and "--batch-size 1" in err and "--lora-r 8" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("method", "advice"), [("full", "--method lora --use-8bit"), ("qlora", "--method qlora alone")]
)
def test_8bit_with_full_or_qlora_is_refused_on_any_device(method, advice):
    for device in ("cpu", "cuda"):
        with pytest.raises(UnsupportedMethod, match="cannot be combined") as refused:
            check_method(method, True, device, "adamw_torch")
        assert advice in str(refused.value)


def test_qlora_computes_in_the_training_dtype():
    import torch

    from llm_runtime.training.model import _quantization

    config = _quantization("qlora", torch.float16)
    assert config.load_in_4bit and config.bnb_4bit_compute_dtype == torch.float16


def _model_elsewhere(tiny_llama: Path, root: Path, info: dict) -> tuple[Path, Path]:
    """The image's layout: the model folder alone, model_info.json in another place."""
    model = root / "image" / "model"
    shutil.copytree(tiny_llama, model)
    info_file = write_json(root / "meta" / "model_info.json", info)
    return model, info_file


def test_model_info_from_the_environment_and_the_family_targets(tiny_llama, tmp_path, monkeypatch):
    info = {
        "model_id": "org/tiny-from-env",
        "family": "text-generation",
        "lora_target_modules": ["q_proj", "v_proj"],
    }
    model, info_file = _model_elsewhere(tiny_llama, tmp_path, info)
    assert read_spec(model).model_id == "model"  # nothing beside it
    monkeypatch.setenv("LLM_MODEL_INFO", str(info_file))
    assert read_spec(model).target_modules == ("q_proj", "v_proj")
    data = write_json(tmp_path / "qa.json", color_qa(16))
    report = train(model, data, tmp_path / "out", "--max-steps", "2", "--batch-size", "4")
    assert report["model_id"] == "org/tiny-from-env"
    assert report["lora_config"]["target_modules"] == ["q_proj", "v_proj"]
    config = json.loads((tmp_path / "out" / "lora" / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == {"q_proj", "v_proj"}

    override = train(
        model, data, tmp_path / "out2", "--max-steps", "2", "--target-modules", "all-linear"
    )
    config = json.loads((tmp_path / "out2" / "lora" / "adapter_config.json").read_text())
    assert override["lora_config"]["target_modules"] == ["all-linear"]
    leaves = {name.rsplit(".", 1)[-1] for name in config["target_modules"]}
    assert {"q_proj", "v_proj", "gate_proj", "down_proj"} <= leaves


def test_family_targets_missing_from_the_model_are_a_message(
    tiny_llama, tmp_path, monkeypatch, capsys
):
    info = {"model_id": "org/x", "family": "text-generation", "lora_target_modules": ["c_attn"]}
    model, info_file = _model_elsewhere(tiny_llama, tmp_path, info)
    monkeypatch.setenv("LLM_MODEL_INFO", str(info_file))
    data = write_json(tmp_path / "qa.json", color_qa(16))
    args = ["--model", str(model), "--data", str(data), "--output-dir", str(tmp_path / "o")]
    assert main([*args, "--no-tensorboard", "--max-steps", "1"]) == 1
    err = capsys.readouterr().err
    assert "c_attn" in err and "--target-modules" in err and "Traceback" not in err


def test_an_adapter_failing_its_check_never_replaces_lora(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    target = tmp_path / "lora"
    target.mkdir()
    (target / "adapter_model.safetensors").write_text("good")
    model = get_peft_model(
        torch.nn.Sequential(torch.nn.Linear(4, 4)), LoraConfig(r=2, target_modules=["0"])
    )
    with pytest.raises(moe.AdapterSizeMismatch, match="16 parameters saved, 999 expected"):
        outputs.save_adapter(
            model, target, {}, check=lambda folder: moe.check_adapter_size(folder, 999) and {}
        )
    assert (target / "adapter_model.safetensors").read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["lora"]

    outputs.save_adapter(
        model, target, {"run": 1}, check=lambda f: {"saved": moe.check_adapter_size(f, 16)}
    )
    assert json.loads((target / "adapter_info.json").read_text()) == {"run": 1, "saved": 16}


def test_router_aux_loss_is_set_where_trl_and_the_language_model_read_it():
    from transformers import Qwen3VLMoeConfig

    model = SimpleNamespace(config=Qwen3VLMoeConfig())  # only .config is read: no weights needed
    _enable_router_aux_loss(model, None)
    for config in (model.config, model.config.text_config):
        assert config.output_router_logits is True and config.router_aux_loss_coef > 0
    _enable_router_aux_loss(model, 0.05)
    assert model.config.router_aux_loss_coef == model.config.text_config.router_aux_loss_coef
    assert model.config.text_config.router_aux_loss_coef == 0.05
