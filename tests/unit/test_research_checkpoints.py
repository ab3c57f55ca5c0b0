"""Seed 002 (llm-arch-research): its raw checkpoint folder and its hf-proxy folder, built the way
the seed describes, get a clear refusal (exit 16) naming the way in, never a guess or exit 14;
the hf-proxy form that carries its code (auto_map) installs as custom code (see
tests/families/test_custom_code.py for that path at run time)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_installer.cli import app

MODEL_CONFIG = {
    "vocab_size": 40,
    "embed_dim": 16,
    "num_heads": 2,
    "num_layers": 1,
    "max_position_embeddings": 32,
    "dropout": 0.1,
}


def gpt_state_dict():
    """The project's GPT-2 parameter names (llm/models/gpt), tiny random tensors."""
    import torch

    d, v, p = MODEL_CONFIG["embed_dim"], MODEL_CONFIG["vocab_size"], 32
    state = {
        "_token_embeddings._embedding.weight": torch.randn(v, d),
        "_position_embeddings.embedding.weight": torch.randn(p, d),
        "_norm.weight": torch.ones(d),
        "_norm.bias": torch.zeros(d),
        "_linear.weight": torch.randn(v, d),
        "_linear.bias": torch.zeros(v),
    }
    for name in ("_q", "_k", "_v"):
        state[f"_decoders.0._heads.{name}.weight"] = torch.randn(d, d)
    return state


def raw_checkpoint(folder: Path) -> Path:
    """checkpoints/gpt-bpe/: model.pt + the experiment's JSON config + bpe_tokenizer.json."""
    import torch

    folder.mkdir(parents=True)
    torch.save(gpt_state_dict(), folder / "model.pt")
    config = {
        "bpe_tokenizer": "checkpoints/bpe_tokenizer.json",
        "model_config": MODEL_CONFIG,
        "model_weights": "checkpoints/gpt-bpe/model.pt",
    }
    (folder / "gpt_generate.json").write_text(json.dumps(config))
    tokenizer = {"vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}
    (folder / "bpe_tokenizer.json").write_text(json.dumps(tokenizer))
    return folder


def hf_proxy_folder(folder: Path, *, with_code: bool) -> Path:
    """What HFAdapter.save_pretrained writes: config.json (model_type gpt) + pytorch_model.bin."""
    import torch

    folder.mkdir(parents=True)
    config = {
        "model_type": "gpt",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": 40,
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 32,
        "intermediate_size": 64,
    }
    if with_code:
        config["architectures"] = ["HFGPTAdapter"]
        config["auto_map"] = {"AutoModelForCausalLM": "modeling_gpt.HFGPTAdapter"}
        (folder / "modeling_gpt.py").write_text("# the project's model code\n")
    (folder / "config.json").write_text(json.dumps(config))
    torch.save(gpt_state_dict(), folder / "pytorch_model.bin")
    return folder


def check(folder: Path):
    return CliRunner().invoke(app, ["check", str(folder)])


def test_raw_checkpoint_is_refused_with_the_way_in(tmp_path, llm_home):
    result = check(raw_checkpoint(tmp_path / "gpt-bpe"))
    assert result.exit_code == 16, result.output
    assert "llm-arch-research checkpoint" in result.output
    assert "--trust-remote-code" in result.output and "Traceback" not in result.output


def test_hf_proxy_folder_without_code_is_refused(tmp_path, llm_home):
    result = check(hf_proxy_folder(tmp_path / "hf-gpt", with_code=False))
    assert result.exit_code == 16, result.output
    assert "hf-proxy" in result.output and "auto_map" in result.output


@pytest.mark.parametrize("command", ["check", "install"])
def test_hf_proxy_folder_with_its_code_is_custom_code(tmp_path, llm_home, command):
    folder = hf_proxy_folder(tmp_path / "hf-gpt-code", with_code=True)
    args = [command, str(folder)] + (["--json"] if command == "check" else ["--yes"])
    result = CliRunner().invoke(app, args)
    if command == "check":
        assert result.exit_code == 0, result.output
        profile = json.loads(result.stdout)
        assert profile["family"] == "text-generation" and profile["trust_remote_code"] is True
    else:  # the opt-in is required, before anything is written
        assert result.exit_code == 25 and "--trust-remote-code" in result.output
