"""Installs from local folders into real containers: a tiny DistilBERT classifier (a pipeline task
with no family of its own) and a tiny custom-code model (served only with --trust-remote-code)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tiny_custom import make_custom_code_model

pytestmark = [pytest.mark.docker, pytest.mark.slow]
LABELS = {0: "NEGATIVE", 1: "POSITIVE"}


@pytest.fixture(scope="module")
def home_env(docker_client, rootfs_image, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("llm-home-tasks")
    (home / "config.yaml").write_text("{}\n")
    env = {
        **os.environ,
        "LLM_INSTALLER_MODELS_DIR": str(home / "models"),
        "LLM_INSTALLER_CACHE_DIR": str(home / "cache"),
        "LLM_INSTALLER_LOGS_DIR": str(home / "logs"),
        "LLM_INSTALLER_CONFIG": str(home / "config.yaml"),
        "LLM_INSTALLER_ROOTFS": "1",
    }
    for name in ("HF_TOKEN", "LLM_INSTALLER_DEBUG"):
        env.pop(name, None)
    return {"env": env, "models": home / "models"}


def make_distilbert_classifier(path: Path) -> Path:
    from transformers import (
        DistilBertConfig,
        DistilBertForSequenceClassification,
        DistilBertTokenizerFast,
    )

    path.mkdir(parents=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"]
    (path / "vocab.txt").write_text("\n".join(words) + "\n")
    config = DistilBertConfig(
        vocab_size=len(words), dim=32, n_layers=1, n_heads=2, hidden_dim=64,
        id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
    )  # fmt: skip
    DistilBertForSequenceClassification(config).save_pretrained(path)
    DistilBertTokenizerFast(str(path / "vocab.txt")).save_pretrained(path)
    return readable(path)


def readable(folder: Path) -> Path:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
    return folder


def installer(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llm_installer", *args],
        env=env["env"], capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip


def start(env: dict, model_dir: Path) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = subprocess.run(
        [str(model_dir / "start.sh"), "--no-browser", "--detach", "--port", str(port)],
        env=env["env"], capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return f"http://127.0.0.1:{port}"


def test_distilbert_classifier_installs_and_serves_its_labels(home_env, tmp_path):
    folder = make_distilbert_classifier(tmp_path / "families-tiny-sentiment")
    result = installer(home_env, "install", str(folder), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    model_dir = home_env["models"] / folder.name
    info = json.loads((model_dir / "model_info.json").read_text())
    assert info["family"] == "text-classification"
    assert info["smoke_test"]["request"] == "/generate"
    url = start(home_env, model_dir)
    try:
        described = httpx.get(f"{url}/info", timeout=30).json()
        assert described["family"] == "text-classification"
        assert described["details"]["labels"] == ["NEGATIVE", "POSITIVE"]
        answer = httpx.post(f"{url}/generate", json={"inputs": "good film"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"][0]["label"] in LABELS.values()
    finally:
        installer(home_env, "stop", str(model_dir))
        installer(home_env, "remove", str(model_dir), "--yes")  # its image too


def test_custom_code_model_runs_in_its_container_only_when_trusted(home_env, tmp_path):
    folder = readable(make_custom_code_model(tmp_path / "families-tiny-custom"))
    refused = installer(home_env, "install", str(folder), "--yes")
    assert refused.returncode == 25 and "--trust-remote-code" in refused.stderr
    result = installer(home_env, "install", str(folder), "--yes", "--trust-remote-code")
    assert result.returncode == 0, result.stdout + result.stderr
    model_dir = home_env["models"] / folder.name
    info = json.loads((model_dir / "model_info.json").read_text())
    assert info["trust_remote_code"] is True and info["smoke_test"]["passed"]
    url = start(home_env, model_dir)
    try:
        body = {"prompt": "hello", "max_tokens": 3, "temperature": 0}
        answer = httpx.post(f"{url}/generate", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["usage"]["completion_tokens"] == 3
    finally:
        installer(home_env, "stop", str(model_dir))
        installer(home_env, "remove", str(model_dir), "--yes")  # its image too
