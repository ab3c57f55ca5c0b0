"""Memory to serve and to fine-tune a model, from its parameter count and shapes. No torch.

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
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_installer.check.shapes import ModelShape

GiB = 2**30
DEFAULT_CONTEXT = 4096
ENCODER_CONTEXT = 512
TRAIN_SEQUENCE = 2048
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
LORA_RANKS = ((1e9, 8), (3e9, 16), (7e9, 32), (13e9, 64), (30e9, 128), (float("inf"), 256))
LORA_FALLBACK_FRACTION = 0.01
LOGIT_BYTES = 10  # logits in the compute dtype (2) + an fp32 copy (4) + its gradient (4)
FULL_BYTES_PER_PARAM = 16


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


def default_context(shape: ModelShape | None) -> int:
    """min(max_position_embeddings, 4096) (512 for encoders that state none); 0 without shapes."""
    if shape is None:
        return 0
    unknown = DEFAULT_CONTEXT if shape.kind != "encoder" else ENCODER_CONTEXT
    return min(shape.max_positions or unknown, DEFAULT_CONTEXT)


def compute_bytes(dtype: str) -> int:
    """Bytes of activations and KV cache: fp32 stays fp32, everything else computes in 16-bit."""
    return 4 if dtype == "fp32" else 2


def weight_bytes(params: int, shape: ModelShape | None, dtype: str) -> int:
    """Weights in ``dtype``; quantized dtypes keep embeddings (and an untied lm_head) 16-bit."""
    if dtype not in QUANTIZED or shape is None:
        return int(params * DTYPE_BYTES[dtype])
    embeddings = min(shape.embedding_params, params)
    return int((params - embeddings) * DTYPE_BYTES[dtype] + embeddings * EMBEDDING_BYTES)


def kv_cache_bytes(
    shape: ModelShape | None, context: int, dtype: str = "fp16", batch: int = 1
) -> int:
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


def estimate_inference(
    params: int, shape: ModelShape | None, dtype: str, context: int
) -> InferenceEstimate:
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


def estimate_training(
    params: int, shape: ModelShape | None, method: str, dtype: str
) -> TrainingEstimate:
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
