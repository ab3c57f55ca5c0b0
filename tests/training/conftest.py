"""Tiny models and datasets for the trainer tests, generated once per session on the CPU.

The tokenizer is trained on the spot with the `tokenizers` library (byte-level BPE, so offsets
and decoding are exact) and given a ChatML chat template; the models are random-weight
LlamaForCausalLM, a 4-expert MixtralForCausalLM (fused experts) and a 4-expert Mixtral with
per-expert nn.Linear modules, laid out as the installer's model folder.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from training_helpers import COLORS, THINGS

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]
# Both tiny MoE models: 4 experts, 2 per token.
TINY_MOE = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
    "max_position_embeddings": 256,
    "tie_word_embeddings": False,
}


def corpus() -> list[str]:
    words = COLORS + THINGS + ["what", "is", "the", "color", "of", "answer", "question", "hello"]
    rng = random.Random(0)
    lines = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(400)]
    return lines + [
        f"What is the color of the {t}? The {t} is {c}." for t in THINGS for c in COLORS
    ]


def build_tokenizer(folder: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return tokenizer


def _save_model(root: Path, config, info: dict) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    folder = root / "model"
    tokenizer = build_tokenizer(folder)
    config.vocab_size = len(tokenizer)
    config.pad_token_id, config.bos_token_id = tokenizer.pad_token_id, tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    (root / "model_info.json").write_text(json.dumps(info), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    from transformers import LlamaConfig

    config = LlamaConfig(
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    info = {"model_id": "tests/tiny-llama", "family": "text-generation", "is_moe": False}
    return _save_model(tmp_path_factory.mktemp("tiny-llama"), config, info)


@pytest.fixture(scope="session")
def tiny_mixtral(tmp_path_factory) -> Path:
    from transformers import MixtralConfig

    config = MixtralConfig(**TINY_MOE)
    info = {"model_id": "tests/tiny-mixtral", "family": "text-generation", "is_moe": True}
    return _save_model(tmp_path_factory.mktemp("tiny-mixtral"), config, info)


@pytest.fixture(autouse=True)
def _offline_and_quiet(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_per_expert_moe(tmp_path_factory) -> Path:
    """A 4-expert Mixtral with one nn.Linear per expert projection (per_expert_moe.py)."""
    from per_expert_moe import PerExpertMixtralConfig, register

    register()
    config = PerExpertMixtralConfig(**TINY_MOE)
    info = {"model_id": "tests/tiny-per-expert-moe", "family": "text-generation", "is_moe": True}
    return _save_model(tmp_path_factory.mktemp("tiny-per-expert-moe"), config, info)
