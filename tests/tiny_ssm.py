"""Tiny random state-space LLMs (Mamba, RWKV) and tiny LoRA adapters, made on the spot."""

from __future__ import annotations

import json
from pathlib import Path

from tiny_models import save_causal_lm, train_tokenizer


def make_tiny_state_space(path: Path, kind: str) -> Path:
    """A tiny random Mamba or RWKV causal LM with our trained tokenizer and chat template."""
    from transformers import MambaConfig, RwkvConfig

    tokenizer = train_tokenizer(thinking=False)
    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if kind == "mamba":
        config = MambaConfig(
            hidden_size=32,
            state_size=8,
            num_hidden_layers=2,
            architectures=["MambaForCausalLM"],
            **ids,
        )
    else:
        config = RwkvConfig(
            hidden_size=32, attention_hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            context_length=256, architectures=["RwkvForCausalLM"], **ids,
        )  # fmt: skip
    return save_causal_lm(path, config, tokenizer, seed=0)


def make_tiny_lora(base: Path, path: Path, *, base_name: str, seed: int = 1) -> Path:
    """A LoRA on ``base`` with non-zero weights (so it changes answers), naming ``base_name``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
        init_lora_weights=False,
    )  # fmt: skip
    get_peft_model(model, config).save_pretrained(path)
    adapter_config = json.loads((path / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = base_name
    (path / "adapter_config.json").write_text(json.dumps(adapter_config))
    return path
