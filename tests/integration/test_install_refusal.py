"""install refuses, before any download, a family no image serves — with the reason, exit 25."""

from __future__ import annotations

from typer.testing import CliRunner

from llm_installer.cli import app
from llm_installer.serving import NOT_SERVED

runner = CliRunner()
GGUF_REPO = "test-org/refused-gguf"
GGUF_FILE = "tiny-Q4_K_M.gguf"


def test_unserved_family_is_refused_before_any_weight_byte(hub_env, llm_home):
    if "gguf" not in NOT_SERVED:  # pragma: no cover - the family got an engine: test its refusal
        raise AssertionError("gguf is served now: point this test at a family still refused")
    hub_env.add_repo(GGUF_REPO, {"README.md": "# gguf", GGUF_FILE: 20_000_000})
    result = runner.invoke(app, ["install", GGUF_REPO, "--yes"])
    assert result.exit_code == 25, result.output
    assert "gguf model, which install cannot serve yet" in result.output
    assert "Nothing was downloaded" in result.output
    assert hub_env.bytes_for(GGUF_REPO, GGUF_FILE) == 0
    assert not hub_env.requests_for(GGUF_REPO, file=GGUF_FILE)
    assert not any((llm_home / "models").iterdir())
