"""The runtime's GPU placement on CPU: max_memory split across two GPUs by accelerate (a model
on the meta device), cache rows per device, native bf16 only, one GPU for training."""

from __future__ import annotations

import pytest
import torch
from accelerate import init_empty_weights
from accelerate.utils import compute_module_sizes, infer_auto_device_map
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.cache_utils import DynamicCache

from llm_runtime import loading
from llm_runtime.continuous import select_cache_rows
from llm_runtime.loading import GiB, Placement, max_memory, model_kwargs, resolve_dtype
from llm_runtime.training import model as training_model
from llm_runtime.values import LoadSettings


def tiny_llama_on_meta():
    config = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=8, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=4096)  # fmt: skip
    with init_empty_weights():
        return LlamaForCausalLM(config)


def test_a_model_too_big_for_one_gpu_is_split_across_two():
    model = tiny_llama_on_meta()
    size = compute_module_sizes(model)[""]
    free = [GiB + int(0.6 * size)] * 2  # each GPU holds 60 % of it once the headroom is kept
    limits = max_memory(free, None)
    assert limits == {
        0: int(0.6 * size),
        1: int(0.6 * size),
    }  # no "cpu": quantized models stay on GPUs
    placement = infer_auto_device_map(
        model, max_memory=limits, no_split_module_classes=["LlamaDecoderLayer"]
    )
    devices = set(placement.values())
    assert devices == {0, 1}, placement
    assert placement["model.embed_tokens"] == 0


def test_one_gpu_that_holds_the_model_gets_all_of_it():
    model = tiny_llama_on_meta()
    limits = max_memory([8 * GiB], 32 * GiB)
    assert limits == {0: 7 * GiB, "cpu": 32 * GiB}  # 1 GiB headroom at least
    placement = infer_auto_device_map(
        model, max_memory=limits, no_split_module_classes=["LlamaDecoderLayer"]
    )
    assert set(placement.values()) == {0}


def test_cuda_loads_go_through_device_map_with_max_memory(monkeypatch):
    """Two GPUs as torch.cuda reports them (faked answers): every visible GPU gets a limit."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: ((20 + i) * GiB, 24 * GiB))
    kwargs = model_kwargs(LoadSettings(), Placement("cuda", torch.bfloat16))
    assert kwargs["device_map"] == "auto"
    assert set(kwargs["max_memory"]) == {0, 1, "cpu"} and kwargs["max_memory"][1] == 21 * GiB - int(
        2.1 * GiB
    )
    assert model_kwargs(LoadSettings(), Placement("cpu", torch.float32)) == {
        "dtype": torch.float32,
        "trust_remote_code": False,
    }


def test_cache_rows_are_selected_on_each_layers_device():
    cache = DynamicCache()
    for layer, device in enumerate(("cpu", "meta")):  # a cache split over two devices
        states = torch.arange(3 * 2 * 4 * 8, dtype=torch.float32).reshape(3, 2, 4, 8).to(device)
        cache.update(states, states.clone(), layer)
    select_cache_rows(cache, [0, 2])
    assert [layer.keys.device.type for layer in cache.layers] == ["cpu", "meta"]
    assert all(layer.keys.shape[0] == 2 and layer.values.shape[0] == 2 for layer in cache.layers)
    assert torch.equal(
        cache.layers[0].keys[1],
        torch.arange(3 * 2 * 4 * 8, dtype=torch.float32).reshape(3, 2, 4, 8)[2],
    )


@pytest.fixture
def turing(monkeypatch):
    """A T4 as torch answers: bf16 'supported' only when emulation counts."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )


def test_turing_gets_fp16_not_emulated_bf16(turing):
    assert not loading.bf16_native() and not training_model.bf16_native()
    assert resolve_dtype("auto", "cuda") == torch.float16
    assert training_model._train_dtype("cuda") == torch.float16
    assert resolve_dtype("bfloat16", "cuda") == torch.bfloat16  # an explicit choice stays


def test_training_narrows_to_one_gpu():
    env = {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert training_model.one_gpu(env) == "2" and env["CUDA_VISIBLE_DEVICES"] == "2"
    unset: dict = {}
    assert training_model.one_gpu(unset, lambda: 4) == "0" and unset["CUDA_VISIBLE_DEVICES"] == "0"
    single: dict = {}
    assert training_model.one_gpu(single, lambda: 1) is None and single == {}  # nothing to narrow
    assert training_model.one_gpu({}) is None  # this machine: no GPU, the environment is left alone
    assert training_model.one_gpu({"CUDA_VISIBLE_DEVICES": "1"}) is None  # already one
    launched = {"WORLD_SIZE": "2", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert training_model.one_gpu(launched) is None and launched["CUDA_VISIBLE_DEVICES"] == "0,1"
