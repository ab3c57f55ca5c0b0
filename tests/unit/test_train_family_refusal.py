"""`llm-installer train` refuses a family train.sh cannot fine-tune before any container starts,
with the reason, what works and its own exit code (42); the report of `check` says the same."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llm_installer.cli import app


def installed(llm_home, family: str):
    folder = llm_home / "models" / f"families-{family}"
    (folder / "model").mkdir(parents=True)
    info = {"family": family, "model_id": f"test/{family}"}
    (folder / "model_info.json").write_text(json.dumps(info))
    (folder / ".install_complete").write_text("now\n")
    return folder


@pytest.mark.parametrize("family", ["image-classification", "diffusion", "speech-recognition"])
def test_untrainable_family_exits_42_with_the_reason(llm_home, tmp_path, family):
    folder = installed(llm_home, family)
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "x"}\n')
    result = CliRunner().invoke(app, ["train", str(folder), "--data", str(data)])
    assert result.exit_code == 42, result.output
    assert "cannot fine-tune" in result.output and "embedding" in result.output
    assert not (folder / "checkpoints").exists()  # refused before anything was prepared
