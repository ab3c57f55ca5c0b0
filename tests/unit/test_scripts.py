"""Generated start.sh, train.sh and compose.yml against golden files, plus syntax checks.

Regenerate after an intended change: ``UPDATE_GOLDEN=1 pytest tests/unit/test_scripts.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.records import record

from llm_installer.run.scripts import render_run_scripts, write_run_scripts

GOLDEN = Path(__file__).parent / "golden_runargs"
MODEL_DIR = Path("/home/user/LLM/models/Qwen_Qwen3-0.6B")
INFO = {
    "model_id": "Qwen/Qwen3-0.6B",
    "family": "text-generation",
    "installer_version": "0.1.0",
    "device": "cuda",
    "weights_path": str(MODEL_DIR / "model"),
    "model_dir": str(MODEL_DIR),
    "installer_dir": "/home/user/llm-installer",
    "image": {"tag": "llm-installer/qwen_qwen3-0.6b:abc123", "flavour": "cuda"},
}
CASES = {
    "cuda": (INFO, (1000, 1000)),
    "cpu_local_folder": (
        {**INFO, "device": "cpu", "weights_path": "/data/my model", "image": {"tag": "llm-installer/x:1"}},
        (0, 0),
    ),
}  # fmt: skip


def rendered(case: str) -> dict[str, str]:
    info, uid_gid = CASES[case]
    return render_run_scripts(MODEL_DIR, record(info), uid_gid)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", ["start.sh", "train.sh", "compose.yml"])
def test_scripts_match_golden(case, name):
    actual = rendered(case)[name]
    path = GOLDEN / f"{case}.{name}"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual)
    assert actual == path.read_text(), f"{path} differs; UPDATE_GOLDEN=1 regenerates it"


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", ["start.sh", "train.sh"])
def test_scripts_are_valid_bash(tmp_path, case, name):
    script = tmp_path / name
    script.write_text(rendered(case)[name])
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_compose_binds_to_localhost(case):
    compose = yaml.safe_load(rendered(case)["compose.yml"])
    (service,) = compose["services"].values()
    assert service["ports"] == ["127.0.0.1:${LLM_PORT:-8000}:8000"]
    assert service["volumes"][0].endswith(":/model:ro")
    assert "/health/ready" in " ".join(service["healthcheck"]["test"])
    assert service["command"][:4] == ["python", "-m", "llm_runtime", "serve"]
    gpu = CASES[case][0]["device"] == "cuda"
    assert ("deploy" in service) == gpu
    assert ("user" in service) == (CASES[case][1][0] != 0)


def test_local_folder_weights_are_quoted_absolute_paths():
    texts = rendered("cpu_local_folder")
    assert "WEIGHTS='/data/my model'" in texts["start.sh"]
    assert yaml.safe_load(texts["compose.yml"])["services"]["qwen_qwen3-0-6b"]["volumes"][0] == (
        "/data/my model:/model:ro"
    )


def test_write_run_scripts_makes_executables(tmp_path):
    written = write_run_scripts(tmp_path, record(INFO, weights_path=str(tmp_path / "model")))
    assert [p.name for p in written] == ["start.sh", "train.sh", "compose.yml"]
    for path in written[:2]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert '"$MODEL_DIR/model"' in written[0].read_text()


def test_train_sh_hands_over_to_the_installers_train_command(tmp_path):
    """train.sh → `llm-installer train MODEL_DIR ...`: a missing --data is its error, exit 2."""
    installer_python = tmp_path / "installer" / ".venv" / "bin" / "python"
    installer_python.parent.mkdir(parents=True)
    installer_python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    installer_python.chmod(0o755)
    model_dir = tmp_path / "model-dir"
    (model_dir / "model").mkdir(parents=True)
    info = {**INFO, "weights_path": str(model_dir / "model"), "model_dir": str(model_dir)}
    (model_dir / "model_info.json").write_text(json.dumps(info))
    (model_dir / ".install_complete").write_text("")
    write_run_scripts(model_dir, record(INFO, installer_dir=str(tmp_path / "installer")))
    config = tmp_path / "config.yaml"
    config.write_text("")
    env = {
        **os.environ,
        "LLM_INSTALLER_CONFIG": str(config),
        "LLM_INSTALLER_MODELS_DIR": str(tmp_path / "models"),
        "LLM_INSTALLER_LOGS_DIR": str(tmp_path / "logs"),
        "LLM_INSTALLER_CACHE_DIR": str(tmp_path / "cache"),
    }
    result = subprocess.run(
        [str(model_dir / "train.sh"), "--epochs", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--data is required" in result.stdout + result.stderr
    assert "arrives soon" not in result.stdout + result.stderr
