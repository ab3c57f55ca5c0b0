"""A tiny model that ships its own code (modeling_*.py + auto_map), as custom-code Hub repos do.

Its classes are in tests/fixtures/custom_code/; transformers has no "tinycustom" model type,
so it loads only with trust_remote_code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tiny_models import train_tokenizer

CODE = Path(__file__).parent / "fixtures" / "custom_code"
AUTO_MAP = {
    "AutoConfig": "configuration_tinycustom.TinyCustomConfig",
    "AutoModelForCausalLM": "modeling_tinycustom.TinyCustomForCausalLM",
}


def make_custom_code_model(path: Path, *, seed: int = 0) -> Path:
    """config.json with auto_map, the two code files, random weights and a BPE tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    path.mkdir(parents=True, exist_ok=True)
    for source in CODE.glob("*_tinycustom.py"):
        shutil.copy(source, path / source.name)
    tokenizer = train_tokenizer(thinking=False)
    config = {
        "architectures": ["TinyCustomForCausalLM"],
        "model_type": "tinycustom",
        "auto_map": AUTO_MAP,
        "vocab_size": len(tokenizer),
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "max_position_embeddings": 64,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    (path / "config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(seed)
    loaded = AutoConfig.from_pretrained(path, trust_remote_code=True)
    model = AutoModelForCausalLM.from_config(loaded, trust_remote_code=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
