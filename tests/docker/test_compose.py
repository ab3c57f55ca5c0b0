# ruff: noqa: F811 - the fixtures imported from test_install are parameters of the tests below
"""Compose files under the real `docker-compose` (v1.29; the v2 plugin reads the same files).

Two tiny models are installed through the installer (as in test_install.py), then their own
compose.yml and an `llm-installer compose` stack of both are brought up, asked, and taken down.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from test_install import free_port, install_env, installer, readable  # noqa: F401 - fixtures
from tiny_models import make_tiny_llama

pytestmark = [pytest.mark.docker, pytest.mark.slow]
MODELS = ("compose-alpha", "compose-beta")
CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}


@pytest.fixture(scope="module")
def compose_tool() -> str:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not on PATH (CI installs the docker-compose package)")
    return tool


@pytest.fixture(scope="module")
def two_installed(install_env, tmp_path_factory) -> list[Path]:  # noqa: F811 - the imported fixture
    folders = []
    for seed, name in enumerate(MODELS):
        source = readable(
            make_tiny_llama(tmp_path_factory.mktemp("sources") / name, seed=20 + seed)
        )
        result = installer(install_env, "install", str(source), "--yes")
        assert result.returncode == 0, result.stdout + result.stderr
        folders.append(install_env["models"] / name)
    return folders


def compose_run(
    tool: str, file: Path, project: str, *args: str, env=None
) -> subprocess.CompletedProcess:
    command = [tool, "-f", str(file), "-p", project, *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=180, env=env, check=False
    )


def wait_for(url: str, timeout: float = 150) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = httpx.get(url, timeout=5)
            if reply.status_code == 200:
                return reply
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer 200 within {timeout} s")
        time.sleep(1)


class Up:
    """`docker-compose up -d` for a with-block; `down` always, even when an assertion fails."""

    def __init__(self, tool: str, file: Path, env=None) -> None:
        self.tool, self.file, self.env = tool, file, env
        self.project = f"llmtest-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> Up:
        started = compose_run(self.tool, self.file, self.project, "up", "-d", env=self.env)
        if started.returncode != 0:
            self.__exit__()
            pytest.fail(f"docker-compose up failed: {started.stderr}")
        return self

    def __exit__(self, *exc) -> None:
        compose_run(self.tool, self.file, self.project, "down", "--timeout", "5", env=self.env)


def test_a_model_folders_own_compose_file_serves(compose_tool, two_installed, install_env):
    model_dir = two_installed[0]
    port = free_port()
    env = {**install_env["env"], "LLM_PORT": str(port)}
    with Up(compose_tool, model_dir / "compose.yml", env):
        wait_for(f"http://127.0.0.1:{port}/health/ready")
        assert httpx.get(f"http://127.0.0.1:{port}/info").json()["model_id"] == MODELS[0]


def test_stack_gateway_routes_each_model_to_its_service(
    compose_tool,
    two_installed,
    install_env,
    tmp_path,
):
    port_base, gateway_port = free_port(), free_port()
    stack = tmp_path / "stack"
    result = installer(
        install_env, "compose", *MODELS, "--output", str(stack),
        "--port-base", str(port_base), "--gateway-port", str(gateway_port), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    gateway = f"http://127.0.0.1:{gateway_port}"
    with Up(compose_tool, stack / "compose.yml", install_env["env"]):
        for offset, model in enumerate(MODELS):  # each service on its own port, serving its model
            wait_for(f"http://127.0.0.1:{port_base + offset}/health/ready")
            assert (
                httpx.get(f"http://127.0.0.1:{port_base + offset}/info").json()["model_id"] == model
            )
        listed = wait_for(f"{gateway}/v1/models").json()
        assert sorted(m["id"] for m in listed["data"]) == sorted(MODELS)
        for model in MODELS:
            reply = httpx.post(
                f"{gateway}/v1/chat/completions", json={**CHAT, "model": model}, timeout=60
            )
            assert reply.status_code == 200, reply.text
            assert (
                reply.json()["model"] == model and reply.json()["usage"]["completion_tokens"] >= 1
            )
        unknown = httpx.post(
            f"{gateway}/v1/chat/completions", json={**CHAT, "model": "gpt-4o"}, timeout=30
        )
        assert unknown.status_code == 404
        assert all(model in unknown.json()["error"]["message"] for model in MODELS)


def test_printed_up_and_header_down_are_one_project(
    compose_tool,
    two_installed,
    install_env,
    tmp_path,
    docker_client,
):
    """Issue 14 item 12: `down` as compose.yml's header says it removes what the printed `up` made."""
    stack = tmp_path / "one-project"
    result = installer(
        install_env, "compose", *MODELS, "--output", str(stack), "--name", f"proj{uuid.uuid4().hex[:6]}",
        "--port-base", str(free_port()), "--gateway-port", str(free_port()), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    up = next(
        line.split("start:")[1].split("(or")[0]
        for line in result.stdout.splitlines()
        if "start:" in line
    )
    header = next(
        line
        for line in (stack / "compose.yml").read_text().splitlines()
        if line.strip().endswith("stop")
    )
    down = header.lstrip("# ").rsplit("down", 1)[0] + "down"
    tool = lambda text: [compose_tool, *text.split()[2:]]  # noqa: E731 - `docker compose` → v1 tool
    project = up.split("-p ")[1].split()[0]
    created = subprocess.run(tool(up.replace("up -d", "up --no-start")), cwd=tmp_path, capture_output=True, text=True, env=install_env["env"], timeout=180, check=False)  # fmt: skip
    try:
        assert created.returncode == 0, created.stderr
        labelled = {"label": f"com.docker.compose.project={project}"}
        assert len(docker_client.containers.list(all=True, filters=labelled)) == len(MODELS) + 1
        downed = subprocess.run([*tool(down), "--timeout", "5"], cwd=stack, capture_output=True, text=True, env=install_env["env"], timeout=180, check=False)  # fmt: skip
        assert downed.returncode == 0, downed.stderr
        assert docker_client.containers.list(all=True, filters=labelled) == []
    finally:
        compose_run(
            compose_tool,
            stack / "compose.yml",
            project,
            "down",
            "--timeout",
            "5",
            env=install_env["env"],
        )
