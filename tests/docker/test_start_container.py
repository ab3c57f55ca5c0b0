"""start.sh → llm-installer start → a real container; then stop and remove clean up everything.

The "model image" is a tiny stand-in built FROM the offline rootfs image: its ``llm_runtime``
answers /health, /health/ready and /info (which reports what the container sees), so the test
checks our docker arguments, not model loading (tests/runtime does that).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import docker.errors
import pytest

from llm_installer.run.container import LABEL_MODEL_DIR
from llm_installer.run.scripts import write_run_scripts
from llm_runtime.model_info import ModelInfo

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]

FAKE_RUNTIME = r"""
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
logs = args[args.index("--logs-dir") + 1]
with open(os.path.join(logs, "server.log"), "a") as log:
    log.write("fake runtime started\n")
started = time.monotonic()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        ready = time.monotonic() - started > 0.5
        routes = {
            "/health": (200, {"status": "ok"}),
            "/health/ready": (200 if ready else 503, {"ready": ready}),
            "/info": (200, {
                "uid": os.getuid(),
                "model_writable": os.access("/model", os.W_OK),
                "model_files": sorted(os.listdir("/model")),
                "logs_writable": os.access(logs, os.W_OK),
                "lora_mounted": os.path.isdir("/lora"),
                "api_key_set": bool(os.environ.get("LLM_API_KEY")),
                "home": os.environ.get("HOME"),
                "argv": args,
            }),
        }
        status, body = routes.get(self.path, (404, {"error": "not found"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


HTTPServer(("0.0.0.0", port), Handler).serve_forever()
"""
DOCKERFILE = """
FROM {base}
RUN ln -sf /usr/bin/python3 /usr/local/bin/python && useradd --uid 1000 --no-create-home llm
COPY llm_runtime /opt/llm/llm_runtime
ENV PYTHONPATH=/opt/llm HOME=/tmp
USER llm
CMD ["python", "-m", "llm_runtime", "serve", "--model", "/model", "--host", "0.0.0.0", "--port", "8000", "--logs-dir", "/logs"]
"""


@pytest.fixture
def fake_model_image(docker_client, rootfs_image, tmp_path_factory):
    """Built per test (from cache after the first): a test may remove it."""
    context = tmp_path_factory.mktemp("fake-image")
    (context / "llm_runtime").mkdir()
    (context / "llm_runtime" / "__init__.py").write_text("")
    (context / "llm_runtime" / "__main__.py").write_text(FAKE_RUNTIME)
    (context / "Dockerfile").write_text(DOCKERFILE.format(base=rootfs_image))
    tag = f"llm-installer-test/fake-model:{uuid.uuid4().hex[:8]}"
    docker_client.images.build(path=str(context), tag=tag, rm=True)
    yield tag
    with contextlib.suppress(docker.errors.ImageNotFound):  # removed by the test itself
        docker_client.images.remove(tag, force=True)


@pytest.fixture
def installed(tmp_path, fake_model_image):
    """A model folder as install leaves it, pointing at the fake image."""
    models = tmp_path / "models"
    model_dir = models / "test_fake-model"
    for name in ("model", "lora", "logs", "checkpoints"):
        (model_dir / name).mkdir(parents=True)
    (model_dir / "model" / "config.json").write_text("{}")
    installer = tmp_path / "installer"  # the checkout start.sh hands over to
    python = installer / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    info = {
        "model_id": "test/fake-model",
        "family": "text-generation",
        "device": "cpu",
        "requires_gpu": False,
        "weights_path": str((model_dir / "model").resolve()),
        "model_dir": str(model_dir.resolve()),
        "installer_dir": str(installer),
        "image": {"tag": fake_model_image, "flavour": "cpu"},
    }
    (model_dir / "model_info.json").write_text(json.dumps(info))
    write_run_scripts(model_dir, ModelInfo.from_dict(info))
    (model_dir / ".install_complete").write_text("test\n")
    env = {
        **os.environ,
        "LLM_INSTALLER_MODELS_DIR": str(models),
        "LLM_INSTALLER_LOGS_DIR": str(tmp_path / "logs"),
    }
    env.pop("LLM_INSTALLER_CONFIG", None)
    return model_dir, env


@pytest.fixture(autouse=True)
def no_leftovers(docker_client):
    yield
    for container in docker_client.containers.list(all=True, filters={"label": LABEL_MODEL_DIR}):
        if "/test_fake-model" in container.labels.get(LABEL_MODEL_DIR, ""):
            container.remove(force=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=3) as response:
        return json.loads(response.read())


def installer(*args: str, env: dict, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llm_installer", *args],
        capture_output=True, text=True, env=env, timeout=timeout,
    )  # fmt: skip


def our_containers(docker_client, model_dir: Path) -> list:
    label = f"{LABEL_MODEL_DIR}={model_dir.resolve()}"
    return docker_client.containers.list(all=True, filters={"label": label})


def test_start_detached_then_stop_and_remove(docker_client, installed, fake_model_image):
    model_dir, env = installed
    port = free_port()
    started = subprocess.run(
        [str(model_dir / "start.sh"), "--no-browser", "--detach", "--port", str(port)],
        capture_output=True, text=True, env={**env, "LLM_API_KEY": "sk-test-secret"}, timeout=60,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"http://localhost:{port}" in started.stdout

    info = get_json(f"http://127.0.0.1:{port}/info")
    assert info["model_writable"] is False and info["model_files"] == ["config.json"]
    assert info["uid"] != 0 and info["logs_writable"] and info["home"] == "/tmp"
    assert info["api_key_set"] and "sk-test-secret" not in " ".join(info["argv"])
    assert info["argv"][info["argv"].index("--device") + 1] == "cpu"
    assert not info["lora_mounted"]  # lora/ is empty
    assert "fake runtime started" in (model_dir / "logs" / "server.log").read_text()

    (container,) = our_containers(docker_client, model_dir)
    bindings = container.attrs["HostConfig"]["PortBindings"]["8000/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    mounts = {m["Destination"]: m["RW"] for m in container.attrs["Mounts"]}
    assert mounts == {"/model": False, "/logs": True}

    again = installer("start", "test/fake-model", "--no-browser", "--detach", env=env)
    assert again.returncode == 35 and "already running" in again.stderr

    busy = installer("remove", "test/fake-model", "--yes", env=env)
    assert busy.returncode == 38 and model_dir.is_dir()

    stopped = installer("stop", "test/fake-model", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert our_containers(docker_client, model_dir) == []

    removed = installer("remove", "test/fake-model", "--yes", env=env)
    assert removed.returncode == 0, removed.stderr
    assert not model_dir.exists()
    assert not any(fake_model_image in t for i in docker_client.images.list() for t in i.tags)


def test_start_foreground_stops_on_ctrl_c(docker_client, installed):
    model_dir, env = installed
    port = free_port()
    child = subprocess.Popen(
        [str(model_dir / "start.sh"), "--no-browser", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        seen = []
        for line in child.stdout:  # blocks until the installer says it is ready (or exits)
            seen.append(line)
            if line.startswith("Ready"):
                break
        assert any(line.startswith("Ready") for line in seen), "".join(seen)
        assert get_json(f"http://127.0.0.1:{port}/health/ready")["ready"]
        assert len(our_containers(docker_client, model_dir)) == 1
        os.killpg(child.pid, signal.SIGINT)  # what Ctrl+C in a terminal does
        output, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert "Stopping" in output, output
    assert our_containers(docker_client, model_dir) == []  # --rm: nothing left behind


def test_start_refuses_an_incomplete_install(installed):
    model_dir, env = installed
    (model_dir / ".install_complete").unlink()
    result = installer("start", str(model_dir), "--no-browser", env=env)
    assert result.returncode == 34 and "incomplete" in result.stderr
