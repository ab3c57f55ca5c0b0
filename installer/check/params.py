"""Parameter counts from a repo's file list and configs, without torch.

Sources (``ParamCount.source``, best first): the Hub's safetensors counts (``hub``) → the
safetensors headers of the chosen weight files (``headers``) → ``model.safetensors.index.json``
``metadata.total_size`` ÷ bytes of the stored dtype (``index``) → a count from config shapes
for llama-like decoders (``config``) → weight file sizes ÷ bytes of the stored dtype
(``file-size``). Only ONE weight set is counted (``llm_installer.check.weights.choose_weights``):
repos that hold the same weights as safetensors + .bin + consolidated .pt + onnx/flax/tf are
never double-counted; diffusers pipelines sum their component folders and ignore single-file
checkpoints at the root.

MoE: ``active = total − routed_expert_params × (1 − experts_per_token / experts)``, where
``routed_expert_params = moe_layers × experts × 3 × hidden × expert_intermediate`` (gated MLPs,
from config shapes); shared experts, attention and embeddings count as always active.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llm_installer.check.shapes import ModelShape, text_config
from llm_installer.check.source import ModelSource, RepoFile
from llm_installer.check.weights import WeightSet, file_format, file_variant, is_weight_path

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


def main_config(source: ModelSource) -> dict[str, Any] | None:
    """The root model config: config.json, else a validated alternative, else None."""
    from llm_installer.check.config_files import main_config_path

    path = main_config_path(source.configs)
    return source.config(path) if path else None


def config_param_count(
    shape: ModelShape | None, config: Mapping[str, Any] | None = None
) -> int | None:
    """Parameters of a llama-like decoder (dense or MoE) from its shapes; None for other kinds."""
    if (
        shape is None
        or shape.kind != "decoder"
        or shape.multimodal
        or not (shape.heads and shape.vocab)
    ):
        return None
    text = text_config(config or {})
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


def count_parameters(
    source: ModelSource, weights: WeightSet, shape: ModelShape | None
) -> ParamCount:
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
    return ParamCount(
        _size_params(weights.files, stored), "file-size", _size_method(stored), stored
    )


def stored_bytes(config: Mapping[str, Any] | None, source: ModelSource) -> float:
    """Bytes per parameter as stored: quantization bits, config dtype, else the commonest dtype."""
    bits = _quant_bits(config)
    if bits:
        return bits / 8
    for cfg in (config or {}, text_config(config or {})):
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
    per_element = (
        {"I32": 32 // quant_bits, "U8": 8 // quant_bits} if quant_bits and quant_bits < 8 else {}
    )
    return sum(n * per_element.get(dtype, 1) for dtype, n in counts.items())


Found = tuple[int, str, str]


def _hub_count(source: ModelSource, quant: int | None) -> Found | None:
    if not source.hub_params:
        return None
    return _unpacked(source.hub_params, quant), "hub", "the Hub's safetensors metadata"


def _header_count(
    source: ModelSource, files: tuple[RepoFile, ...], quant: int | None
) -> Found | None:
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
    return (
        (count, "config", "counted from the config's shapes (llama-like decoder)")
        if count
        else None
    )


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
    method = (
        f"sum of {len(parts)} components ({'safetensors headers' if kind == 'headers' else kind})"
    )
    return ParamCount(
        sum(n for _, n in parts), kind, method, _component_stored_bytes(source, ""), tuple(parts)
    )


def _component_size_count(source: ModelSource, folder: str, files: tuple[RepoFile, ...]) -> Found:
    """A component's count from sizes; a 16-bit variant, whose name states its dtype, is best.

    Component configs' ``torch_dtype`` is unreliable (SDXL's says float16 beside fp32 files).
    """
    candidates = [f for f in source.files if f.folder == folder and is_weight_path(f.path)]
    for variant in ("fp16", "bf16"):
        group = [
            f for f in candidates if file_variant(f) == variant and file_format(f) == "safetensors"
        ]
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
