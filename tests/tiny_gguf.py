"""Tiny GGUF files written directly with the `gguf` package's GGUFWriter from a tiny Llama.

llama.cpp's convert_hf_to_gguf.py refuses a tokenizer trained on the spot ("BPE pre-tokenizer
was not recognized"), so the tensors and the byte-level BPE tokenizer are written here the way
the converter writes a Llama (q/k permuted for llama.cpp's rotary layout).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TENSOR_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def write_gguf(llama_dir: Path, target: Path, quantization: str = "F16") -> Path:
    """``llama_dir`` (a tiny LlamaForCausalLM folder) as one GGUF file in F32, F16 or Q8_0."""
    import gguf
    from safetensors.numpy import load_file
    from transformers import AutoTokenizer

    config = json.loads((llama_dir / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    writer = gguf.GGUFWriter(str(target), "llama")
    _write_hparams(writer, config, quantization)
    _write_tokenizer(writer, tokenizer, llama_dir)
    tensors = load_file(str(llama_dir / "model.safetensors"))
    for name, array in tensors.items():
        _add_tensor(
            writer,
            _gguf_name(name),
            _permuted(name, array.astype(np.float32), config),
            quantization,
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target


def _write_hparams(writer, config: dict, quantization: str) -> None:
    import gguf

    heads = config["num_attention_heads"]
    writer.add_name("tiny-llama")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_dimension_count(config["hidden_size"] // heads)
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(
        getattr(gguf.LlamaFileType, f"MOSTLY_{quantization}", gguf.LlamaFileType.ALL_F32)
    )


def _write_tokenizer(writer, tokenizer, llama_dir: Path) -> None:
    import gguf

    model = json.loads((llama_dir / "tokenizer.json").read_text())["model"]
    vocab = tokenizer.get_vocab()
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    special = set(tokenizer.all_special_tokens)
    types = [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(True)
    writer.add_chat_template(tokenizer.chat_template)


def _gguf_name(name: str) -> str:
    if name in TENSOR_NAMES:
        return TENSOR_NAMES[name]
    _, _, layer, rest = name.split(".", 3)
    module = rest.removesuffix(".weight")
    return f"blk.{layer}.{LAYER_NAMES[module]}.weight"


def _permuted(name: str, array: np.ndarray, config: dict) -> np.ndarray:
    """q_proj/k_proj rows reordered for llama.cpp's rotary layout (as convert_hf_to_gguf does)."""
    heads = {"q_proj": config["num_attention_heads"], "k_proj": config["num_key_value_heads"]}
    head_count = next((n for key, n in heads.items() if f".{key}." in name), None)
    if head_count is None:
        return array
    shape = array.shape
    return (
        array.reshape(head_count, 2, shape[0] // head_count // 2, *shape[1:])
        .swapaxes(1, 2)
        .reshape(shape)
    )


def _add_tensor(writer, name: str, array: np.ndarray, quantization: str) -> None:
    import gguf

    if array.ndim == 1 or quantization == "F32":
        writer.add_tensor(name, array)
    elif quantization == "F16":
        writer.add_tensor(name, array.astype(np.float16))
    else:
        kind = gguf.GGMLQuantizationType[quantization]
        writer.add_tensor(name, gguf.quants.quantize(array, kind), raw_dtype=kind)


def make_gguf_repo(llama_dir: Path, folder: Path, quantizations=("F16", "Q8_0")) -> Path:
    """A folder like a Hub GGUF repo: one file per quantization and a README, no config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    for quantization in quantizations:
        write_gguf(llama_dir, folder / f"tiny-llama-{quantization}.gguf", quantization)
    (folder / "README.md").write_text("# tiny-llama GGUF\n")
    for path in folder.iterdir():  # the container's non-root user reads a local folder
        path.chmod(0o644)
    return folder
