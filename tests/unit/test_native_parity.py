"""macOS native virtualenv parity with the image: the same dependency set (the runtime's and the
model's own packages) under the same constraints.txt. A golden plan on a faked macOS host, and the
venv's install resolved here with pip (slow: PyPI metadata)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from support.records import record
from test_runargs import INFO, MAC, PATHS, check_golden

from llm_installer.build.image import WHEEL_BUILDS, dependency_set
from llm_installer.run.start_plan import StartOptions, plan_start
from llm_installer.run.train_plan import TrainOptions, plan_train
from llm_installer.settings import PROJECT_DIR

# A model whose own packages the image installs beside the runtime's (a T5-like tokenizer, timm).
PACKAGES = ["torch", "transformers", "accelerate", "sentencepiece", "timm", "librosa"]
MODEL_INFO = record(INFO, requirements={"packages": PACKAGES})
CONSTRAINTS = PROJECT_DIR / "dockerfiles" / "constraints.txt"


def install_step(plan) -> tuple[str, ...]:
    return plan.setup[-1]


def test_native_plan_matches_golden():
    check_golden(
        "start_macos_native_model_packages", plan_start(MODEL_INFO, PATHS, MAC, StartOptions())
    )


@pytest.mark.parametrize("planner", ["start", "train"])
def test_native_venv_installs_the_images_set_under_its_constraints(planner):
    plan = (
        plan_start(MODEL_INFO, PATHS, MAC, StartOptions())
        if planner == "start"
        else plan_train(MODEL_INFO, PATHS, MAC, TrainOptions(data="/Users/me/d.jsonl"))
    )
    step = install_step(plan)
    constraint = step[step.index("--constraint") + 1]
    assert Path(constraint) == PATHS.installer_dir / "dockerfiles" / "constraints.txt"
    image_set = set(dependency_set({"requirements": MODEL_INFO.requirements}, cuda=False))
    native_set = set(step[step.index(f"{PATHS.installer_dir}[runtime]") + 1 :])
    assert native_set == image_set | {"torch"}
    assert {"sentencepiece", "timm", "librosa"} <= native_set
    assert "bitsandbytes" not in native_set  # CUDA images only


@pytest.mark.slow
def test_native_install_resolves_to_the_images_pins(tmp_path):
    """pip resolves the native install step (a dry run in a fresh venv): torch and every pinned
    package get the constraints' version, as in the image."""
    plan = plan_start(
        MODEL_INFO, replace(PATHS, installer_dir=PROJECT_DIR), replace(MAC, python=sys.executable),
        StartOptions(),
    )  # fmt: skip
    step = list(install_step(plan))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    step[0] = str(venv / "bin" / "python")
    report = tmp_path / "report.json"
    step[4:4] = ["--dry-run", "--quiet", "--report", str(report)]
    env = {**os.environ, "PIP_FIND_LINKS": os.environ.get("PIP_FIND_LINKS", "/opt/wheels")}
    result = subprocess.run(step, capture_output=True, text=True, timeout=1200, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    pins = dict(line.split("==") for line in CONSTRAINTS.read_text().splitlines() if "==" in line)
    for name in set(dependency_set({"requirements": MODEL_INFO.requirements})) | {"torch"}:
        if name in pins:
            assert resolved[name].split("+")[0] == pins[name], name
    assert {"sentencepiece", "timm", "librosa"} <= set(resolved)


def test_a_gguf_model_gets_the_images_llama_cpp_version():
    """The image builds llama-cpp-python in a wheel stage at a pinned version (not in
    constraints.txt); the native venv asks pip for that same version."""
    info = record(INFO, family="gguf", requirements={"packages": ["llama-cpp-python"]})
    step = install_step(plan_start(info, PATHS, MAC, StartOptions()))
    assert f"llama-cpp-python=={WHEEL_BUILDS['llama-cpp-python']['version']}" in step
    assert "llama-cpp-python" not in step


def test_cuda_kernels_are_left_out_and_the_plan_says_so():
    """mamba-ssm compiles against CUDA: the image tries it on CUDA only, so a Mac never gets it,
    and the plan's differences name it with bitsandbytes."""
    requirements = {
        "packages": ["transformers", "mamba-ssm", "causal-conv1d"],
        "architecture": ["mamba-ssm (requires CUDA compilation)", "causal-conv1d (requires CUDA compilation)"],
    }  # fmt: skip
    plan = plan_start(record(INFO, requirements=requirements), PATHS, MAC, StartOptions())
    assert not {"mamba-ssm", "causal-conv1d"} & set(install_step(plan))
    left_out = next(line for line in plan.differences if line.startswith("Left out"))
    assert left_out == "Left out (CUDA only): bitsandbytes, causal-conv1d, mamba-ssm."
    assert "Metal (MPS)" in plan.differences[0]
    cpu = plan_start(INFO, PATHS, replace(MAC, mps_available=False), StartOptions())
    assert "the CPU" in cpu.differences[0]
