"""What the real CLI prints at 80 columns (issue 14, item 13): help and `list` never cut a name,
an image tag or a URL, flags show no `<bool>`, and a CPU start says why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from llm_installer.cli import app
from llm_installer.run.devices import HostRuntime


def run_cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm-256color"}
    return subprocess.run(
        [sys.executable, "-m", "llm_installer", *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def commands() -> dict[str, Any]:
    """Every command and sub-command of the real app, by its words (``base build``)."""
    found: dict[str, Any] = {}

    def walk(command: Any, words: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):  # a group (typer may bring its own click)
            for name, sub in command.commands.items():
                walk(sub, (*words, name))
        else:
            found[" ".join(words)] = command

    walk(typer.main.get_command(app), ())
    return found


@pytest.mark.parametrize("words", sorted(commands()))
def test_help_fits_80_columns_with_every_option_whole(words):
    result = run_cli(*words.split(), "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "<bool>" not in text
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for param in commands()[words].params:
        for name in param.opts + param.secondary_opts:
            if name.startswith("-"):
                assert name in text, f"{name} is missing or cut in `{words} --help`"


def test_flags_have_no_negative_twin_unless_declared():
    text = run_cli("install", "--help").stdout
    assert "--no-trust-remote-code" not in text and "--trust-remote-code" in text


def test_list_shows_whole_folder_and_image_at_80_columns(llm_home):
    folder = llm_home / "models" / "sentence-transformers_all-MiniLM-L6-v2"
    folder.mkdir()
    image = "llm-installer/model-sentence-transformers_all-minilm-l6-v2:4f2a9c1b7d3e"
    info = {
        "model_id": "sentence-transformers/all-MiniLM-L6-v2",
        "family": "embedding",
        "image": {"tag": image},
    }
    (folder / "model_info.json").write_text(json.dumps(info))
    (folder / ".install_complete").write_text("")
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line[:1] in "┏┃┡│└"]  # the table
    assert lines and max(len(line) for line in lines) <= 80
    body = [line.split("│")[1:-1] for line in lines if line.startswith("│")]
    columns = ["".join(cell.strip() for cell in column) for column in zip(*body, strict=True)]
    assert folder.name in columns and image in columns


def test_cpu_start_says_why(tmp_path: Path):
    """A model installed for CPU on a host without an NVIDIA GPU: the reasons, not silence."""
    from llm_installer.run.start_plan import ModelPaths, StartOptions, plan_start
    from llm_runtime.model_info import ModelInfo

    info = ModelInfo.new(
        model_id="m", family="text-generation", device="cpu", image={"tag": "x:1", "flavour": "cpu"}
    )
    paths = ModelPaths(
        model_dir=tmp_path, weights=tmp_path / "model", logs=tmp_path / "logs", lora=tmp_path / "lora",
        checkpoints=tmp_path / "checkpoints", installer_dir=tmp_path, protected=(),
    )  # fmt: skip
    host = HostRuntime(os="linux", nvidia_runtime=False, gpu_count=0, uid=1000, gid=1000)
    warnings = " ".join(plan_start(info, paths, host, StartOptions()).warnings)
    assert "Running on CPU: the model's image was built for CPU" in warnings
    assert "NVML finds no NVIDIA GPU" in warnings
    asked = plan_start(info, paths, host, StartOptions(device="cpu")).warnings
    assert asked == ("Running on CPU: --device cpu.",)
