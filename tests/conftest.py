"""Fixtures shared by every test folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def llm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated ~/LLM: models, cache and logs under tmp_path, an empty config file."""
    home = tmp_path / "LLM"
    for name in ("models", "cache", "logs"):
        (home / name).mkdir(parents=True)
        monkeypatch.setenv(f"LLM_INSTALLER_{name.upper()}_DIR", str(home / name))
    config = home / "config.yaml"
    config.write_text("{}\n")
    monkeypatch.setenv("LLM_INSTALLER_CONFIG", str(config))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("LLM_INSTALLER_DEBUG", raising=False)
    return home
