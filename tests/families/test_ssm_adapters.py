"""State-space LLMs (tiny Mamba, tiny RWKV) and PEFT adapter repos (tiny base + tiny LoRA).

State-space models are served by a real `llm_runtime serve` process; adapters are checked from
the test Hub and from local folders (the base's memory and requirements), then served on their
base with /info naming both.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from runtime_server import serving, start_server
from tiny_models import make_tiny_llama
from tiny_ssm import make_tiny_lora, make_tiny_state_space
from typer.testing import CliRunner

from llm_installer.build.image import plan_image
from llm_installer.cli import app

runner = CliRunner()
BASE_REPO, LORA_REPO = "test-org/ssm-tiny-base", "test-org/ssm-tiny-lora"


@pytest.fixture(scope="session")
def ssm_servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssm")
    folders = {kind: make_tiny_state_space(root / kind, kind) for kind in ("mamba", "rwkv")}
    for kind, folder in folders.items():
        (folder / "model_info.json").write_text(
            json.dumps({"family": "state-space", "model_id": kind})
        )
    with serving(folders, tmp_path_factory.mktemp("ssm-logs")) as ready:
        yield ready


@pytest.fixture(scope="session")
def tiny_adapter(tmp_path_factory) -> tuple[Path, Path]:
    """(a tiny Llama base folder, a LoRA folder whose config names the base by Hub id)."""
    root = tmp_path_factory.mktemp("adapter")
    base = make_tiny_llama(root / "ssm-tiny-base")
    return base, make_tiny_lora(base, root / "ssm-tiny-lora", base_name=BASE_REPO)


@pytest.mark.parametrize(
    ("kind", "architecture"), [("mamba", "MambaForCausalLM"), ("rwkv", "RwkvForCausalLM")]
)
def test_state_space_model_chats_and_streams(ssm_servers, kind, architecture):
    with ssm_servers[kind].client() as client:
        info = client.get("/info").json()
        assert (info["family"], info["details"]["architecture"]) == ("state-space", architecture)
        assert info["details"]["batching"] == "generate"  # a recurrent state, no plain KV cache
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0}
        answer = client.post("/v1/chat/completions", json=chat).json()
        assert (
            answer["usage"]["completion_tokens"] == 5 and answer["choices"][0]["message"]["content"]
        )
        body = {"prompt": "the quick brown", "max_tokens": 4, "temperature": 0}
        with client.stream("POST", "/generate/stream", json=body) as response:
            events = [
                json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")
            ]
        assert events[-1]["finished"] and events[-1]["usage"]["completion_tokens"] == 4
        alone = client.post("/generate", json=body).json()["text"]
        assert alone == "".join(e.get("token", "") for e in events[:-1])


@pytest.mark.parametrize("kind", ["mamba", "rwkv"])
def test_state_space_batches_answer_like_single_requests(ssm_servers, kind):
    prompts = ["the quick brown fox jumps", "hello", "a model answers questions about", "numbers"]
    url = ssm_servers[kind].url
    body = lambda prompt: {"prompt": prompt, "max_tokens": 6, "temperature": 0}  # noqa: E731
    alone = [
        httpx.post(f"{url}/generate", json=body(p), timeout=120).json()["text"] for p in prompts
    ]
    with ThreadPoolExecutor(len(prompts)) as pool:
        together = list(
            pool.map(lambda p: httpx.post(f"{url}/generate", json=body(p), timeout=120), prompts)
        )
    assert [r.json()["text"] for r in together] == alone


def test_state_space_refuses_step_batching(tmp_path):
    folder = make_tiny_state_space(tmp_path / "mamba", "mamba")
    (folder / "model_info.json").write_text(json.dumps({"family": "state-space", "model_id": "m"}))
    server = start_server(folder, tmp_path / "logs", "--batching", "step")
    try:
        error = server.wait_ready(expect_failure=True)
        status = httpx.get(f"{error.url}/health/ready", timeout=5).json()
        assert "state-space models keep a recurrent state" in json.dumps(status)
    finally:
        server.stop()


def test_mamba_kernels_only_on_cuda_images_and_optional():
    profile = {
        "model_id": "org/mamba",
        "requirements": {
            "packages": ["torch", "transformers", "mamba-ssm", "causal-conv1d"],
            "architecture": [
                "mamba-ssm (requires CUDA compilation)",
                "causal-conv1d (requires CUDA)",
            ],
        },
    }
    cpu, cuda = plan_image(profile, "base:cpu"), plan_image(profile, "base:cuda", cuda=True)
    assert not {"mamba-ssm", "causal-conv1d"} & {*cpu.packages, *cuda.packages}
    assert "mamba-ssm" not in cpu.deps_dockerfile and cpu.deps_tag != cuda.deps_tag
    run = next(line for line in cuda.deps_dockerfile.splitlines() if "mamba-ssm \\" in line)
    assert run.startswith("RUN (pip install --no-build-isolation")
    assert (
        'echo "NOTE: mamba-ssm (requires CUDA compilation) did not install' in cuda.deps_dockerfile
    )


def _check_json(*args: str) -> dict:
    result = runner.invoke(app, ["check", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_adapter_check_from_the_hub_reports_its_base(hub_env, llm_home, tiny_adapter):
    base, lora = tiny_adapter
    hub_env.add_folder(BASE_REPO, base)
    hub_env.add_folder(LORA_REPO, lora)
    base_profile, adapter = _check_json(BASE_REPO), _check_json(LORA_REPO)
    assert adapter["model_id"] == LORA_REPO and adapter["family"] == "text-generation"
    assert (
        adapter["base_model"]["model_id"] == BASE_REPO and adapter["base_model"]["source"] == "hub"
    )
    assert adapter["adapter"]["peft_type"] == "LORA" and adapter["adapter"]["details"]["r"] == 4
    assert (
        adapter["parameters"] == base_profile["parameters"]
        and adapter["parameters"]["total"] > 100_000
    )
    assert adapter["memory"] == base_profile["memory"]
    assert (
        adapter["storage"]["model_files_bytes"] == base_profile["storage"]["model_files_bytes"] > 0
    )
    assert "peft" in adapter["requirements"]["packages"] and "Adapter" in adapter["capabilities"]
    assert any(f["path"] == "adapter_model.safetensors" for f in adapter["adapter"]["files"])
    report = runner.invoke(app, ["check", LORA_REPO]).output
    assert "Adapter: LORA r=4" in report and f"Base model: {BASE_REPO} (hub)" in report
    weights = (lora / "adapter_model.safetensors").stat().st_size
    assert hub_env.bytes_for(LORA_REPO, "adapter_model.safetensors") < weights  # headers only


def test_local_adapter_with_base_override(llm_home, tiny_adapter, tmp_path):
    base, lora = tiny_adapter
    local = shutil.copytree(lora, tmp_path / "my-lora")
    config = json.loads((local / "adapter_config.json").read_text())
    (local / "adapter_config.json").write_text(
        json.dumps({**config, "base_model_name_or_path": "gone/away"})
    )
    missing = runner.invoke(app, ["check", str(local)])
    assert missing.exit_code in (10, 17) and "gone/away" in missing.output
    adapter = _check_json(str(local), "--base", str(base))
    assert adapter["base_model"] == {
        **adapter["base_model"],
        "source": "local",
        "model_id": base.name,
    }
    assert adapter["model_id"] == "my-lora" and adapter["parameters"]["total"] > 100_000


def test_adapter_naming_no_base_is_refused_with_the_next_step(llm_home, tiny_adapter, tmp_path):
    local = shutil.copytree(tiny_adapter[1], tmp_path / "orphan-lora")
    config = json.loads((local / "adapter_config.json").read_text())
    del config["base_model_name_or_path"]
    (local / "adapter_config.json").write_text(json.dumps(config))
    result = runner.invoke(app, ["check", str(local)])
    assert (
        result.exit_code == 25
        and "names no base model" in result.output
        and "--base" in result.output
    )


def test_base_and_adapter_served_and_named_in_info(tiny_adapter, tmp_path):
    base, lora = tiny_adapter
    info = tmp_path / "model_info.json"  # what install writes for an adapter (its own folder)
    info.write_text(
        json.dumps(
            {
                "family": "text-generation",
                "model_id": LORA_REPO,
                "base_model": {"model_id": BASE_REPO},
            }
        )
    )
    folders = {"plain": base, "adapter": base}
    starts = {
        "plain": lambda folder, logs: start_server(folder, logs, env=_without_model_info()),
        "adapter": lambda folder, logs: start_server(
            folder,
            logs,
            "--lora",
            str(lora),
            env={**_without_model_info(), "LLM_MODEL_INFO": str(info)},
        ),
    }
    with serving(
        folders, tmp_path / "logs", start=lambda folder, logs: starts[logs.name](folder, logs)
    ) as ready:
        described = ready["adapter"].client().get("/info").json()
        assert (described["model_id"], described["base_model"]) == (LORA_REPO, BASE_REPO)
        assert described["adapter"] == str(lora) and described["family"] == "text-generation"
        body = {"prompt": "the quick brown", "max_tokens": 8, "temperature": 0}
        answers = {
            name: server.client().post("/generate", json=body).json()["text"]
            for name, server in ready.items()
        }
    assert answers["plain"] != answers["adapter"]  # the adapter's weights are applied


def _without_model_info() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "LLM_MODEL_INFO"}
