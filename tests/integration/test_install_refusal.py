"""install refuses, before any download, a family no image serves — with the reason, exit 25.

Every family check detects today is served (tests/unit/test_parity.py), so the case is a saved
check naming a family this runtime lacks (a check written by a newer llm-installer).
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from llm_installer.cli import app

runner = CliRunner()
REPO, WEIGHTS = "test-org/future-family", "model.safetensors"
CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 512, "vocab_size": 1000,
}  # fmt: skip


def test_unserved_family_is_refused_before_any_weight_byte(hub_env, llm_home):
    hub_env.add_repo(REPO, {"config.json": json.dumps(CONFIG), WEIGHTS: 20_000_000})
    assert runner.invoke(app, ["check", REPO]).exit_code == 0
    saved = llm_home / "logs" / "checks" / "test-org_future-family.json"
    saved.write_text(json.dumps({**json.loads(saved.read_text()), "family": "future-family"}))
    hub_env.reset_counters()
    result = runner.invoke(app, ["install", REPO, "--yes"])
    assert result.exit_code == 25, result.output
    assert "future-family model, which install cannot serve yet" in result.output
    assert "no handler for the 'future-family' family" in result.output
    assert "Nothing was downloaded" in result.output
    assert hub_env.bytes_for(REPO, WEIGHTS) == 0
    assert not any((llm_home / "models").iterdir())


def test_quant_on_a_model_that_is_not_gguf_is_refused(hub_env, llm_home):
    hub_env.add_repo(REPO + "-2", {"config.json": json.dumps(CONFIG), WEIGHTS: 1_000})
    result = runner.invoke(app, ["install", REPO + "-2", "--quant", "Q4_K_M", "--yes"])
    assert result.exit_code == 1 and "--quant picks a GGUF file" in result.output
    assert hub_env.bytes_for(REPO + "-2", WEIGHTS) < 1_000  # a header read by check, no download
