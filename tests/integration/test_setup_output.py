"""./setup.sh on a copy of this checkout (issue 14, item 13): its own lines, no setuptools banner."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llm_installer.settings import PROJECT_DIR

pytestmark = [pytest.mark.slow]
_IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "__pycache__", ".pytest_cache", "config.yaml"
)


def not_copied(folder: str, names: list[str]) -> set[str]:
    """What the copy leaves out; setuptools' build/ only at the root (installer/build/ is code)."""
    root_build = {"build"} if Path(folder) == PROJECT_DIR else set()
    return set(_IGNORED(folder, names)) | (root_build & set(names))


def test_setup_prints_no_setuptools_banner(tmp_path: Path):
    checkout = tmp_path / "checkout"
    shutil.copytree(PROJECT_DIR, checkout, ignore=not_copied, symlinks=True)
    env = {**os.environ, "HOME": str(tmp_path / "home"), "LLM_HOME": str(tmp_path / "LLM")}
    env.pop("PYTHONWARNINGS", None)
    result = subprocess.run(
        ["bash", "setup.sh", "--no-alias"], cwd=checkout, env=env,
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "installed llm-installer into .venv" in output
    for banner in ("Editable installation", "*" * 20, "BuildBackendWarning", "Traceback"):
        assert banner not in output, output[-4000:]
