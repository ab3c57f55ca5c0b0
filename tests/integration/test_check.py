"""`llm-installer check` end to end against the local Hub, with the real huggingface_hub client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.hub_files import GATED_REPO, HUB_TOKEN, PRIVATE_REPO, REALCONFIGS_DIR
from typer.testing import CliRunner

from llm_installer.cli import app

REALCONFIG_REPOS = (
    sorted(p.name for p in REALCONFIGS_DIR.glob("*__*")) if REALCONFIGS_DIR.is_dir() else []
)
runner = CliRunner()


def check_json(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["check", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("folder", REALCONFIG_REPOS)
def test_every_fixture_family_from_the_hub(hub_env, llm_home, folder):
    meta = json.loads((REALCONFIGS_DIR / folder / "meta.json").read_text())
    code, profile = check_json(meta["model_id"])
    assert code == 0, profile
    expected = meta["expected"]
    assert profile["family"] == expected["family"]
    assert profile["library"] == expected["library"]
    assert profile["is_moe"] == expected["is_moe"]
    assert profile["is_reasoning"] == expected["is_reasoning"]
    if profile["files"]["weight_files"]:
        assert profile["parameters"]["total"] > 0
    else:
        assert any("No weight files" in w for w in profile["warnings"])
    assert profile["compatibility"]["verdict"] in ("compatible", "limited", "incompatible")
    # No weight bytes: realconfigs weights are placeholders, and reading them would show here.
    weight_bytes = sum(
        hub_env.bytes_for(meta["model_id"], f["path"])
        for f in profile["files"]["all"]
        if f["size"] > 10_000_000
    )
    assert weight_bytes <= 16 * 1024 * len(profile["files"]["all"])
    saved = llm_home / "logs" / "checks" / (meta["model_id"].replace("/", "_") + ".json")
    assert json.loads(saved.read_text())["family"] == expected["family"]
    assert (
        saved.with_name(saved.name.replace(".json", ".txt"))
        .read_text()
        .startswith("Model Compatibility Report")
    )


def test_only_safetensors_headers_are_read(hub_env, llm_home, tiny_llama_dir):
    hub_env.add_folder("test-org/tiny-llama", tiny_llama_dir)
    code, profile = check_json("test-org/tiny-llama")
    assert code == 0, profile
    weights = tiny_llama_dir / "model.safetensors"
    header_bytes = 8 + int.from_bytes(weights.read_bytes()[:8], "little")
    served = hub_env.bytes_for("test-org/tiny-llama", "model.safetensors")
    assert 8 <= served <= header_bytes < weights.stat().st_size
    assert profile["parameters"]["source"] == "headers"
    assert profile["parameters"]["total"] == json.loads(
        (tiny_llama_dir / "num_parameters.json").read_text()
    )


def test_local_folder_equals_hub(hub_env, llm_home, tiny_llama_dir):
    hub_env.add_folder("test-org/tiny-llama-2", tiny_llama_dir)
    _, from_hub = check_json("test-org/tiny-llama-2")
    code, local = check_json(str(tiny_llama_dir))
    assert code == 0
    assert local["source"] == "local"
    for key in ("family", "library", "architecture", "parameters", "storage"):
        assert local[key] == from_hub[key], key


def test_token_unlocks_private_and_gated(hub_env, llm_home, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    for repo in (PRIVATE_REPO, GATED_REPO):
        code, profile = check_json(repo)
        assert code == 0, profile
        assert profile["family"] == "text-generation"
    assert check_json(PRIVATE_REPO)[1]["hub"]["private"] is True
    assert check_json(GATED_REPO)[1]["hub"]["gated"] == "manual"


def test_revision_is_honoured(hub_env, llm_home):
    hub_env.add_repo(
        "test-org/revisions",
        {
            "config.json": json.dumps(
                {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 100}
            )
        },
        revisions={
            "v2": {
                "config.json": json.dumps(
                    {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 100}
                )
            }
        },
    )
    assert check_json("test-org/revisions")[1]["family"] == "embedding"
    assert check_json("test-org/revisions", "--revision", "v2")[1]["family"] == "text-generation"


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real console script in a child process: its exit code and its streams."""
    env = {**os.environ, **(env_extra or {})}
    command = [sys.executable, "-m", "llm_installer", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )


ERROR_CASES = {
    "not-found": (["check", "nobody/no-such-model"], 10, "Model not found on HuggingFace"),
    "not-found-no-token": (
        ["check", "nobody/no-such-model"],
        11,
        "no public model nobody/no-such-model exists",
    ),
    "private": (["check", PRIVATE_REPO], 11, "This is a private model. Please set HF_TOKEN"),
    "gated": (["check", GATED_REPO], 12, "gated"),
    "revision": (
        ["check", "openai/whisper-base", "--revision", "no-such-branch"],
        13,
        "Revision 'no-such-branch' not found",
    ),
    "no-config": (["check", "test-org/no-config"], 14, "No configuration files"),
    "malformed": (["check", "test-org/malformed"], 15, "not valid JSON"),
    "unsupported": (["check", "test-org/unsupported"], 16, "Unsupported model architecture"),
    "bad-id": (["check", "not a model id"], 10, "neither a local model folder nor a Hub model id"),
}


@pytest.fixture
def error_repos(hub_env):
    hub_env.add_repo("test-org/no-config", {"README.md": "# nothing here", "weights.bin": 1000})
    hub_env.add_repo(
        "test-org/malformed", {"config.json": '{"architectures": ["LlamaForCausalLM"],'}
    )
    hub_env.add_repo(
        "test-org/unsupported",
        {"config.json": json.dumps({"architectures": ["FooBarModel"], "model_type": "foobar"})},
    )
    return hub_env


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_are_messages_with_distinct_exit_codes(error_repos, llm_home, case):
    args, exit_code, needle = ERROR_CASES[case]
    if case == "revision" and not REALCONFIGS_DIR.is_dir():
        pytest.skip("shared realconfigs not available (openai/whisper-base is one of them)")
    # With a token the Hub tells a missing repo (404) from one the token cannot see (401).
    result = run_cli(*args, env_extra={"HF_TOKEN": HUB_TOKEN} if case == "not-found" else None)
    assert result.returncode == exit_code, result.stderr
    assert needle in result.stderr
    assert "Hint:" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unsupported_lists_supported_families(error_repos, llm_home):
    result = run_cli("check", "test-org/unsupported")
    for family in ("text-generation", "diffusion", "embedding", "speech-recognition"):
        assert family in result.stderr


def test_json_errors_are_json(error_repos, llm_home):
    result = run_cli("check", "nobody/no-such-model", "--json", env_extra={"HF_TOKEN": HUB_TOKEN})
    assert result.returncode == 10
    assert json.loads(result.stdout)["error"]["type"] == "ModelNotFoundError"


def test_hub_unreachable(llm_home):
    result = run_cli(
        "check",
        "openai/whisper-base",
        env_extra={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"},
    )
    assert result.returncode == 17
    assert "Cannot reach the Hugging Face Hub" in result.stderr


def test_offline_mode(llm_home):
    result = run_cli("check", "openai/whisper-base", env_extra={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 17
    assert "HF_HUB_OFFLINE" in result.stderr


def test_missing_local_folder(llm_home, tmp_path):
    result = run_cli("check", str(tmp_path / "does-not-exist"))
    assert result.returncode == 10
    assert "Traceback" not in result.stderr


def test_malformed_local_config(llm_home, tmp_path: Path):
    (tmp_path / "config.json").write_text("{not json")
    result = run_cli("check", str(tmp_path))
    assert result.returncode == 15
    assert "config.json" in result.stderr
