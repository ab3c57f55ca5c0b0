"""check's real profiles become install's model_info through the one writer, and every side
reads them back: the strict reader, the runtime's profile, `list` and `start`'s lookup."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from llm_installer.build.adapters import adapter_info
from llm_installer.build.install import InstallOptions, model_info, with_quantization
from llm_installer.cli import app
from llm_installer.console import Output
from llm_installer.run.installed import load_model_info, require_installed
from llm_installer.run.model_folder import ModelPaths
from llm_runtime import contract
from llm_runtime.model_info import ModelInfo, write_model_info
from llm_runtime.profile import load_profile
from tests.conftest import LLAMA_LIKE_CONFIG

runner = CliRunner()
REPOS = {
    "test-org/tiny-llama": {
        "config.json": json.dumps(LLAMA_LIKE_CONFIG),
        "model.safetensors": 2_000_000,
    },
    "test-org/tiny-gguf": {"tiny-Q8_0.gguf": 3_000_000, "tiny-F16.gguf": 5_000_000},
    "test-org/tiny-lora": {
        "adapter_config.json": json.dumps(
            {"peft_type": "LORA", "base_model_name_or_path": "test-org/tiny-llama", "r": 4}
        ),
        "adapter_model.safetensors": 10_000,
    },
}


@pytest.fixture
def profiles(hub_env, llm_home) -> dict[str, dict]:
    found = {}
    for repo, files in REPOS.items():
        hub_env.add_repo(repo, files)
        result = runner.invoke(app, ["check", repo, "--json"])
        assert result.exit_code == 0, result.output
        found[repo] = json.loads(result.stdout)
    return found


def installed(profile: dict, root: Path) -> ModelInfo:
    """What install writes for ``profile`` (its own model_info builder), through the writer."""
    paths = ModelPaths(root)
    paths.create()
    (root / "model").mkdir(exist_ok=True)
    (root / "model" / "config.json").write_text(json.dumps(LLAMA_LIKE_CONFIG))
    plan = SimpleNamespace(model_tag="llm/m:1", base_image="llm/base:cpu", deps_tag="llm/deps:1")
    info = model_info(profile, paths, root / "model", "cpu", plan, "cpu", InstallOptions())
    info.update(engine=contract.TRANSFORMERS, engine_reason="test", pip_freeze=["torch==2"])
    info["smoke_test"] = {"seconds_to_ready": 1.0, "request": "/generate", "passed": True}
    record = write_model_info(paths.info, info)
    (root / ".install_complete").write_text("now\n")
    return record


def test_every_family_profile_round_trips_through_the_one_writer(profiles, tmp_path):
    llama = installed(profiles["test-org/tiny-llama"], tmp_path / "llama")
    gguf_profile = with_quantization(profiles["test-org/tiny-gguf"], "Q8_0", Output())
    gguf = installed(gguf_profile, tmp_path / "gguf")
    assert llama.family == contract.TEXT_GENERATION and llama.image_tag == "llm/m:1"
    assert (gguf.family, gguf.gguf_file, gguf.gguf_quantization) == (
        contract.GGUF,
        "tiny-Q8_0.gguf",
        "Q8_0",
    )
    for root, record in ((tmp_path / "llama", llama), (tmp_path / "gguf", gguf)):
        assert load_model_info(root) == record == require_installed(root)
        assert load_profile(root / "model").info == record  # the runtime reads the same record
        on_disk = json.loads((root / "model_info.json").read_text())
        assert set(on_disk) == set(ModelInfo.__dataclass_fields__)


def test_an_adapter_record_names_its_base(profiles, tmp_path):
    base = installed(profiles["test-org/tiny-llama"], tmp_path / "base")
    adapter_profile = profiles["test-org/tiny-lora"]
    assert adapter_profile["family"] == contract.TEXT_GENERATION and adapter_profile["adapter"]
    paths = ModelPaths(tmp_path / "lora")
    paths.create()
    record = write_model_info(paths.info, adapter_info(adapter_profile, base, paths))
    assert record.model_id == "test-org/tiny-lora" and record.weights_path == base.weights_path
    assert record.base_model["model_id"] == "test-org/tiny-llama"
    assert load_model_info(paths.root) == record


def test_list_shows_an_invalid_record_and_start_and_compose_refuse_it_clearly(llm_home, tmp_path):
    folder = llm_home / "models" / "org_broken"
    folder.mkdir(parents=True)
    (folder / "model_info.json").write_text(
        json.dumps({**ModelInfo.new(model_id="org/broken").to_dict(), "surprise": 1})
    )
    (folder / ".install_complete").write_text("now\n")
    listed = runner.invoke(app, ["list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout)[0]["family"] == "unknown"
    for command in (["start", str(folder)], ["compose", "org_broken"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 34, result.output
        assert "surprise" in result.output and "install" in result.output
        assert "Traceback" not in result.output
