"""In-process checks of the runtime's parts: detection, registry, loading choices, decoding rows."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from llm_runtime import loading
from llm_runtime.decoding import RowState
from llm_runtime.errors import ModelLoadError, OutOfMemory, UnsupportedFamily
from llm_runtime.handlers import FAMILIES, handler_class, supported_families
from llm_runtime.loading import (
    Placement,
    quantization_config,
    resolve_dtype,
    resolve_placement,
    translate_oom,
)
from llm_runtime.profile import detect_family, load_profile
from llm_runtime.reasoning import detect_reasoning
from llm_runtime.values import LoadSettings, SamplingParams


def test_families_detected_from_folder_structure(
    llama_dir, moe_dir, reasoning_dir, minilm_dir, encoder_dir
):
    assert load_profile(llama_dir).family == "text-generation"
    moe = load_profile(moe_dir)
    assert (moe.family, moe.is_moe) == ("text-generation", True)
    assert load_profile(reasoning_dir).family == "text-generation"
    assert load_profile(minilm_dir).family == "embedding"
    assert load_profile(encoder_dir).family == "embedding"
    assert load_profile(llama_dir).source == "detected"


def test_detection_ignores_names(tmp_path):
    folder = tmp_path / "bert-base-but-really-llama"
    folder.mkdir()
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    assert detect_family(folder, config) == "text-generation"


@pytest.mark.parametrize(
    ("architecture", "family"),
    [
        ("BertForMaskedLM", "fill-mask"),  # a task with no family: transformers' task table
        ("DPTForDepthEstimation", "depth-estimation"),
        ("BertForTokenClassification", "token-classification"),
        ("WhisperForConditionalGeneration", "speech-recognition"),
    ],
)
def test_any_pipeline_task_is_detected(tmp_path, architecture, family):
    assert detect_family(tmp_path, {"architectures": [architecture]}) == family
    assert handler_class(family).family  # a handler serves every detected family


def test_text_to_spectrogram_models_are_refused_with_the_reason(tmp_path):
    from llm_runtime.handlers.audio_generation import AudioGenerationHandler
    from llm_runtime.metrics import Metrics

    (tmp_path / "config.json").write_text('{"architectures": ["SpeechT5ForTextToSpeech"]}')
    with pytest.raises(UnsupportedFamily, match="vocoder .* text-to-waveform"):
        load_profile(tmp_path)
    # model_info.json may still name the family: the handler refuses before any download.
    (tmp_path / "model_info.json").write_text('{"family": "audio-generation"}')
    handler = AudioGenerationHandler(metrics=Metrics())
    with pytest.raises(UnsupportedFamily, match="SpeechT5ForTextToSpeech .* vocoder"):
        handler.load(profile=load_profile(tmp_path), settings=LoadSettings(device="cpu"))


def test_schedulers_offered_fit_the_default_one():
    import diffusers

    from llm_runtime.handlers.diffusion import compatible_schedulers

    assert compatible_schedulers(diffusers.FlowMatchEulerDiscreteScheduler()) == ["flow_euler"]
    ddpm_family = compatible_schedulers(diffusers.DDIMScheduler())
    assert {"ddim", "euler", "dpm++", "unipc"} <= set(ddpm_family)
    assert "flow_euler" not in ddpm_family


def test_model_info_json_wins_over_detection(tmp_path, llama_dir):
    info = {"family": "embedding", "model_id": "owner/name", "is_moe": True}
    (tmp_path / "model_info.json").write_text(json.dumps(info))
    model = tmp_path / "model"
    model.symlink_to(llama_dir)
    profile = load_profile(model)
    assert (profile.family, profile.model_id, profile.is_moe) == ("embedding", "owner/name", True)
    assert profile.source.endswith("model_info.json")


def test_unknown_architecture_lists_what_is_supported(tmp_path):
    (tmp_path / "config.json").write_text('{"architectures": ["FooForBar"], "model_type": "foo"}')
    with pytest.raises(UnsupportedFamily, match="text-generation"):
        load_profile(tmp_path)


def test_registry_is_lazy_and_names_supported_families():
    assert set(supported_families()) >= {"text-generation", "embedding"}
    assert all(module.startswith("llm_runtime.handlers.") for module, _ in FAMILIES.values())
    assert handler_class("embedding").family == "embedding"
    with pytest.raises(UnsupportedFamily, match="Supported families: .*embedding.*text-generation"):
        handler_class("teleportation")


def test_runtime_imports_nothing_from_installer():
    code = (
        "import sys, llm_runtime.cli, llm_runtime.app, llm_runtime.handlers.text_generation, "
        "llm_runtime.handlers.embeddings; "
        "print([m for m in sys.modules if m.startswith('llm_installer')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_one_entry_point_serves_or_trains(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "llm_runtime", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    top = run("--help")
    assert top.returncode == 0 and "serve" in top.stdout and "train" in top.stdout
    serve = run("serve", "--help")
    assert "--load-in-4bit" in serve.stdout and "--max-queue" in serve.stdout
    assert "--data" in run("train", "--help").stdout
    missing = run("serve", "--model", "/nonexistent/model", "--logs-dir", str(tmp_path))
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_importing_the_registry_does_not_import_handlers():
    code = (
        "import sys, llm_runtime.handlers; "
        "print(any(m.endswith(('text_generation', 'embeddings')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_auto_device_and_dtype_on_this_machine():
    placement = resolve_placement(LoadSettings())
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert placement.device == expected
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "mps") == torch.float16
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    native = torch.bfloat16 if loading.cpu_bf16_native() else torch.float32
    assert resolve_dtype("auto", "cpu", cpu_bf16=True) == native


def test_llms_get_bf16_on_cpus_with_bf16_instructions_only(monkeypatch):
    """As vLLM's CPU backend: bf16 where AMX or AVX512-BF16 run it, fp32 where it is emulated;
    an explicit --dtype always wins, and families that do not ask (cpu_bf16) keep fp32."""
    monkeypatch.setattr(loading, "cpu_bf16_native", lambda: True)
    assert resolve_dtype("auto", "cpu", cpu_bf16=True) == torch.bfloat16
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("float32", "cpu", cpu_bf16=True) == torch.float32
    monkeypatch.setattr(loading, "cpu_bf16_native", lambda: False)
    assert resolve_dtype("auto", "cpu", cpu_bf16=True) == torch.float32


def test_bitsandbytes_refused_without_cuda():
    settings = LoadSettings(quantization="4bit")
    with pytest.raises(ModelLoadError, match="needs an NVIDIA GPU"):
        quantization_config(settings, Placement(device="cpu", dtype=torch.float32))


def test_out_of_memory_becomes_a_hint_to_quantize():
    with pytest.raises(ModelLoadError, match="--load-in-8bit") as info, translate_oom("loading"):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
    assert info.value.code == "out_of_memory"
    with pytest.raises(OutOfMemory, match="--load-in-4bit"), translate_oom("generating"):
        raise RuntimeError("CUDA error: out of memory")
    with pytest.raises(ValueError), translate_oom("loading"):
        raise ValueError("unrelated")


@pytest.fixture(scope="module")
def reasoning_tokenizer(reasoning_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(reasoning_dir)


def _row(tokenizer, **kwargs) -> tuple[RowState, list]:
    deltas: list = []
    defaults = dict(
        tokenizer=tokenizer,
        prompt_ids=tokenizer.encode("hi"),
        sampling=SamplingParams(max_tokens=50, temperature=0),
        stop=(),
        eos_ids=frozenset({tokenizer.eos_token_id}),
        emit=deltas.append,
    )
    return RowState(**{**defaults, **kwargs}), deltas


def test_row_splits_thinking_from_answer(reasoning_tokenizer):
    tok = reasoning_tokenizer
    think = detect_reasoning(tok)
    assert think is not None and think.template_toggle
    prompt = tok.encode(
        tok.apply_chat_template(
            [{"role": "user", "content": "q"}], tokenize=False, add_generation_prompt=True
        ),
        add_special_tokens=False,
    )
    row, deltas = _row(tok, prompt_ids=prompt, think=think)
    for token in tok.encode(" the fox", add_special_tokens=False) + [think.end_id]:
        row.push(token)
    for token in tok.encode(" the dog", add_special_tokens=False) + [tok.eos_token_id]:
        row.push(token)
    result = row.result()
    assert (result.thinking, result.text, result.finish_reason) == (" the fox", " the dog", "stop")
    assert {d.channel for d in deltas} == {"thinking", "answer"}
    assert "".join(d.text for d in deltas if d.channel == "answer") == " the dog"
    assert result.usage.thinking_tokens == len(tok.encode(" the fox", add_special_tokens=False))


def test_row_forces_end_of_thinking_at_budget(reasoning_tokenizer):
    tok = reasoning_tokenizer
    think = detect_reasoning(tok)
    row, _ = _row(tok, prompt_ids=[think.start_id], think=think, max_thinking_tokens=2)
    row.push(tok.encode("a", add_special_tokens=False)[0])
    assert row.forced_token() is None
    row.push(tok.encode("b", add_special_tokens=False)[0])
    assert row.forced_token() == think.end_id


def test_row_stop_sequence_truncates_and_holds_back(reasoning_tokenizer):
    tok = reasoning_tokenizer
    row, deltas = _row(tok, stop=("fox",))
    for token in tok.encode("the quick brown fox jumps", add_special_tokens=False):
        row.push(token)
        if row.finished:
            break
    assert row.result().text == "the quick brown "
    assert row.finish_reason == "stop"
    assert "".join(d.text for d in deltas) == "the quick brown "


def test_row_length_budget(reasoning_tokenizer):
    tok = reasoning_tokenizer
    row, _ = _row(tok, sampling=SamplingParams(max_tokens=3, temperature=0))
    for token in tok.encode("the quick brown fox jumps", add_special_tokens=False):
        row.push(token)
    assert (row.finish_reason, row.result().usage.completion_tokens) == ("length", 3)


def test_server_log_rotates_into_archive(tmp_path, monkeypatch):
    import logging

    from llm_runtime import logs

    saved = {name: logging.getLogger(name).handlers[:] for name in logs.LOGGERS}
    monkeypatch.setattr(logs, "MAX_BYTES", 300)
    try:
        path = logs.setup_logging(tmp_path / "logs")
        for i in range(20):
            logging.getLogger("llm_runtime").info("line %d of the rotation test", i)
    finally:
        for name, handlers in saved.items():
            for handler in logging.getLogger(name).handlers:
                handler.close()
            logging.getLogger(name).handlers = handlers
    archived = sorted(p.name for p in (tmp_path / "logs" / "archive").iterdir())
    assert path.is_file() and "server.log.1" in archived
    assert "INFO: line 19 of the rotation test" in path.read_text()


@pytest.mark.parametrize("batching", ["step", "generate"])
def test_a_failing_request_does_not_take_the_engine_down(llama_dir, batching):
    import asyncio

    from llm_runtime.errors import RuntimeServeError
    from llm_runtime.handlers.text_generation import TextGenerationHandler
    from llm_runtime.metrics import Metrics
    from llm_runtime.values import TextRequest

    handler = TextGenerationHandler(metrics=Metrics())
    handler.load(
        profile=load_profile(llama_dir),
        settings=LoadSettings(device="cpu", batching=batching, batch_window_ms=0),
    )

    async def run():
        good = handler.start(
            request=TextRequest(prompt="the fox", sampling=SamplingParams(40, temperature=0))
        )
        await asyncio.sleep(0.05)
        bad_row, _ = _row(handler.tokenizer, prompt_ids=[10**6])  # no such token: the model raises
        bad = handler.engine.submit(bad_row)
        with pytest.raises(RuntimeServeError, match="Generation failed"):
            await bad.result()
        after = handler.start(request=TextRequest(prompt="a", sampling=SamplingParams(3, 0.0)))
        return await good.result(), await after.result()

    try:
        good, after = asyncio.run(run())
    finally:
        handler.close()
    assert after.usage.completion_tokens == 3
    if batching == "step":  # the running batch was not in the failed prefill
        assert good.usage.completion_tokens == 40
