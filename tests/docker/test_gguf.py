"""GGUF repos on the llama.cpp engine, installed into real images and served from containers.

A tiny Llama is written as F16 and Q8_0 GGUF files (tests/tiny_gguf.py); the repo has no
config.json. `install --quant Q8_0` fetches only that file from the test Hub; a local folder of
.gguf files installs as it is. The dependency image compiles llama-cpp-python once (a wheel
stage); both installs share it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tiny_gguf import make_gguf_repo
from tiny_models import make_tiny_llama

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.timeout(3600),
]  # the first builds llama.cpp
REPO = "test-org/tiny-llama-gguf"
API_KEY = "sk-gguf-test"


@pytest.fixture(scope="module")
def env(hub_server, docker_client, rootfs_image, tmp_path_factory):
    """A user whose ~/LLM is a temp folder and whose Hub is the test Hub."""
    home = tmp_path_factory.mktemp("llm-home-gguf")
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
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "LLM_INSTALLER_DEBUG", "LLM_API_KEY"):
        variables.pop(name, None)
    return {"env": variables, "models": home / "models"}


@pytest.fixture(scope="module")
def gguf_repo(hub_server, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gguf")
    folder = make_gguf_repo(make_tiny_llama(root / "llama"), root / "tiny-llama-gguf")
    hub_server.add_folder(REPO, folder)
    return folder


def installer(env, *args: str, timeout: float = 2400) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "llm_installer", *args]
    return subprocess.run(
        command, env=env["env"], capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_check_lists_quantizations_and_recommends_the_largest_that_fits(env, gguf_repo):
    result = installer(env, "check", REPO, "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {row["quantization"]: row for row in json.loads(result.stdout)["quantizations"]}
    assert set(rows) == {"F16", "Q8_0"}
    assert rows["F16"]["size_bytes"] == (gguf_repo / "tiny-llama-F16.gguf").stat().st_size
    assert rows["Q8_0"]["size_bytes"] < rows["F16"]["size_bytes"]
    assert rows["F16"]["memory_cpu_bytes"] > rows["F16"]["size_bytes"] and rows["F16"]["fits"] == [
        "cpu"
    ]
    assert rows["F16"]["recommended"] and not rows["Q8_0"]["recommended"]
    text = installer(env, "check", REPO, timeout=300).stdout
    assert "GGUF quantizations" in text and "Q8_0" in text and "recommended" in text


def test_install_quant_downloads_one_file_and_serves_our_api(
    env, gguf_repo, hub_server, docker_client
):
    hub_server.reset_counters()
    result = installer(env, "install", REPO, "--quant", "q8_0", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        hub_server.bytes_for(REPO, "tiny-llama-Q8_0.gguf")
        == (gguf_repo / "tiny-llama-Q8_0.gguf").stat().st_size
    )
    assert hub_server.bytes_for(REPO, "tiny-llama-F16.gguf") == 0
    model_dir = env["models"] / "test-org_tiny-llama-gguf"
    info = json.loads((model_dir / "model_info.json").read_text())
    assert (info["family"], info["gguf_file"], info["gguf_quantization"]) == (
        "gguf",
        "tiny-llama-Q8_0.gguf",
        "Q8_0",
    )
    assert not (model_dir / "model" / "tiny-llama-F16.gguf").exists()
    assert any(line.startswith("llama_cpp_python==0.3.36") for line in info["pip_freeze"])
    port = free_port()
    started = subprocess.run(
        [str(model_dir / "start.sh"), "--no-browser", "--detach", "--port", str(port), "--api-key", API_KEY],
        env=env["env"], capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        _exercise_api(f"http://127.0.0.1:{port}")
    finally:
        installer(env, "stop", str(model_dir), timeout=120)


def _exercise_api(url: str) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    assert httpx.get(f"{url}/info", timeout=30).status_code == 401
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        info = client.get("/info").json()
        assert info["family"] == "gguf" and info["details"]["engine"] == "llama.cpp"
        assert info["details"]["gguf_file"] == "tiny-llama-Q8_0.gguf" and info["dtype"] == "Q8_0"
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "temperature": 0}
        answer = client.post("/v1/chat/completions", json=chat).json()
        assert (
            answer["usage"]["completion_tokens"] == 6
            and answer["choices"][0]["finish_reason"] == "length"
        )
        body = {"prompt": "the quick brown", "max_tokens": 5, "temperature": 0}
        plain = client.post("/generate", json=body).json()
        with client.stream("POST", "/generate/stream", json=body) as response:
            events = [
                json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")
            ]
        assert (
            events[-1]["finished"]
            and "".join(e.get("token", "") for e in events[:-1]) == plain["text"]
        )
        completion = client.post(
            "/v1/completions", json={"prompt": "hello", "max_tokens": 3}
        ).json()
        assert completion["usage"]["completion_tokens"] == 3
        too_long = client.post("/generate", json={"prompt": "hi", "max_tokens": 100_000})
        assert too_long.status_code == 400 and "context" in too_long.json()["error"]["message"]
        assert "prompt_tokens_total" in client.get("/metrics").text
        assert "<html" in client.get("/").text.lower()
    from websockets.sync.client import connect

    with connect(url.replace("http", "ws") + "/ws", additional_headers=headers) as socket_:
        socket_.send(json.dumps(body))
        while not (event := json.loads(socket_.recv())).get("finished"):
            pass
    assert event["usage"]["completion_tokens"] == 5


def test_local_folder_of_gguf_files_installs_and_answers(env, gguf_repo, tmp_path):
    result = installer(env, "install", str(gguf_repo), "--quant", "F16", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    info = json.loads((env["models"] / "tiny-llama-gguf" / "model_info.json").read_text())
    assert info["gguf_file"] == "tiny-llama-F16.gguf" and info["smoke_test"]["passed"]
    assert info["weights_path"] == str(gguf_repo.resolve())  # mounted where it is, read-only


def test_unknown_quant_names_the_available_ones(env, gguf_repo):
    result = installer(env, "install", REPO, "--quant", "Q2_K", "--yes", timeout=300)
    assert result.returncode == 2
    assert (
        "has no Q2_K quantization" in result.stdout + result.stderr
        and "Q8_0, F16" in result.stdout + result.stderr
    )
