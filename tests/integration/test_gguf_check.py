"""GGUF repos in check and install's planning: the quantization table, --quant, the wheel stage,
and which file the runtime loads. Repos are placeholders of real sizes on the test Hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_installer.build.base_images import choose_flavour
from llm_installer.build.download import plan_download
from llm_installer.build.image import needs_compiler, plan_image
from llm_installer.build.install import with_quantization
from llm_installer.check.engines import EngineUnavailableError, choose_engine
from llm_installer.check.gguf_quants import choose_quantization
from llm_installer.cli import app
from llm_installer.console import Output
from llm_installer.errors import InstallerError
from llm_runtime import contract
from llm_runtime.errors import ModelLoadError
from llm_runtime.handlers.gguf import model_file
from llm_runtime.model_info import ModelInfo
from llm_runtime.profile import ModelProfile, load_profile

runner = CliRunner()
GB = 10**9
REPO = "test-org/big-gguf"
FILES = {
    "README.md": "# gguf",
    "big-Q4_K_M.gguf": 2 * GB,
    "big-Q8_0.gguf": 4 * GB,
    "big-F16-00001-of-00002.gguf": 200 * GB,  # never fits in a CI machine's RAM
    "big-F16-00002-of-00002.gguf": 200 * GB,
    "mmproj-big-f16.gguf": 1 * GB,
}


@pytest.fixture
def profile(hub_env, llm_home) -> dict:
    hub_env.add_repo(REPO, FILES)
    result = runner.invoke(app, ["check", REPO, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_check_lists_each_quantization_with_memory_and_recommends_the_largest_that_fits(profile):
    rows = {row["quantization"]: row for row in profile["quantizations"]}
    assert list(rows) == ["Q4_K_M", "Q8_0", "F16"]  # smallest first; the projector is no variant
    assert rows["F16"]["files"] == ["big-F16-00001-of-00002.gguf", "big-F16-00002-of-00002.gguf"]
    assert rows["F16"]["size_bytes"] == 400 * GB and not rows["F16"]["fits"]
    for row in rows.values():
        assert row["memory_cuda_bytes"] > row["memory_cpu_bytes"] > row["size_bytes"]
    recommended = [name for name, row in rows.items() if row["recommended"]]
    assert recommended == [
        max((r for r in rows.values() if r["fits"]), key=lambda r: r["size_bytes"])["quantization"]
    ]


def test_quant_picks_only_that_variant_and_its_split_parts(profile):
    chosen = with_quantization(profile, "f16", Output())
    assert (
        chosen["gguf_file"] == "big-F16-00001-of-00002.gguf"
        and chosen["gguf_quantization"] == "F16"
    )
    paths = {path for path, _ in plan_download(chosen).files}
    assert paths == {"README.md", "big-F16-00001-of-00002.gguf", "big-F16-00002-of-00002.gguf"}
    default = with_quantization(profile, None, Output())
    assert (
        default["gguf_quantization"]
        == next(r for r in profile["quantizations"] if r["recommended"])["quantization"]
    )


def test_unknown_quant_lists_the_available_ones(profile):
    with pytest.raises(InstallerError) as raised:
        choose_quantization(profile, "Q2_K")
    assert raised.value.exit_code == 2 and "Q4_K_M, Q8_0, F16" in raised.value.hint


def test_llama_cpp_is_built_in_a_wheel_stage_cpu_and_cuda(profile):
    assert (
        needs_compiler(profile)
        and choose_flavour("cuda", needs_compiler(profile)).kind == "cuda-devel"
    )
    cpu, cuda = plan_image(profile, "base:cpu"), plan_image(profile, "base:cuda-devel", cuda=True)
    assert (
        "FROM base:cpu AS wheel-1" in cpu.deps_dockerfile
        and "-DGGML_CUDA=on" not in cpu.deps_dockerfile
    )
    assert (
        'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF -DGGML_CUDA=on"'
        in cuda.deps_dockerfile
    )
    for plan in (cpu, cuda):
        assert "--find-links /opt/llm-wheels" in plan.deps_dockerfile
        assert "llama-cpp-python==0.3.36" in plan.deps_dockerfile.splitlines()[-2]
    assert cpu.deps_tag != cuda.deps_tag


def test_runtime_loads_the_named_file_or_the_only_one(tmp_path: Path):
    for name in (
        "a-Q4_0.gguf",
        "b-F16-00001-of-00002.gguf",
        "b-F16-00002-of-00002.gguf",
        "mmproj-x.gguf",
    ):
        (tmp_path / name).write_bytes(b"GGUF")
    profile = load_profile(tmp_path)  # no config.json, no model_info.json: a GGUF folder
    assert profile.family == "gguf"
    with pytest.raises(ModelLoadError, match="holds 2 GGUF models"):
        model_file(profile)
    named = ModelProfile(
        model_dir=tmp_path,
        family="gguf",
        model_id="m",
        info=ModelInfo.new(family="gguf", gguf_file="a-Q4_0.gguf"),
    )
    assert model_file(named) == tmp_path / "a-Q4_0.gguf"
    (tmp_path / "a-Q4_0.gguf").unlink()
    assert model_file(profile) == tmp_path / "b-F16-00001-of-00002.gguf"


def test_check_and_install_choose_the_contracts_engine_for_gguf(profile):
    assert profile["engine"]["engine"] == contract.LLAMA_CPP == "llama.cpp"
    assert "gguf models run on llama.cpp" in profile["engine"]["reason"]
    for requested in ("auto", "transformers"):  # the GGUF handler is llama.cpp either way
        assert choose_engine(profile, "cpu", requested).engine == "llama.cpp"
    with pytest.raises(EngineUnavailableError, match="gguf models run on llama.cpp"):
        choose_engine(profile, "cuda", "vllm")
    text = runner.invoke(app, ["check", REPO])
    assert text.exit_code == 0 and "Engine: llama.cpp on" in text.stdout
