"""Adapter repos and state-space models installed into real images and served from containers.

An adapter installs its base first (or reuses it), then gets a folder of its own that shares the
base's weights folder and image; a tiny Mamba installs from the test Hub on a CPU image (its CUDA
kernels are left out) and answers its smoke test in the container.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tiny_models import make_tiny_llama
from tiny_ssm import make_tiny_lora, make_tiny_state_space

pytestmark = [pytest.mark.docker, pytest.mark.slow]
BASE_REPO, LORA_REPO = "test-org/adapter-base", "test-org/adapter-lora"


@pytest.fixture(scope="module")
def env(hub_server, docker_client, rootfs_image, tmp_path_factory):
    """A user whose ~/LLM is a temp folder and whose Hub is the test Hub."""
    home = tmp_path_factory.mktemp("llm-home-adapters")
    (home / "config.yaml").write_text("{}\n")
    variables = {
        **os.environ,
        "LLM_INSTALLER_MODELS_DIR": str(home / "models"),
        "LLM_INSTALLER_CACHE_DIR": str(home / "cache"),
        "LLM_INSTALLER_LOGS_DIR": str(home / "logs"),
        "LLM_INSTALLER_CONFIG": str(home / "config.yaml"),
        "LLM_INSTALLER_ROOTFS": "1",
        "HF_ENDPOINT": hub_server.url,
        "HF_HOME": str(home / "hf"),
    }
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "LLM_INSTALLER_DEBUG"):
        variables.pop(name, None)
    return {"env": variables, "models": home / "models"}


def installer(env, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "llm_installer", *args]
    return subprocess.run(
        command, env=env["env"], capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def info_of(folder: Path) -> dict:
    return json.loads((folder / "model_info.json").read_text())


@pytest.fixture(scope="module")
def adapters(hub_server, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny base and its LoRA on the test Hub; a second LoRA as a local folder."""
    root = tmp_path_factory.mktemp("adapter-repos")
    base = make_tiny_llama(root / "adapter-base")
    first = make_tiny_lora(base, root / "adapter-lora", base_name=BASE_REPO)
    second = make_tiny_lora(base, root / "second-lora", base_name="nobody/missing-base", seed=2)
    hub_server.add_folder(BASE_REPO, base)
    hub_server.add_folder(LORA_REPO, first)
    return first, second


def test_adapter_installs_its_base_and_serves_both(env, adapters, hub_server, docker_client):
    result = installer(env, "install", LORA_REPO, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    base_dir, lora_dir = (
        env["models"] / "test-org_adapter-base",
        env["models"] / "test-org_adapter-lora",
    )
    assert (base_dir / ".install_complete").is_file() and (lora_dir / ".install_complete").is_file()
    base, adapter = info_of(base_dir), info_of(lora_dir)
    assert adapter["weights_path"] == base["weights_path"] and adapter["image"] == base["image"]
    assert adapter["family"] == "text-generation" and adapter["base_model"]["model_id"] == BASE_REPO
    assert (lora_dir / "lora" / "adapter_config.json").is_file() and not (
        lora_dir / "model"
    ).exists()
    assert adapter["smoke_test"]["passed"]
    port = free_port()
    started = subprocess.run(
        [str(lora_dir / "start.sh"), "--no-browser", "--detach", "--port", str(port)],
        env=env["env"], capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        info = httpx.get(f"http://127.0.0.1:{port}/info", timeout=30).json()
        assert (info["model_id"], info["base_model"], info["adapter"]) == (
            LORA_REPO,
            BASE_REPO,
            "/lora",
        )
        # Greedy: sampled, a random-weight model may draw its end token within 4 tokens.
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0}
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions", json=chat, timeout=60
        ).json()
        assert answer["usage"]["completion_tokens"] == 4
    finally:
        installer(env, "stop", str(lora_dir), timeout=120)
    trained = subprocess.run(
        [str(lora_dir / "train.sh"), "--data", str(write_alpaca(lora_dir.parent / "a.jsonl")),
         "--max-steps", "2", "--no-tensorboard"],
        env=env["env"], capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "Continuing the adapter in /work/lora" in trained.stdout
    config = json.loads((lora_dir / "lora" / "adapter_config.json").read_text())
    assert config["r"] == 4  # the installed adapter's rank (a fresh adapter here would get 8)
    assert (lora_dir / "logs" / "training" / "training_report.json").is_file()


def write_alpaca(path: Path) -> Path:
    rows = [("Name an animal that barks.", "A dog barks."), ("Say hello.", "Hello world.")] * 8
    records = [{"instruction": i, "input": "", "output": o} for i, o in rows]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_second_adapter_shares_the_base_and_removing_it_keeps_the_image(
    env, adapters, hub_server, docker_client
):
    second = shutil.copytree(adapters[1], env["models"].parent / "second-lora")
    hub_server.reset_counters()
    result = installer(env, "install", str(second), "--base", BASE_REPO, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is installed in" in result.stdout and "reused" in result.stdout
    weights = (adapters[0].parent / "adapter-base" / "model.safetensors").stat().st_size
    assert hub_server.bytes_for(BASE_REPO, "model.safetensors") < weights  # headers, no download
    base, adapter = (
        info_of(env["models"] / "test-org_adapter-base"),
        info_of(env["models"] / "second-lora"),
    )
    assert (
        adapter["weights_path"] == base["weights_path"]
        and adapter["image"]["tag"] == base["image"]["tag"]
    )
    removed = installer(env, "remove", "second-lora", "--yes")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert docker_client.images.get(base["image"]["tag"])  # the base's image stays


def test_tiny_mamba_installs_from_the_hub_and_answers_in_its_container(
    env, hub_server, tmp_path, docker_client
):
    hub_server.add_folder(
        "test-org/tiny-mamba", make_tiny_state_space(tmp_path / "tiny-mamba", "mamba")
    )
    result = installer(env, "install", "test-org/tiny-mamba", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    info = info_of(env["models"] / "test-org_tiny-mamba")
    assert info["family"] == "state-space" and info["smoke_test"]["passed"]
    assert "mamba-ssm" not in " ".join(info["pip_freeze"])  # CUDA kernels stay off CPU images
    labels = docker_client.images.get(info["image"]["tag"]).labels
    assert labels["org.llm-installer.family"] == "state-space"
