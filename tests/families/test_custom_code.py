"""Custom-code models (modeling_*.py + auto_map): check flags them, install refuses them without
--trust-remote-code, and the runtime loads them only when model_info.json records the opt-in,
from a local folder and from the test Hub (downloaded with the real huggingface_hub client)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from runtime_server import start_server
from tiny_custom import make_custom_code_model
from typer.testing import CliRunner

from llm_installer.cli import app

REPO = "test-org/tiny-custom-code"
runner = CliRunner()


@pytest.fixture(scope="module")
def custom_dir(tmp_path_factory) -> Path:
    return make_custom_code_model(tmp_path_factory.mktemp("custom") / "model")


def installed(custom_dir: Path, root: Path, *, trusted: bool) -> Path:
    """The install layout: DIR/model (the files) and DIR/model_info.json (family, opt-in)."""
    model = root / "model"
    shutil.copytree(custom_dir, model)
    info = {"family": "text-generation", "model_id": REPO, "trust_remote_code": trusted}
    (root / "model_info.json").write_text(json.dumps(info))
    return model


def generate(url: str) -> dict:
    body = {"prompt": "hello", "max_tokens": 4, "temperature": 0}
    response = httpx.post(f"{url}/generate", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def test_check_flags_custom_code_and_install_refuses_without_opt_in(custom_dir, llm_home):
    result = runner.invoke(app, ["check", str(custom_dir), "--json"])
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert profile["family"] == "text-generation"
    assert profile["trust_remote_code"] is True
    assert any("--trust-remote-code" in w for w in profile["warnings"])
    refused = runner.invoke(app, ["install", str(custom_dir), "--yes"])
    assert refused.exit_code == 25
    assert "--trust-remote-code" in refused.output
    assert not list((llm_home / "models").iterdir())  # nothing written


def test_served_only_when_install_recorded_the_opt_in(custom_dir, tmp_path):
    trusted = start_server(installed(custom_dir, tmp_path / "yes", trusted=True), tmp_path / "l1")
    refused = start_server(installed(custom_dir, tmp_path / "no", trusted=False), tmp_path / "l2")
    try:
        trusted.wait_ready()
        answer = generate(trusted.url)
        assert answer["usage"]["completion_tokens"] == 4
        info = httpx.get(f"{trusted.url}/info", timeout=10).json()
        assert info["family"] == "text-generation"
        refused.wait_ready(expect_failure=True)
        ready = httpx.get(f"{refused.url}/health/ready", timeout=10)
        assert ready.status_code == 503
        assert "--trust-remote-code" in refused.log_text()  # what to do, not a prompt
    finally:
        trusted.stop()
        refused.stop()


def test_from_the_test_hub(custom_dir, hub_env, llm_home, tmp_path):
    from rich.console import Console

    from llm_installer.build.download import download, plan_download

    files = {p.name: p.read_bytes() for p in custom_dir.iterdir() if p.is_file()}
    hub_env.add_repo(REPO, files, library_name="transformers")
    result = runner.invoke(app, ["check", REPO, "--json"])
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert profile["trust_remote_code"] is True
    target = tmp_path / "hub" / "model"
    download(plan_download(profile), target, token=None, workers=2, console=Console(quiet=True))
    assert (target / "modeling_tinycustom.py").is_file()  # the code travels with the weights
    (target.parent / "model_info.json").write_text(
        json.dumps({"family": profile["family"], "model_id": REPO, "trust_remote_code": True})
    )
    server = start_server(target, tmp_path / "logs")
    try:
        server.wait_ready()
        assert generate(server.url)["usage"]["completion_tokens"] == 4
    finally:
        server.stop()
