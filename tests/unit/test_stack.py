"""`llm-installer compose`: the stack folder for installed models, and its gateway's routing.

The stack runs under a real compose tool in tests/docker/test_compose.py; here its text and the
gateway (standard library, run as a process in front of two HTTP servers) are checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from llm_installer.cli import app
from llm_installer.settings import PROJECT_DIR

runner = CliRunner()
SECRET = "hf_secret_value_for_stack_test"


def fake_install(models: Path, folder: str, model_id: str, *, complete: bool = True) -> Path:
    model_dir = models / folder
    (model_dir / "model").mkdir(parents=True)
    info = {
        "model_id": model_id,
        "family": "text-generation",
        "device": "cpu",
        "image": {"tag": f"img/{folder}:1"},
    }
    (model_dir / "model_info.json").write_text(json.dumps(info))
    if complete:
        (model_dir / ".install_complete").write_text("")
    return model_dir


@pytest.fixture
def two_models(llm_home, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    models = llm_home / "models"
    return fake_install(models, "org_alpha", "org/alpha"), fake_install(models, "beta", "beta")


def compose(*args: str):
    return runner.invoke(app, ["compose", *args])


def test_stack_has_a_service_per_model_and_a_gateway(two_models, llm_home):
    alpha, beta = two_models
    result = compose("org/alpha", "beta", "--port-base", "9100", "--gateway-port", "9000")
    assert result.exit_code == 0, result.output
    folder = llm_home / "stacks" / "org_alpha-beta"
    text = (folder / "compose.yml").read_text()
    assert SECRET not in text and "HF_TOKEN" not in text
    services = yaml.safe_load(text)["services"]
    assert sorted(services) == ["beta", "gateway", "org_alpha"]
    for model_dir, port in ((alpha, 9100), (beta, 9101)):
        service = services[model_dir.name.lower()]
        assert service["image"] == f"img/{model_dir.name}:1"
        assert service["ports"] == [f"127.0.0.1:{port}:8000"]
        assert service["volumes"] == [
            f"{model_dir / 'model'}:/model:ro", f"{model_dir / 'lora'}:/lora:ro", f"{model_dir / 'logs'}:/logs"
        ]  # fmt: skip
        # root on the host → the image's own unprivileged user
        assert service.get("user") == (f"{os.getuid()}:{os.getgid()}" if os.getuid() else None)
        assert "/health/ready" in " ".join(service["healthcheck"]["test"])
        assert (model_dir / "logs").is_dir()
    gateway = services["gateway"]
    assert gateway["ports"] == ["127.0.0.1:9000:8080"] and gateway["image"] == "img/org_alpha:1"
    assert gateway["volumes"] == [
        "./gateway.py:/gateway/gateway.py:ro",
        "./gateway_ui.html:/gateway/gateway_ui.html:ro",
        "./host_policy.py:/gateway/host_policy.py:ro",
    ]
    assert gateway["environment"]["LLM_GATEWAY_HOST"] == "127.0.0.1"
    assert sorted(gateway["depends_on"]) == ["beta", "org_alpha"]
    routes = json.loads(gateway["environment"]["LLM_GATEWAY_ROUTES"])
    assert [(r["id"], r["url"]) for r in routes] == [
        ("org/alpha", "http://org_alpha:8000"),
        ("beta", "http://beta:8000"),
    ]
    assert (folder / "gateway.py").read_text() == (
        PROJECT_DIR / "compose" / "gateway.py"
    ).read_text()
    assert (folder / "host_policy.py").read_text() == (
        PROJECT_DIR / "runtime" / "host_policy.py"
    ).read_text()


def test_per_model_compose_and_stack_share_the_service_definition(two_models, tmp_path):
    alpha, _ = two_models
    assert (
        compose("org/alpha", "--output", str(tmp_path / "s"), "--port-base", "8000").exit_code == 0
    )
    from llm_installer.run.installed import load_model_info
    from llm_installer.run.scripts import render_run_scripts

    own = yaml.safe_load(
        render_run_scripts(alpha, load_model_info(alpha), (1000, 1000))["compose.yml"]
    )
    stack = yaml.safe_load((tmp_path / "s" / "compose.yml").read_text())
    (own_service,) = own["services"].values()
    stacked = stack["services"]["org_alpha"]
    for key in ("image", "command", "healthcheck", "environment", "init", "shm_size", "restart"):
        assert stacked[key] == own_service[key], key
    assert "name" not in own  # docker-compose 1.29 refuses a top-level name


def test_missing_models_are_named_and_nothing_is_written(two_models, llm_home):
    fake_install(llm_home / "models", "half", "half", complete=False)
    result = compose("org/alpha", "no/such-model", "half")
    assert result.exit_code == 33
    assert (
        "no/such-model, half" in result.output
        and "llm-installer install no/such-model" in result.output
    )
    assert "Traceback" not in result.output
    assert not (llm_home / "stacks").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["beta", "beta"], "named twice"), (["beta", "--port-base", "8080"], "must be distinct"), (["beta", "--name", "!!"], "stack name")],
)  # fmt: skip
def test_bad_arguments_exit_2_with_a_message(two_models, args, message):
    result = compose(*args)
    assert result.exit_code == 2 and message in result.output


class Upstream(BaseHTTPRequestHandler):
    """A model server stand-in that answers with its own name, so routing can be seen."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        payload = json.dumps(
            {
                "served_by": self.server.name,
                "model": body["model"],
                "auth": self.headers.get("Authorization"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def serve(name: str) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server.name = name
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def gateway(unused_port):
    upstreams = [serve("alpha"), serve("beta")]
    routes = [
        {"id": f"org/{s.name}", "aliases": [s.name], "url": f"http://127.0.0.1:{s.server_port}"}
        for s in upstreams
    ]
    env = {
        **os.environ,
        "LLM_GATEWAY_ROUTES": json.dumps(routes),
        "LLM_GATEWAY_PORT": str(unused_port),
        "LLM_API_KEY": "k",
    }
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "compose" / "gateway.py")], env=env
    )
    url = f"http://127.0.0.1:{unused_port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        for server in upstreams:
            server.shutdown()


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gateway_routes_by_model_and_lists_them(gateway):
    auth = {"Authorization": "Bearer k"}
    listed = httpx.get(f"{gateway}/v1/models", headers=auth).json()
    assert [m["id"] for m in listed["data"]] == ["org/alpha", "org/beta"]
    for model, expected in (("org/alpha", "alpha"), ("BETA", "beta")):
        reply = httpx.post(f"{gateway}/v1/chat/completions", json={"model": model}, headers=auth)
        assert reply.status_code == 200 and reply.json()["served_by"] == expected
        assert reply.json()["auth"] == "Bearer k"
    unknown = httpx.post(f"{gateway}/v1/chat/completions", json={"model": "gpt-4"}, headers=auth)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"].endswith("Available models: org/alpha, org/beta.")
    assert httpx.post(f"{gateway}/v1/completions", json={}, headers=auth).status_code == 400
    assert httpx.get(f"{gateway}/v1/models").status_code == 401


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed"
)
def test_real_compose_accepts_both_files(two_models, tmp_path):
    alpha, _ = two_models
    assert compose("org/alpha", "beta", "--output", str(tmp_path / "s")).exit_code == 0
    from llm_installer.run.installed import load_model_info
    from llm_installer.run.scripts import write_run_scripts

    write_run_scripts(alpha, load_model_info(alpha))
    for file in (alpha / "compose.yml", tmp_path / "s" / "compose.yml"):
        checked = subprocess.run(
            ["docker-compose", "-f", str(file), "config", "-q"], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stderr
