"""Compatibility rows, training rows, disk check and verdict on synthetic machines."""

from __future__ import annotations

import dataclasses

import pytest

from llm_installer.check.compat import CLOSE_NOTE, REQUIRES_QUANTIZATION, check_compatibility
from llm_installer.check.estimate import estimate
from llm_installer.check.hardware import Gpu, Hardware
from llm_installer.check.memory import GiB
from llm_installer.check.source import ModelSource, RepoFile

# Mistral-7B's shapes; 7.25B parameters as the Hub counts them.
MISTRAL_7B = {
    "architectures": ["MistralForCausalLM"],
    "model_type": "mistral",
    "hidden_act": "silu",
    "vocab_size": 32768,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


@pytest.fixture(scope="module")
def seven_b():
    source = ModelSource(
        model_id="test/7b",
        files=(RepoFile("config.json", 600), RepoFile("model.safetensors", 14_496_000_000)),
        configs={"config.json": MISTRAL_7B},
        hub_params={"BF16": 7_248_023_552},
    )
    return estimate(source)


def machine(
    *gpu_free_gib: float,
    ram_gib: float = 8,
    disk_gib: float = 500,
    capability: tuple[int, int] = (8, 9),
    apple: bool = False,
) -> Hardware:
    gpus = tuple(
        Gpu(i, "NVIDIA Test", int((free + 0.5) * GiB), int(free * GiB), capability)
        for i, free in enumerate(gpu_free_gib)
    )
    return Hardware(
        os="Darwin" if apple else "Linux",
        arch="arm64" if apple else "x86_64",
        cpu_model="test",
        cpu_cores=8,
        cpu_threads=16,
        ram_total=int(ram_gib * GiB),
        ram_available=int(ram_gib * GiB),
        gpus=gpus,
        apple_silicon=apple,
        mps_available=apple,
        disk_path="/models",
        disk_free=int(disk_gib * GiB),
    )


def rows(result):
    return {r.dtype: r for r in result.rows}


def test_24gb_gpu_runs_a_7b_model_in_fp16(seven_b):
    result = check_compatibility(seven_b, machine(23.5))
    fp16 = rows(result)["fp16"]
    assert fp16.can_run and fp16.device == "cuda" and fp16.notes == ()
    assert 14 * GiB < fp16.memory < 20 * GiB
    assert not rows(result)["fp32"].can_run  # 7.25B × 4 bytes is 27 GiB
    assert (result.verdict.status, result.verdict.dtype, result.verdict.device) == (
        "compatible",
        "bf16",
        "cuda",
    )


def test_8gb_gpu_requires_quantization(seven_b):
    result = check_compatibility(seven_b, machine(7.8, ram_gib=8))
    table = rows(result)
    assert not any(table[d].can_run for d in ("fp32", "fp16", "bf16", "int8"))
    assert table["int4"].can_run and table["int4"].device == "cuda"
    assert REQUIRES_QUANTIZATION in table["int4"].notes
    assert result.verdict.status == "limited"
    assert (result.verdict.dtype, result.verdict.device) == ("int4", "cuda")


def test_close_to_limit_when_less_than_1gb_would_remain(seven_b):
    int4 = seven_b.inference_for("int4").total_for("cuda")
    result = check_compatibility(seven_b, machine((int4 + 0.5 * GiB) / GiB))
    table = rows(result)
    assert table["int4"].notes == (REQUIRES_QUANTIZATION, CLOSE_NOTE)
    assert result.verdict.status == "limited"
    assert "close to the memory limit" in result.verdict.reason


def test_too_little_vram_falls_back_to_ram(seven_b):
    result = check_compatibility(seven_b, machine(4, ram_gib=64))
    table = rows(result)
    assert table["bf16"].can_run and table["bf16"].device == "cpu"
    assert not table["int4"].can_run  # 6+ GiB do not fit in 4 GiB of VRAM
    assert (result.verdict.status, result.verdict.dtype, result.verdict.device) == (
        "limited",
        "fp32",
        "cpu",
    )
    assert "runs on the CPU" in result.verdict.reason


def test_a_quantized_gpu_row_beats_the_cpu(seven_b):
    result = check_compatibility(seven_b, machine(7.8, ram_gib=64))
    table = rows(result)
    assert table["int4"].device == "cuda" and not table["int4"].notes  # bf16 fits (in RAM)
    assert (result.verdict.status, result.verdict.dtype, result.verdict.device) == (
        "limited",
        "int4",
        "cuda",
    )


def test_nothing_fits_is_incompatible(seven_b):
    result = check_compatibility(seven_b, machine(ram_gib=4))
    assert not any(r.can_run for r in result.rows)
    assert all(r.device == "-" for r in result.rows)
    assert result.verdict.status == "incompatible"
    assert result.verdict.dtype is None


def test_quantized_rows_need_an_nvidia_gpu(seven_b):
    table = rows(check_compatibility(seven_b, machine(ram_gib=64)))
    assert table["bf16"].can_run and table["bf16"].device == "cpu"
    assert not table["int4"].can_run
    assert table["int4"].notes == ("Needs an NVIDIA GPU",)


def test_two_gpus_split_a_model_that_fits_neither_alone(seven_b):
    table = rows(check_compatibility(seven_b, machine(10, 10)))
    assert table["fp16"].can_run and table["fp16"].device == "cuda"
    assert "Split across 2 GPUs" in table["fp16"].notes


def test_bf16_needs_ampere(seven_b):
    result = check_compatibility(seven_b, machine(23.5, capability=(7, 5)))
    assert rows(result)["fp16"].device == "cuda"
    assert rows(result)["bf16"].device != "cuda"
    assert result.verdict.dtype == "fp16"


def test_apple_silicon_runs_on_mps(seven_b):
    result = check_compatibility(seven_b, machine(ram_gib=32, apple=True))
    assert rows(result)["fp16"].device == "mps"
    assert not rows(result)["int4"].can_run
    assert (result.verdict.status, result.verdict.device) == ("compatible", "mps")


def test_training_table(seven_b):
    cpu_only = {
        (t.method, t.dtype): t for t in check_compatibility(seven_b, machine(ram_gib=64)).training
    }
    assert not cpu_only["qlora", "int4"].cpu_ok and not cpu_only["qlora", "int4"].gpu_ok
    assert cpu_only["qlora", "int4"].device == "-"
    assert cpu_only["lora", "fp16"].cpu_ok and cpu_only["lora", "fp16"].device == "cpu"
    gpu = {
        (t.method, t.dtype): t
        for t in check_compatibility(seven_b, machine(23.5, ram_gib=64)).training
    }
    assert gpu["qlora", "int4"].gpu_ok and gpu["qlora", "int4"].device == "cuda"
    assert gpu["lora", "fp16"].gpu_ok
    assert not gpu["full", "fp16"].gpu_ok and not gpu["full", "fp16"].cpu_ok  # 16 bytes × 7.25B
    assert gpu["full", "fp16"].label == "Full (fp16)"


def test_disk_levels(seven_b):
    needed = seven_b.disk.total / GiB
    assert (
        check_compatibility(seven_b, machine(23.5, disk_gib=needed - 1)).disk.level
        == "insufficient"
    )
    assert (
        check_compatibility(seven_b, machine(23.5, disk_gib=needed - 1)).verdict.status
        == "incompatible"
    )
    low = check_compatibility(seven_b, machine(23.5, disk_gib=needed + 10))
    assert low.disk.level == "low" and low.verdict.status == "limited"
    warn = check_compatibility(seven_b, machine(23.5, disk_gib=needed + 60))
    assert warn.disk.level == "warn" and warn.verdict.status == "compatible"
    assert check_compatibility(seven_b, machine(23.5, disk_gib=needed + 200)).disk.level == "ok"


def test_cpu_with_bf16_instructions_recommends_bf16_for_an_llm(seven_b):
    """The runtime (like vLLM) loads an LLM in bf16 on a CPU with AMX/AVX512-BF16: check says so;
    other families, and CPUs without those instructions, keep fp32 where it fits."""
    plain, bf16_cpu = machine(ram_gib=64), dataclasses.replace(machine(ram_gib=64), cpu_bf16=True)
    assert check_compatibility(seven_b, bf16_cpu, llm=True).verdict.dtype == "bf16"
    assert check_compatibility(seven_b, bf16_cpu, llm=False).verdict.dtype == "fp32"
    assert check_compatibility(seven_b, plain, llm=True).verdict.dtype == "fp32"
    gpu = dataclasses.replace(machine(23.5, ram_gib=64), cpu_bf16=True)  # the GPU still wins
    assert check_compatibility(seven_b, gpu, llm=True).verdict.device == "cuda"
