"""The estimator against hand-computed values, and on real published repos (no double counting)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llm_installer.check.estimate import estimate, seed_rule_estimate
from llm_installer.check.memory import GiB, default_context, kv_cache_bytes, lora_rank, weight_bytes
from llm_installer.check.params import config_param_count
from llm_installer.check.shapes import model_shape
from llm_installer.check.source import ModelSource, RepoFile
from llm_installer.check.weights import choose_weights

# The trimmed copy of shared/realconfigs in tests/fixtures; LLM_INSTALLER_REALCONFIGS overrides.
REALCONFIGS = Path(
    os.environ.get(
        "LLM_INSTALLER_REALCONFIGS",
        Path(__file__).resolve().parents[1] / "fixtures" / "realconfigs",
    )
)
needs_realconfigs = pytest.mark.skipif(
    not REALCONFIGS.is_dir(), reason="shared/realconfigs not available"
)

# vocab 1000, hidden 64, intermediate 256, 2 layers, 4 heads (head_dim 16), 2 KV heads, untied.
#   attention per layer: q 64·64 + k 64·32 + v 64·32 + o 64·64          = 12 288
#   gated MLP per layer: 3 · 64 · 256                                   = 49 152
#   two RMSNorms per layer: 2 · 64                                      =    128
#   2 layers · 61 568                                                   = 123 136
#   embeddings 1000·64 + untied lm_head 1000·64                         = 128 000
#   final norm                                                          =     64
#   total                                                               = 251 200
# (LlamaForCausalLM built from this config has exactly 251 200 parameters.)
LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_act": "silu",
    "vocab_size": 1000,
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
LLAMA_PARAMS = 251_200
LLAMA_EMBEDDINGS = 128_000

# The same with 4 experts of intermediate 128, 2 per token (MixtralForCausalLM: 350 016):
#   per layer: attention 12 288 + experts 4·3·64·128 = 98 304 + router 64·4 = 256 + norms 128
#   2 · 110 976 + 128 000 + 64 = 350 016
#   routed experts 2 layers · 98 304 = 196 608; idle share 196 608 · (1 − 2/4) = 98 304
#   active = 350 016 − 98 304 = 251 712
MIXTRAL = {
    **LLAMA,
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "intermediate_size": 128,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
}


def source(configs: dict, files: list[tuple[str, int]] = (), **kwargs) -> ModelSource:
    return ModelSource(
        model_id="test/model",
        files=tuple(RepoFile(p, s) for p, s in files),
        configs=configs,
        **kwargs,
    )


def real_source(name: str) -> ModelSource:
    """A realconfigs folder as check would read it: files.json's inventory and every config."""
    folder = REALCONFIGS / name
    listing = json.loads((folder / "files.json").read_text())
    configs = {}
    for path in folder.rglob("*.json"):
        rel = path.relative_to(folder).as_posix()
        if rel not in ("files.json", "meta.json"):
            configs[rel] = json.loads(path.read_text())
    return ModelSource(
        model_id=name.replace("__", "/"),
        files=tuple(RepoFile(f["path"], f["size"] or 0) for f in listing),
        configs=configs,
    )


# ---------------------------------------------------------------------------- parameters


def test_llama_like_parameters_from_config_shapes():
    found = estimate(source({"config.json": LLAMA}))
    assert found.params.total == LLAMA_PARAMS
    assert found.params.source == "config"
    assert found.moe is None


def test_moe_total_and_active_from_config_shapes():
    found = estimate(source({"config.json": MIXTRAL}))
    assert found.params.total == 350_016
    assert found.moe.routed_expert_params == 196_608
    assert found.moe.active == 251_712
    assert "1 − 2/4" in found.moe.method


def test_parameter_sources_in_order_of_preference():
    files = [("config.json", 700), ("model.safetensors", 502_464)]
    index = {"metadata": {"total_size": 502_400}, "weight_map": {}}
    configs = {"config.json": LLAMA, "model.safetensors.index.json": index}
    hub = source(
        configs,
        files,
        hub_params={"BF16": 251_000},
        tensor_params={"model.safetensors": {"BF16": 250_000}},
    )
    headers = source(
        configs, files, tensor_params={"model.safetensors": {"BF16": 250_000, "F32": 1}}
    )
    assert estimate(hub).params.source == "hub" and estimate(hub).params.total == 251_000
    assert (
        estimate(headers).params.source == "headers" and estimate(headers).params.total == 250_001
    )
    # the index's total_size 502 400 bytes ÷ 2 bytes (torch_dtype bfloat16)
    assert estimate(source(configs, files)).params.total == 251_200
    assert estimate(source(configs, files)).params.source == "index"
    sizes_only = source({"config.json": {"torch_dtype": "float16"}}, files)
    assert estimate(sizes_only).params.source == "file-size"
    assert estimate(sizes_only).params.total == 502_464 // 2


def test_packed_4bit_checkpoints_are_unpacked():
    config = {**LLAMA, "quantization_config": {"quant_method": "gptq", "bits": 4}}
    found = estimate(
        source(
            {"config.json": config},
            [("model.safetensors", 10)],
            tensor_params={
                "model.safetensors": {"I32": 1000, "F16": 500},
            },
        )
    )
    assert found.params.total == 1000 * 8 + 500
    assert found.quantization == "gptq 4-bit"


# ---------------------------------------------------------------------------- memory


def test_kv_cache_formula():
    shape = model_shape(LLAMA)
    # 2 (K and V) · 2 layers · 2 KV heads · 16 head_dim · 100 tokens · 2 bytes
    assert kv_cache_bytes(shape, 100, "fp16") == 2 * 2 * 2 * 16 * 100 * 2 == 25_600
    assert kv_cache_bytes(shape, 100, "fp32") == 51_200
    assert kv_cache_bytes(shape, 100, "int4") == 25_600  # the cache stays 16-bit
    assert kv_cache_bytes(model_shape({**LLAMA, "architectures": ["BertModel"]}), 100) == 0


@needs_realconfigs
def test_whisper_caches_cross_attention_over_its_1500_audio_frames():
    config = json.loads((REALCONFIGS / "openai__whisper-base/config.json").read_text())
    shape = model_shape(config)
    # 6 decoder layers · 2 · 8 heads · 64 head_dim · (448 decoder + 1500 encoder tokens) · 2 bytes
    assert default_context(shape) == 448
    assert kv_cache_bytes(shape, 448) == 6 * 2 * 8 * 64 * (448 + 1500) * 2


def test_default_context_is_capped_at_4096():
    assert default_context(model_shape(LLAMA)) == 2048
    assert default_context(model_shape({**LLAMA, "max_position_embeddings": 131072})) == 4096
    assert (
        default_context(
            model_shape({k: v for k, v in LLAMA.items() if k != "max_position_embeddings"})
        )
        == 4096
    )


def test_weights_per_dtype_keep_embeddings_16_bit_when_quantized():
    shape = model_shape(LLAMA)
    assert weight_bytes(LLAMA_PARAMS, shape, "fp32") == LLAMA_PARAMS * 4
    assert weight_bytes(LLAMA_PARAMS, shape, "bf16") == LLAMA_PARAMS * 2
    # int8: (251 200 − 128 000) · 1 + 128 000 · 2
    assert weight_bytes(LLAMA_PARAMS, shape, "int8") == 123_200 + 256_000
    # int4 at 4.5 bits: 123 200 · 0.5625 + 128 000 · 2
    assert weight_bytes(LLAMA_PARAMS, shape, "int4") == 69_300 + 256_000


def test_inference_total_adds_kv_activations_and_device_overhead():
    found = estimate(source({"config.json": LLAMA}), context_length=100)
    fp16 = found.inference_for("fp16")
    assert fp16.context_length == 100
    assert fp16.weights == LLAMA_PARAMS * 2
    assert fp16.kv_cache == 25_600
    assert fp16.activations == 100 * (4 * 64 + 2 * 256) * 2  # prefill working set of one layer
    base = fp16.weights + fp16.kv_cache + fp16.activations
    assert fp16.total_for("cpu") == base + int(0.3 * GiB + 0.05 * fp16.weights)
    assert fp16.total_for("cuda") == base + int(1.0 * GiB + 0.08 * fp16.weights)


def test_training_formulas():
    found = estimate(source({"config.json": LLAMA}))
    rows = {(t.method, t.dtype): t for t in found.training}
    full = rows["full", "fp16"]
    assert full.weights + full.optimizer == LLAMA_PARAMS * 16
    # LoRA rank 8 (< 1B) on q, k, v, o, gate, up, down of 2 layers:
    #   attention (64+64) + 2·(64+32) + (64+64) = 448; MLP 3·(64+256) = 960 → 8 · 2 · 1408
    lora = rows["lora", "fp16"]
    assert lora.trainable_params == 8 * 2 * 1408 == 22_528
    assert lora.weights == LLAMA_PARAMS * 2
    assert lora.optimizer == 22_528 * 16
    # checkpoints 2048·64·2 layers·2 B + one layer 2048·(6·64 + 4·256)·2 B + logits 2048·1000·10 B
    assert lora.activations == 2048 * 64 * 2 * 2 + 2048 * (6 * 64 + 4 * 256) * 2 + 2048 * 1000 * 10
    qlora = rows["qlora", "int4"]
    assert qlora.weights == 69_300 + 256_000
    assert rows["full", "fp32"].weights == LLAMA_PARAMS * 4


def test_lora_rank_follows_model_size():
    assert [lora_rank(n) for n in (0.5e9, 2e9, 5e9, 8e9, 20e9, 70e9)] == [8, 16, 32, 64, 128, 256]


def test_seed_rule():
    rule = seed_rule_estimate(10 * GiB)
    assert rule == {
        "fp32": 20 * GiB,
        "fp16": 15 * GiB,
        "bf16": 15 * GiB,
        "int8": 13 * GiB,
        "int4": 12 * GiB,
    }


def test_disk_counts_the_chosen_weights_plus_other_files_plus_environment():
    files = [
        ("config.json", 1000),
        ("model.safetensors", 5000),
        ("pytorch_model.bin", 5100),
        ("tf_model.h5", 5200),
    ]
    found = estimate(source({"config.json": LLAMA}, files))
    assert found.disk.weights == 5000
    assert found.disk.model_files == 6000
    assert found.disk.total == 6000 + 3 * GiB
    assert found.disk.repo_total == 16_300


# ---------------------------------------------------------------------------- weight sets


@pytest.mark.parametrize(
    ("files", "chosen"),
    [
        (
            ["model.safetensors", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack"],
            ["model.safetensors"],
        ),
        (
            [
                "consolidated.safetensors",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
            ],
            ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"],
        ),
        (["consolidated.00.pt", "consolidated.01.pt", "pytorch_model.bin"], ["pytorch_model.bin"]),
        (
            ["model.safetensors", "original/consolidated.00.pth", "onnx/model.onnx"],
            ["model.safetensors"],
        ),
        (
            ["onnx/model.onnx", "onnx/model_O4.onnx", "onnx/model.onnx_data"],
            ["onnx/model.onnx", "onnx/model.onnx_data"],
        ),
        (["m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-F16.gguf"], ["m-Q4_K_M.gguf"]),
    ],
)
def test_one_weight_format_is_chosen(files, chosen):
    found = choose_weights(source({}, [(f, 100) for f in files]))
    assert [f.path for f in found.files] == chosen


# ---------------------------------------------------------------------------- real repos


@needs_realconfigs
def test_mixtral_total_active_and_no_double_counting():
    repo = real_source("mistralai__Mixtral-8x7B-Instruct-v0.1")
    found = estimate(repo)
    assert found.params.source == "index"
    assert found.params.total == 93_405_585_408 // 2  # total_size ÷ 2 bytes (bfloat16)
    assert 46.6e9 < found.params.total < 46.8e9  # ≈ 46.7B
    assert 12.8e9 < found.moe.active < 13.0e9  # ≈ 12.9B
    assert (found.moe.experts, found.moe.experts_per_token) == (8, 2)
    # the config's own count agrees with the index
    assert abs(config_param_count(found.shape, repo.config()) - found.params.total) < 1e7
    # 19 safetensors shards, none of the consolidated.*.pt copies
    assert len(found.weights.files) == 19
    assert all(f.path.endswith(".safetensors") for f in found.weights.files)
    pt_bytes = sum(f.size for f in repo.files if f.path.endswith(".pt"))
    assert pt_bytes > 90e9
    assert found.disk.weights == sum(f.size for f in repo.files if f.path.endswith(".safetensors"))
    assert found.disk.repo_total > found.disk.model_files + pt_bytes - 1


@needs_realconfigs
def test_stable_diffusion_sums_components_and_ignores_root_checkpoints():
    found = estimate(real_source("runwayml__stable-diffusion-v1-5"))
    parts = dict(found.params.components)
    assert 859e6 < parts["unet"] < 860e6
    assert 83e6 < parts["vae"] < 84e6
    assert 123e6 < parts["text_encoder"] < 123.1e6
    core = parts["unet"] + parts["vae"] + parts["text_encoder"]
    assert 1.06e9 < core < 1.07e9  # ≈ 1.07B for unet + vae + text encoder
    assert 303e6 < parts["safety_checker"] < 305e6
    assert found.params.total == core + parts["safety_checker"]
    paths = sorted(f.path for f in found.weights.files)
    assert paths == [
        "safety_checker/model.safetensors",
        "text_encoder/model.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    assert found.disk.weights < 5.5e9 < 40e9 < found.disk.repo_total


@needs_realconfigs
def test_sdxl_component_counts_use_the_fp16_variant_sizes():
    parts = dict(
        estimate(real_source("stabilityai__stable-diffusion-xl-base-1.0")).params.components
    )
    assert 2.56e9 < parts["unet"] < 2.57e9
    assert 694e6 < parts["text_encoder_2"] < 696e6
    assert 123e6 < parts["text_encoder"] < 124e6


@needs_realconfigs
@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("mistralai__Mistral-7B-Instruct-v0.3", 7.2e9, 7.3e9),
        ("meta-llama__Llama-3.2-3B-Instruct", 3.2e9, 3.22e9),
        ("google__gemma-2b-it", 2.5e9, 2.52e9),
        ("facebook__bart-large-cnn", 0.40e9, 0.41e9),
        ("openai__gpt-oss-20b", 20.5e9, 21.5e9),
        ("alpindale__WizardLM-2-8x22B", 140e9, 141.5e9),
    ],
)
def test_real_repos_are_counted_once(name, low, high):
    assert low < estimate(real_source(name)).params.total < high


@needs_realconfigs
def test_deepseek_r1_active_parameters():
    found = estimate(real_source("deepseek-ai__DeepSeek-R1"))
    assert 670e9 < found.params.total < 690e9
    assert 36e9 < found.moe.active < 41e9  # ≈ 37B active, plus the MTP layer's share


def test_sentence_transformers_modules_join_the_root_weights():
    modules = [
        {"idx": 0, "path": ""},
        {"idx": 1, "path": "1_Pooling"},
        {"idx": 2, "path": "2_Dense"},
    ]
    files = [
        ("model.safetensors", 100),
        ("pytorch_model.bin", 100),
        ("onnx/model.onnx", 100),
        ("2_Dense/model.safetensors", 10),
        ("2_Dense/pytorch_model.bin", 10),
    ]
    found = choose_weights(source({"modules.json": modules}, files))
    assert [f.path for f in found.files] == ["model.safetensors", "2_Dense/model.safetensors"]
