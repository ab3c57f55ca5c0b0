"""Resource estimates from a repo's file list and configs: parameters, memory, disk. No torch.

Parameters (``ParamCount.source``, best first): the Hub's safetensors counts (``hub``) → the
safetensors headers of the chosen weight files (``headers``) → ``model.safetensors.index.json``
``metadata.total_size`` ÷ bytes of the stored dtype (``index``) → a count from config shapes
for llama-like decoders (``config``) → weight file sizes ÷ bytes of the stored dtype
(``file-size``). Only ONE weight set is counted (``choose_weights``): repos that hold the same
weights as safetensors + .bin + consolidated .pt + onnx/flax/tf are never double-counted;
diffusers pipelines sum their component folders and ignore single-file checkpoints at the root.

MoE: ``active = total − routed_expert_params × (1 − experts_per_token / experts)``, where
``routed_expert_params = moe_layers × experts × 3 × hidden × expert_intermediate`` (gated MLPs,
from config shapes); shared experts, attention and embeddings count as always active.

Inference memory, per dtype, at a stated context (default ``min(max_position_embeddings, 4096)``,
batch 1)::

    weights     = P × bytes(dtype)       fp32 4, fp16/bf16 2, int8 1, int4 4.5/8
                  (int8/int4: embeddings and an untied lm_head stay 16-bit, as bitsandbytes does;
                   int4 carries one fp32 scale per 64 weights: 4 + 32/64 = 4.5 bits)
    kv_cache    = 2 × layers × kv_heads × head_dim × context × bytes(compute)
                  (+ the cross-attention cache of encoder-decoders over the encoder length;
                   MLA caches heads × (qk_nope + qk_rope + v_head) per token and layer)
    activations = context × (4 × hidden + 2 × intermediate) × bytes(compute)   (prefill, one layer)
                  or 20 % of the weights where the config gives no shapes (diffusion, vision)
    overhead    = fixed(device) + fraction(device) × weights
                  cuda: 1.0 GiB + 8 %  (CUDA context, cuBLAS workspace, caching allocator slack)
                  mps:  0.5 GiB + 8 %
                  cpu:  0.3 GiB + 5 %  (torch + transformers imported: 0.24 GiB measured; loader
                                         and allocator slack; calibrated by bench/check.py)
    total       = weights + kv_cache + activations + overhead

``bytes(compute)`` is 4 for fp32 and 2 otherwise (quantized weights compute in fp16).

Training memory, batch 1, sequence ``min(max_position_embeddings, 2048)``, gradient checkpointing::

    LoRA   weights P × bytes(fp16|fp32) frozen + adapters A × 16 B (fp32 weight, grad, Adam m, v)
    QLoRA  weights as int4 above + adapters A × 16 B; needs CUDA (bitsandbytes)
    full   P × 16 B (fp16 weights 2 + grads 2 + fp32 master 4 + Adam 8; fp32: 4 + 4 + 8)
    activations = seq × hidden × layers × b (checkpoints) + seq × (6 × hidden + 4 × intermediate) × b
                  (one layer recomputed) + seq × vocab × 10 B (logits in b, fp32 copy, fp32 grad)
    overhead as for inference.

Adapters: rank by model size (<1B 8, <3B 16, <7B 32, <13B 64, <30B 128, else 256) on every
attention and dense-MLP projection: ``A = rank × Σ (in + out)``; 1 % of P without shapes.

Disk: the chosen weight files + every non-weight file (configs, tokenizers) + 3 GiB for the
environment (image layers); ``repo_total`` is the whole repo, all formats included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llm_installer.source import ModelSource, RepoFile
from llm_installer.weights import (
    WeightSet,
    choose_weights,
    file_format,
    file_variant,
    is_weight_path,
)

GiB = 2**30
DEFAULT_CONTEXT = 4096
ENCODER_CONTEXT = 512
TRAIN_SEQUENCE = 2048
ENVIRONMENT_BYTES = 3 * GiB

INFERENCE_DTYPES = ("fp32", "fp16", "bf16", "int8", "int4")
DTYPE_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "int4": 4.5 / 8}
QUANTIZED = frozenset({"int8", "int4"})
EMBEDDING_BYTES = 2.0  # embeddings and lm_head stay 16-bit when the rest is quantized
UNKNOWN_ACTIVATION_FRACTION = 0.2


@dataclass(frozen=True)
class Overhead:
    """Runtime overhead on one kind of device: a fixed part plus a fraction of the weights."""

    fixed: int
    fraction: float

    def of(self, weights: int) -> int:
        return int(self.fixed + self.fraction * weights)


RUNTIME_OVERHEAD = {
    "cuda": Overhead(int(1.0 * GiB), 0.08),
    "mps": Overhead(int(0.5 * GiB), 0.08),
    "cpu": Overhead(int(0.3 * GiB), 0.05),
}

# The seed's rule: weight file size × coefficient, per dtype.
SEED_COEFFICIENTS = {"fp32": 2.0, "fp16": 1.5, "bf16": 1.5, "int8": 1.3, "int4": 1.2}
SEED_WEIGHT_SUFFIXES = (".bin", ".safetensors", ".pt", ".pth")

# Stored dtype names (config torch_dtype / dtype, safetensors header dtypes) → bytes per element.
STORED_BYTES = {
    "float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float64": 8,
    "float8_e4m3fn": 1, "float8_e5m2": 1, "int8": 1, "uint8": 1,
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip

GGUF_BITS = {
    "Q2_K": 2.63, "Q3_K_S": 3.5, "Q3_K_M": 3.91, "Q3_K_L": 4.27, "Q4_0": 4.55, "Q4_1": 5.0,
    "Q4_K_S": 4.58, "Q4_K_M": 4.85, "Q5_0": 5.54, "Q5_1": 6.0, "Q5_K_S": 5.54, "Q5_K_M": 5.69,
    "Q6_K": 6.56, "Q8_0": 8.5, "F16": 16.0, "BF16": 16.0, "F32": 32.0,
}  # fmt: skip


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
    "experts": ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"),
    "experts_per_token": ("num_experts_per_tok", "experts_per_token", "top_k_experts",
                          "moe_top_k", "num_experts_per_token"),
    "expert_intermediate": ("moe_intermediate_size", "expert_intermediate_size"),
}  # fmt: skip
GENERATIVE_SUFFIXES = (
    "ForCausalLM", "LMHeadModel", "ForConditionalGeneration", "ForSpeechSeq2Seq",
    "ForSpeechToText", "ForSpeechToSpeech", "ForTextToSpeech",
)  # fmt: skip
GATED_ACTIVATIONS = ("silu", "swish", "swiglu", "geglu")
GATED_MODEL_TYPES = ("gemma", "gpt_oss", "granite", "deepseek", "qwen", "mixtral", "mistral", "llama", "phi3")
TIED_BY_DEFAULT = ("gemma", "gpt2", "bert", "t5", "bart", "whisper")
LORA_RANKS = ((1e9, 8), (3e9, 16), (7e9, 32), (13e9, 64), (30e9, 128), (float("inf"), 256))
LORA_FALLBACK_FRACTION = 0.01
LOGIT_BYTES = 10  # logits in the compute dtype (2) + an fp32 copy (4) + its gradient (4)
TRAINING_ROWS = (("lora", "fp16"), ("lora", "fp32"), ("qlora", "int4"), ("full", "fp16"), ("full", "fp32"))
FULL_BYTES_PER_PARAM = 16


# ---------------------------------------------------------------------------- values


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


@dataclass(frozen=True)
class ParamCount:
    """The parameter count, where it came from and how (``method`` is for people)."""

    total: int
    source: str  # "hub" | "headers" | "index" | "config" | "file-size" | "mixed"
    method: str
    stored_bytes: float
    components: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class MoeCounts:
    experts: int
    experts_per_token: int
    routed_expert_params: int
    active: int
    method: str


@dataclass(frozen=True)
class InferenceEstimate:
    """Memory to serve the model in one dtype; ``total_for(device)`` adds that device's overhead."""

    dtype: str
    context_length: int
    weights: int
    kv_cache: int
    activations: int

    def overhead_for(self, device: str) -> int:
        return RUNTIME_OVERHEAD[device].of(self.weights)

    def total_for(self, device: str) -> int:
        return self.weights + self.kv_cache + self.activations + self.overhead_for(device)


@dataclass(frozen=True)
class TrainingEstimate:
    """Memory to fine-tune with one method; ``dtype`` is the compute dtype (int4: QLoRA's base)."""

    method: str  # "lora" | "qlora" | "full"
    dtype: str
    sequence_length: int
    weights: int
    trainable_params: int
    optimizer: int  # gradients + fp32 master weights + Adam states of the trainable params
    activations: int

    def overhead_for(self, device: str) -> int:
        return RUNTIME_OVERHEAD[device].of(self.weights)

    def total_for(self, device: str) -> int:
        return self.weights + self.optimizer + self.activations + self.overhead_for(device)


@dataclass(frozen=True)
class DiskEstimate:
    weights: int
    other_files: int
    repo_total: int
    environment: int = ENVIRONMENT_BYTES

    @property
    def model_files(self) -> int:
        return self.weights + self.other_files

    @property
    def total(self) -> int:
        return self.model_files + self.environment


@dataclass(frozen=True)
class Estimates:
    weights: WeightSet
    params: ParamCount
    shape: ModelShape | None
    moe: MoeCounts | None
    context_length: int
    inference: tuple[InferenceEstimate, ...]
    training: tuple[TrainingEstimate, ...]
    disk: DiskEstimate
    seed_rule: Mapping[str, int] = field(default_factory=dict)
    quantization: str | None = None

    def inference_for(self, dtype: str) -> InferenceEstimate:
        return next(e for e in self.inference if e.dtype == dtype)


# ---------------------------------------------------------------------------- entry point


def estimate(source: ModelSource, *, context_length: int | None = None) -> Estimates:
    """Every estimate for ``source``; ``context_length`` overrides the default context."""
    weights = choose_weights(source)
    config = main_config(source)
    shape = model_shape(config)
    params = count_parameters(source, weights, shape)
    context = context_length or default_context(shape)
    return Estimates(
        weights=weights,
        params=params,
        shape=shape,
        moe=moe_counts(params.total, shape),
        context_length=context,
        inference=tuple(estimate_inference(params.total, shape, d, context) for d in INFERENCE_DTYPES),
        training=tuple(estimate_training(params.total, shape, m, d) for m, d in TRAINING_ROWS),
        disk=estimate_disk(source, weights),
        seed_rule=seed_rule_estimate(seed_weight_bytes(source)),
        quantization=quantization_label(config),
    )


def main_config(source: ModelSource) -> dict[str, Any] | None:
    """The root model config: config.json, else a validated alternative, else None."""
    from llm_installer.configs import main_config_path

    path = main_config_path(source.configs)
    return source.config(path) if path else None


# ---------------------------------------------------------------------------- shapes


def _first(config: Mapping[str, Any], keys: Iterable[str], default: Any = None) -> Any:
    for key in keys:
        value = config.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value)
    return default


def _text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("text_config", "llm_config", "language_config"):
        nested = config.get(key)
        if isinstance(nested, dict) and _first(nested, SHAPE_KEYS["hidden"]):
            return nested
    return config


def model_kind(config: Mapping[str, Any]) -> str:
    architectures = config.get("architectures") or []
    generative = any(str(a).endswith(GENERATIVE_SUFFIXES) for a in architectures) or config.get("is_decoder")
    if not generative:
        return "encoder"
    return "encoder-decoder" if config.get("is_encoder_decoder") else "decoder"


def model_shape(config: Mapping[str, Any] | None) -> ModelShape | None:
    """Shapes of the (text) model, or None when the config does not describe a transformer."""
    if not config:
        return None
    kind = model_kind(config)
    text = _text_config(config)
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
        encoder_positions=_first(text, ("max_source_positions",), 0) if kind == "encoder-decoder" else 0,
        experts=experts,
        experts_per_token=_first(text, SHAPE_KEYS["experts_per_token"], 0) if experts else 0,
        expert_intermediate=_first(text, SHAPE_KEYS["expert_intermediate"] + ("intermediate_size",), 0),
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
    act = str(text.get("hidden_act") or text.get("hidden_activation") or text.get("activation_function") or "")
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


def default_context(shape: ModelShape | None) -> int:
    """min(max_position_embeddings, 4096) (512 for encoders that state none); 0 without shapes."""
    if shape is None:
        return 0
    unknown = DEFAULT_CONTEXT if shape.kind != "encoder" else ENCODER_CONTEXT
    return min(shape.max_positions or unknown, DEFAULT_CONTEXT)


# ---------------------------------------------------------------------------- parameters


def config_param_count(shape: ModelShape | None, config: Mapping[str, Any] | None = None) -> int | None:
    """Parameters of a llama-like decoder (dense or MoE) from its shapes; None for other kinds."""
    if shape is None or shape.kind != "decoder" or shape.multimodal or not (shape.heads and shape.vocab):
        return None
    text = _text_config(config or {})
    h = shape.hidden
    attention = _attention_params(shape, text)
    dense_mlp = (3 if shape.gated_mlp else 2) * h * shape.intermediate
    moe_mlp = shape.routed_expert_params // max(shape.moe_layers, 1) + h * shape.experts
    moe_mlp += 3 * h * shape.shared_intermediate
    norms = 2 * h
    return (
        shape.dense_layers * (attention + dense_mlp + norms)
        + shape.moe_layers * (attention + moe_mlp + norms)
        + shape.embedding_params
        + h
    )


def _attention_params(shape: ModelShape, text: Mapping[str, Any]) -> int:
    h, heads = shape.hidden, shape.heads
    if text.get("kv_lora_rank"):  # multi-head latent attention (DeepSeek V2/V3)
        q_rank, kv_rank = int(text.get("q_lora_rank") or 0), int(text["kv_lora_rank"])
        rope, nope = int(text.get("qk_rope_head_dim", 0)), int(text.get("qk_nope_head_dim", 0))
        v = int(text.get("v_head_dim", shape.head_dim))
        q = h * q_rank + q_rank * heads * (rope + nope) if q_rank else h * heads * (rope + nope)
        return q + h * (kv_rank + rope) + kv_rank * heads * (nope + v) + heads * v * h
    q_out, kv_out = heads * shape.head_dim, shape.kv_heads * shape.head_dim
    return h * q_out + 2 * h * kv_out + q_out * h


def count_parameters(source: ModelSource, weights: WeightSet, shape: ModelShape | None) -> ParamCount:
    """The best available count: Hub → headers → index → config → file sizes.

    Checkpoints stored quantized try the config's shapes before the index, whose byte total
    mixes 4-bit and 16-bit tensors.
    """
    config = main_config(source)
    stored = stored_bytes(config, source)
    if source.config("model_index.json") is not None and weights.components:
        return _component_params(source, weights)
    quant = _quant_bits(config)
    counters = [
        lambda: _hub_count(source, quant),
        lambda: _header_count(source, weights.files, quant),
        lambda: _index_count(source, weights, stored),
        lambda: _config_count(shape, config),
    ]
    if quant:
        counters[2], counters[3] = counters[3], counters[2]
    for counter in counters:
        found = counter()
        if found is not None:
            return ParamCount(found[0], found[1], found[2], stored)
    return ParamCount(_size_params(weights.files, stored), "file-size", _size_method(stored), stored)


def stored_bytes(config: Mapping[str, Any] | None, source: ModelSource) -> float:
    """Bytes per parameter as stored: quantization bits, config dtype, else the commonest dtype."""
    bits = _quant_bits(config)
    if bits:
        return bits / 8
    for cfg in (config or {}, _text_config(config or {})):
        dtype = cfg.get("torch_dtype") or cfg.get("dtype")
        if isinstance(dtype, str) and dtype in STORED_BYTES:
            return STORED_BYTES[dtype]
    counts: dict[str, int] = dict(source.hub_params)
    for per_file in source.tensor_params.values():
        for dtype, n in per_file.items():
            counts[dtype] = counts.get(dtype, 0) + n
    common = max(counts, key=lambda d: counts[d], default=None)
    return STORED_BYTES.get(common, 4) if common else 4


def _quant_bits(config: Mapping[str, Any] | None) -> int | None:
    quant = (config or {}).get("quantization_config")
    if not isinstance(quant, dict):
        return None
    if quant.get("bits"):
        return int(quant["bits"])
    if quant.get("load_in_4bit") or quant.get("quant_method") == "mxfp4":
        return 4
    if quant.get("load_in_8bit") or quant.get("quant_method") == "fp8":
        return 8
    return None


def quantization_label(config: Mapping[str, Any] | None) -> str | None:
    """'gptq 4-bit', 'fp8', 'mxfp4' … for checkpoints stored quantized, else None."""
    quant = (config or {}).get("quantization_config")
    if not isinstance(quant, dict):
        return None
    method = str(quant.get("quant_method") or "quantized")
    bits = _quant_bits(config)
    return f"{method} {bits}-bit" if bits and method not in ("fp8", "mxfp4") else method


def _unpacked(counts: Mapping[str, int], quant_bits: int | None) -> int:
    """Element counts → parameters: packed 4-bit weights hold 8 per I32 and 2 per U8."""
    per_element = {"I32": 32 // quant_bits, "U8": 8 // quant_bits} if quant_bits and quant_bits < 8 else {}
    return sum(n * per_element.get(dtype, 1) for dtype, n in counts.items())


Found = tuple[int, str, str]


def _hub_count(source: ModelSource, quant: int | None) -> Found | None:
    if not source.hub_params:
        return None
    return _unpacked(source.hub_params, quant), "hub", "the Hub's safetensors metadata"


def _header_count(source: ModelSource, files: tuple[RepoFile, ...], quant: int | None) -> Found | None:
    if not files or any(f.path not in source.tensor_params for f in files):
        return None
    total = sum(_unpacked(source.tensor_params[f.path], quant) for f in files)
    return total, "headers", f"safetensors headers of {len(files)} file(s)"


INDEX_FILES = {"safetensors": "model.safetensors.index.json", "bin": "pytorch_model.bin.index.json"}


def _index_count(source: ModelSource, weights: WeightSet, stored: float) -> Found | None:
    name = INDEX_FILES.get(weights.format)
    index = source.config(name) if name else None
    total_size = ((index or {}).get("metadata") or {}).get("total_size")
    if not isinstance(total_size, (int, float)) or total_size <= 0:
        return None
    return int(total_size / stored), "index", f"{name} total_size ÷ {stored:g} bytes per parameter"


def _config_count(shape: ModelShape | None, config: Mapping[str, Any] | None) -> Found | None:
    count = config_param_count(shape, config)
    return (count, "config", "counted from the config's shapes (llama-like decoder)") if count else None


def _size_method(stored: float) -> str:
    return f"weight file sizes ÷ {stored:g} bytes per parameter"


def _size_params(files: Iterable[RepoFile], stored: float) -> int:
    return sum(_file_params(f, stored) for f in files)


_VARIANT_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def _file_params(file: RepoFile, stored: float) -> int:
    """Parameters in one file from its size: GGUF by its quant type, variants by their dtype."""
    variant = file_variant(file)
    if file.name.endswith(".gguf") and variant in GGUF_BITS:
        return int(file.size * 8 / GGUF_BITS[variant])
    return int(file.size / STORED_BYTES.get(_VARIANT_DTYPES.get(variant or "", ""), stored))


def _component_params(source: ModelSource, weights: WeightSet) -> ParamCount:
    """Diffusers: the sum over component folders, each from its headers or its file sizes."""
    parts, sources = [], set()
    for folder in weights.components:
        files = weights.in_folder(folder)
        found = _header_count(source, files, None) or _component_size_count(source, folder, files)
        parts.append((folder, found[0]))
        sources.add(found[1])
    kind = sources.pop() if len(sources) == 1 else "mixed"
    method = f"sum of {len(parts)} components ({'safetensors headers' if kind == 'headers' else kind})"
    return ParamCount(sum(n for _, n in parts), kind, method, _component_stored_bytes(source, ""), tuple(parts))


def _component_size_count(source: ModelSource, folder: str, files: tuple[RepoFile, ...]) -> Found:
    """A component's count from sizes; a 16-bit variant, whose name states its dtype, is best.

    Component configs' ``torch_dtype`` is unreliable (SDXL's says float16 beside fp32 files).
    """
    candidates = [f for f in source.files if f.folder == folder and is_weight_path(f.path)]
    for variant in ("fp16", "bf16"):
        group = [f for f in candidates if file_variant(f) == variant and file_format(f) == "safetensors"]
        group = group or [f for f in candidates if file_variant(f) == variant]
        if group:
            return _size_params(group, 2), "file-size", f"{variant} variant file sizes ÷ 2 bytes"
    stored = _component_stored_bytes(source, folder)
    return _size_params(files, stored), "file-size", _size_method(stored)


def _component_stored_bytes(source: ModelSource, folder: str) -> float:
    """A component's dtype: its config's, else the Hub's when it lists one dtype, else fp32."""
    config = source.config(f"{folder}/config.json") or {}
    dtype = config.get("torch_dtype") or config.get("dtype")
    if isinstance(dtype, str) and dtype in STORED_BYTES:
        return STORED_BYTES[dtype]
    if len(source.hub_params) == 1:
        return STORED_BYTES.get(next(iter(source.hub_params)), 4)
    return 4


def moe_counts(total: int, shape: ModelShape | None) -> MoeCounts | None:
    """Active parameters of a mixture of experts, from the total and the config's shapes."""
    if shape is None or not shape.experts or not shape.experts_per_token:
        return None
    routed = shape.routed_expert_params
    if not routed or routed >= total:
        return None
    idle = routed * (1 - shape.experts_per_token / shape.experts)
    method = (
        f"total − routed experts × (1 − {shape.experts_per_token}/{shape.experts}); routed experts = "
        f"{shape.moe_layers} layers × {shape.experts} × 3 × {shape.hidden} × {shape.expert_intermediate}"
    )
    return MoeCounts(shape.experts, shape.experts_per_token, routed, int(total - idle), method)


# ---------------------------------------------------------------------------- memory


def compute_bytes(dtype: str) -> int:
    """Bytes of activations and KV cache: fp32 stays fp32, everything else computes in 16-bit."""
    return 4 if dtype == "fp32" else 2


def weight_bytes(params: int, shape: ModelShape | None, dtype: str) -> int:
    """Weights in ``dtype``; quantized dtypes keep embeddings (and an untied lm_head) 16-bit."""
    if dtype not in QUANTIZED or shape is None:
        return int(params * DTYPE_BYTES[dtype])
    embeddings = min(shape.embedding_params, params)
    return int((params - embeddings) * DTYPE_BYTES[dtype] + embeddings * EMBEDDING_BYTES)


def kv_cache_bytes(shape: ModelShape | None, context: int, dtype: str = "fp16", batch: int = 1) -> int:
    """2 × layers × kv_heads × head_dim × context × bytes (+ cross-attention over the encoder)."""
    if shape is None or shape.kind == "encoder":
        return 0
    tokens = context + shape.encoder_tokens(context)
    return batch * shape.layers * shape.kv_per_token_layer * tokens * compute_bytes(dtype)


def activation_bytes(shape: ModelShape | None, context: int, dtype: str, weights: int) -> int:
    """Prefill working set of one layer; 20 % of the weights when shapes are unknown."""
    if shape is None:
        return int(UNKNOWN_ACTIVATION_FRACTION * weights)
    tokens = context + shape.encoder_tokens(context)
    return tokens * (4 * shape.hidden + 2 * shape.intermediate) * compute_bytes(dtype)


def estimate_inference(params: int, shape: ModelShape | None, dtype: str, context: int) -> InferenceEstimate:
    weights = weight_bytes(params, shape, dtype)
    return InferenceEstimate(
        dtype=dtype,
        context_length=context,
        weights=weights,
        kv_cache=kv_cache_bytes(shape, context, dtype),
        activations=activation_bytes(shape, context, dtype, weights),
    )


def lora_rank(params: int) -> int:
    """The rank train.sh picks by model size (seed 004)."""
    return next(rank for limit, rank in LORA_RANKS if params < limit)


def adapter_params(params: int, shape: ModelShape | None) -> int:
    """rank × Σ(in + out) over the attention and dense-MLP projections of every layer."""
    rank = lora_rank(params)
    if shape is None or not shape.heads:
        return int(LORA_FALLBACK_FRACTION * params)
    h, q, kv = shape.hidden, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    attention = (h + q) + 2 * (h + kv) + (q + h)
    mlp = (3 if shape.gated_mlp else 2) * (h + shape.intermediate)
    return rank * (shape.layers * attention + shape.dense_layers * mlp)


def training_activation_bytes(shape: ModelShape | None, seq: int, dtype: str, weights: int) -> int:
    """Gradient checkpointing: layer inputs + one recomputed layer + logits and their gradient."""
    b = compute_bytes(dtype)
    if shape is None:
        return int(UNKNOWN_ACTIVATION_FRACTION * weights)
    checkpoints = seq * shape.hidden * shape.layers * b
    one_layer = seq * (6 * shape.hidden + 4 * shape.intermediate) * b
    return checkpoints + one_layer + seq * shape.vocab * LOGIT_BYTES


def training_sequence(shape: ModelShape | None) -> int:
    if shape is None:
        return 0
    return min(shape.max_positions or TRAIN_SEQUENCE, TRAIN_SEQUENCE)


def estimate_training(params: int, shape: ModelShape | None, method: str, dtype: str) -> TrainingEstimate:
    """LoRA, QLoRA or full fine-tuning memory (formulas in the module docstring)."""
    seq = training_sequence(shape)
    if method == "full":
        weights = int(params * DTYPE_BYTES[dtype])
        trainable, optimizer = params, int(params * (FULL_BYTES_PER_PARAM - DTYPE_BYTES[dtype]))
    else:
        weights = weight_bytes(params, shape, dtype)
        trainable = adapter_params(params, shape)
        optimizer = trainable * FULL_BYTES_PER_PARAM
    return TrainingEstimate(
        method=method,
        dtype=dtype,
        sequence_length=seq,
        weights=weights,
        trainable_params=trainable,
        optimizer=optimizer,
        activations=training_activation_bytes(shape, seq, dtype, weights),
    )


# ---------------------------------------------------------------------------- disk and the seed rule


def estimate_disk(source: ModelSource, weights: WeightSet) -> DiskEstimate:
    """The chosen weights + all non-weight files + the environment; and the whole repo's size."""
    other = sum(f.size for f in source.files if not is_weight_path(f.path))
    return DiskEstimate(weights=weights.size, other_files=other, repo_total=source.total_size)


def seed_weight_bytes(source: ModelSource) -> int:
    """What the seed's rule sums: every .bin/.safetensors/.pt/.pth file, all formats together."""
    return sum(f.size for f in source.files if f.path.endswith(SEED_WEIGHT_SUFFIXES))


def seed_rule_estimate(weight_file_bytes: int) -> dict[str, int]:
    """The seed's rule: weight file size × 1.2 (int4) / 1.3 (int8) / 1.5 (fp16, bf16) / 2.0 (fp32)."""
    return {dtype: int(weight_file_bytes * k) for dtype, k in SEED_COEFFICIENTS.items()}
