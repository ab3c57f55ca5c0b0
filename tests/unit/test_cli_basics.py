"""The CLI's surface: version, help, config sources, list, and a light start-up (no torch)."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from llm_installer import __version__
from llm_installer.cli import app

runner = CliRunner()


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).stdout.strip() == f"llm-installer {__version__}"
    help_text = runner.invoke(app, ["--help"]).stdout
    for command in ("check", "install", "list", "config", "start", "base"):
        assert command in help_text


def test_config_json_names_each_source(llm_home, monkeypatch):
    monkeypatch.setenv("LLM_INSTALLER_MAX_DOWNLOAD_WORKERS", "7")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    data = json.loads(runner.invoke(app, ["config", "--json"]).stdout)
    assert data["values"]["max_download_workers"] == 7
    assert data["sources"]["max_download_workers"] == "env LLM_INSTALLER_MAX_DOWNLOAD_WORKERS"
    assert data["sources"]["huggingface_token"] == "env HF_TOKEN"
    assert "hf_secret_value_123" not in json.dumps(data)


def test_list_json_reports_incomplete_and_complete(llm_home):
    models = llm_home / "models"
    (models / "org_done").mkdir()
    (models / "org_done" / "model_info.json").write_text(
        json.dumps({"model_id": "org/done", "family": "embedding"})
    )
    (models / "org_done" / ".install_complete").write_text("")
    (models / "org_half").mkdir()
    listed = {m["name"]: m for m in json.loads(runner.invoke(app, ["list", "--json"]).stdout)}
    assert (
        listed["org_done"]["status"] == "complete" and listed["org_done"]["family"] == "embedding"
    )
    assert listed["org_half"]["status"] == "incomplete"


def test_check_never_imports_torch_or_transformers():
    code = (
        "import sys, llm_installer.cli, llm_installer.check.checker, llm_installer.check.profile, llm_installer.check.report, "
        "llm_installer.check.hub_source, llm_installer.check.families as f; [f.family_for(n) for n in f.supported_families()]; "
        "print(sorted(m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
