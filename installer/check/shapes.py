"""The text model's shapes from its config (``text_config`` of multimodal configs).

What the memory formulas (``llm_installer.check.memory``) and the config count of parameters
(``llm_installer.check.params``) read: hidden size, layers, heads, KV heads, MLP width, vocabulary,
experts. Config keys differ between families; ``SHAPE_KEYS`` lists them, first found wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llm_runtime.moe_keys import EXPERT_COUNT_KEYS, EXPERT_SIZE_KEYS, EXPERTS_PER_TOKEN_KEYS

# config keys, first found wins; the decoder's keys first for encoder-decoders.
SHAPE_KEYS = {
    "hidden": ("hidden_size", "n_embd", "d_model", "dim"),
    "layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "decoder_layers": ("decoder_layers", "num_decoder_layers", "num_layers", "num_hidden_layers"),
    "heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "decoder_heads": ("decoder_attention_heads", "num_heads", "num_attention_heads"),
    "kv_heads": ("num_key_value_heads", "num_kv_heads", "n_kv_heads", "multi_query_group_num"),
    "head_dim": ("head_dim", "d_kv"),
    "intermediate": ("intermediate_size", "n_inner", "decoder_ffn_dim", "ffn_dim", "d_ff"),
    "vocab": ("vocab_size", "padded_vocab_size"),
    "positions": ("max_target_positions", "max_position_embeddings", "n_positions", "seq_length",
                  "max_sequence_length", "n_ctx"),
    "experts": EXPERT_COUNT_KEYS,
    "experts_per_token": EXPERTS_PER_TOKEN_KEYS,
    "expert_intermediate": EXPERT_SIZE_KEYS,
}  # fmt: skip
GENERATIVE_SUFFIXES = (
    "ForCausalLM", "LMHeadModel", "ForConditionalGeneration", "ForSpeechSeq2Seq",
    "ForSpeechToText", "ForSpeechToSpeech", "ForTextToSpeech",
)  # fmt: skip
GATED_ACTIVATIONS = ("silu", "swish", "swiglu", "geglu")
GATED_MODEL_TYPES = (
    "gemma",
    "gpt_oss",
    "granite",
    "deepseek",
    "qwen",
    "mixtral",
    "mistral",
    "llama",
    "phi3",
)
TIED_BY_DEFAULT = ("gemma", "gpt2", "bert", "t5", "bart", "whisper")


@dataclass(frozen=True)
class ModelShape:
    """The text model's shapes from its config (``text_config`` of multimodal configs)."""

    kind: str  # "decoder" | "encoder-decoder" | "encoder"
    model_type: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    max_positions: int | None
    tied_embeddings: bool
    gated_mlp: bool
    kv_per_token_layer: int
    encoder_positions: int = 0
    experts: int = 0
    experts_per_token: int = 0
    expert_intermediate: int = 0
    moe_layers: int = 0
    dense_layers: int = 0
    shared_intermediate: int = 0
    multimodal: bool = False

    @property
    def embedding_params(self) -> int:
        """Input embeddings plus an untied output head: what stays 16-bit when quantizing."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    def encoder_tokens(self, context: int) -> int:
        """Tokens the decoder cross-attends to: whisper's fixed audio frames, else the input."""
        if self.kind != "encoder-decoder":
            return 0
        return self.encoder_positions or context

    @property
    def routed_expert_params(self) -> int:
        return self.moe_layers * self.experts * 3 * self.hidden * self.expert_intermediate


def _first(config: Mapping[str, Any], keys: Iterable[str], default: Any = None) -> Any:
    for key in keys:
        value = config.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value)
    return default


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("text_config", "llm_config", "language_config"):
        nested = config.get(key)
        if isinstance(nested, dict) and _first(nested, SHAPE_KEYS["hidden"]):
            return nested
    return config


def model_kind(config: Mapping[str, Any]) -> str:
    architectures = config.get("architectures") or []
    generative = any(str(a).endswith(GENERATIVE_SUFFIXES) for a in architectures) or config.get(
        "is_decoder"
    )
    if not generative:
        return "encoder"
    return "encoder-decoder" if config.get("is_encoder_decoder") else "decoder"


def model_shape(config: Mapping[str, Any] | None) -> ModelShape | None:
    """Shapes of the (text) model, or None when the config does not describe a transformer."""
    if not config:
        return None
    kind = model_kind(config)
    text = text_config(config)
    hidden, vocab = _first(text, SHAPE_KEYS["hidden"]), _first(text, SHAPE_KEYS["vocab"], 0)
    layer_keys, head_keys = (
        (SHAPE_KEYS["decoder_layers"], SHAPE_KEYS["decoder_heads"])
        if kind == "encoder-decoder"
        else (SHAPE_KEYS["layers"], SHAPE_KEYS["heads"])
    )
    layers, heads = _first(text, layer_keys), _first(text, head_keys)
    if not (hidden and layers):
        return None
    heads = heads or 0
    kv_heads = _first(text, SHAPE_KEYS["kv_heads"], heads)
    head_dim = _first(text, SHAPE_KEYS["head_dim"], hidden // heads if heads else 0)
    model_type = str(text.get("model_type") or config.get("model_type") or "")
    experts = _first(text, SHAPE_KEYS["experts"], 0)
    return ModelShape(
        kind=kind,
        model_type=model_type,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate=_first(text, SHAPE_KEYS["intermediate"], 4 * hidden),
        vocab=vocab,
        max_positions=_first(text, SHAPE_KEYS["positions"]),
        tied_embeddings=_tied(config, text, model_type),
        gated_mlp=_gated(text, model_type),
        kv_per_token_layer=_kv_per_token_layer(text, heads, kv_heads, head_dim),
        encoder_positions=_first(text, ("max_source_positions",), 0)
        if kind == "encoder-decoder"
        else 0,
        experts=experts,
        experts_per_token=_first(text, SHAPE_KEYS["experts_per_token"], 0) if experts else 0,
        expert_intermediate=_first(
            text, SHAPE_KEYS["expert_intermediate"] + ("intermediate_size",), 0
        ),
        moe_layers=_moe_layers(text, layers) if experts else 0,
        dense_layers=layers - _sparse_layers(text, layers) if experts else layers,
        shared_intermediate=_shared_intermediate(text),
        multimodal=isinstance(config.get("vision_config"), dict),
    )


def _tied(config: Mapping[str, Any], text: Mapping[str, Any], model_type: str) -> bool:
    for cfg in (text, config):
        if isinstance(cfg.get("tie_word_embeddings"), bool):
            return cfg["tie_word_embeddings"]
    return model_type.startswith(TIED_BY_DEFAULT)


def _gated(text: Mapping[str, Any], model_type: str) -> bool:
    act = str(
        text.get("hidden_act")
        or text.get("hidden_activation")
        or text.get("activation_function")
        or ""
    )
    return act.startswith(GATED_ACTIVATIONS) or model_type.startswith(GATED_MODEL_TYPES)


def _kv_per_token_layer(text: Mapping[str, Any], heads: int, kv_heads: int, head_dim: int) -> int:
    """K and V elements cached per token and layer (MLA as transformers caches it)."""
    if text.get("kv_lora_rank"):
        rope, nope = text.get("qk_rope_head_dim", 0), text.get("qk_nope_head_dim", 0)
        return heads * (rope + nope + text.get("v_head_dim", head_dim))
    return 2 * kv_heads * head_dim


def _sparse_layers(text: Mapping[str, Any], layers: int) -> int:
    dense = int(text.get("first_k_dense_replace") or 0) + len(text.get("mlp_only_layers") or [])
    step = int(text.get("decoder_sparse_step") or text.get("moe_layer_freq") or 1)
    return (layers - dense) // max(step, 1)


def _moe_layers(text: Mapping[str, Any], layers: int) -> int:
    """Layers with routed experts, the multi-token-prediction layers (in the weights) included."""
    return _sparse_layers(text, layers) + int(text.get("num_nextn_predict_layers") or 0)


def _shared_intermediate(text: Mapping[str, Any]) -> int:
    if text.get("shared_expert_intermediate_size"):
        return int(text["shared_expert_intermediate_size"])
    shared = int(text.get("n_shared_experts") or 0)
    return shared * int(text.get("moe_intermediate_size") or 0)
