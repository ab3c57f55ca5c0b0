"""Stacks through the real CLI in a child process (issue 14, item 12): one compose project name
everywhere, a warning for a port already held, and `remove` naming the stacks that serve a model."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def fake_install(models: Path, folder: str, model_id: str) -> Path:
    model_dir = models / folder
    (model_dir / "model").mkdir(parents=True)
    info = {
        "model_id": model_id,
        "family": "text-generation",
        "device": "cpu",
        "image": {"tag": f"img/{folder}:1"},
    }
    (model_dir / "model_info.json").write_text(json.dumps(info))
    (model_dir / ".install_complete").write_text("")
    return model_dir


@pytest.fixture
def two_models(llm_home):
    models = llm_home / "models"
    return fake_install(models, "org_alpha", "org/alpha"), fake_install(models, "beta", "beta")


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llm_installer", *args],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "250", **env}, timeout=60, check=False,
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_header_and_printed_commands_name_one_project(two_models, llm_home):
    result = run_cli(
        "compose",
        "org/alpha",
        "beta",
        "--port-base",
        str(free_port()),
        "--gateway-port",
        str(free_port()),
    )
    assert result.returncode == 0, result.stderr
    folder = llm_home / "stacks" / "org_alpha-beta"
    header = [
        line for line in (folder / "compose.yml").read_text().splitlines() if line.startswith("#")
    ]
    in_header = {m for line in header for m in re.findall(r"docker compose -p (\S+)", line)}
    printed = re.findall(r"docker compose -p (\S+) -f (\S+) (up -d|down)", result.stdout)
    assert in_header == {"llm-stack-org_alpha-beta"}
    assert [(p, f, c) for p, f, c in printed] == [
        ("llm-stack-org_alpha-beta", str(folder / "compose.yml"), "up -d"),
        ("llm-stack-org_alpha-beta", str(folder / "compose.yml"), "down"),
    ]


def test_compose_warns_about_a_held_port(two_models):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        gateway = free_port()
        result = run_cli(
            "compose",
            "org/alpha",
            "beta",
            "--port-base",
            str(port - 1),
            "--gateway-port",
            str(gateway),
        )
    assert result.returncode == 0, result.stderr
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr
    assert result.stderr.count("already in use") == 1  # only the held one
    assert "Stack written" in result.stdout  # a warning: the stack is still written


def test_compose_is_quiet_when_ports_are_free(two_models):
    result = run_cli(
        "compose",
        "org/alpha",
        "beta",
        "--port-base",
        str(free_port()),
        "--gateway-port",
        str(free_port()),
    )
    assert result.returncode == 0 and "Warning" not in result.stderr


def test_remove_names_the_stacks_that_serve_the_model(two_models, llm_home, tmp_path):
    elsewhere = tmp_path / "my-stack"
    for extra in ([], ["--output", str(elsewhere)]):
        ports = ["--port-base", str(free_port()), "--gateway-port", str(free_port())]
        assert run_cli("compose", "org/alpha", "beta", *ports, *extra).returncode == 0
    assert run_cli("compose", "beta", "--name", "only-beta").returncode == 0
    # No engine here: remove stops at the image (exit 20), after saying what it found.
    result = run_cli("remove", "org/alpha", "--yes", DOCKER_HOST=f"unix://{tmp_path}/none.sock")
    assert "Traceback" not in result.stderr
    warnings = result.stderr.replace("\n", " ")
    assert str(llm_home / "stacks" / "org_alpha-beta") in warnings
    assert str(elsewhere) in warnings
    assert "only-beta" not in warnings
    assert result.returncode == 20 and two_models[0].is_dir()  # the folder is put back
