"""Golden files of the rendered check report, on fixed hardware (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from support.hub_files import REALCONFIGS_DIR

from llm_installer.check.checker import run_check
from llm_installer.check.hardware import Gpu, Hardware
from llm_installer.check.report import report_text
from llm_installer.console import Output
from llm_installer.settings import load_settings

GOLDEN = Path(__file__).parent / "golden"
GiB = 1024**3
WORKSTATION = Hardware(
    os="Linux",
    arch="x86_64",
    cpu_model="Test CPU",
    cpu_cores=16,
    cpu_threads=32,
    ram_total=64 * GiB,
    ram_available=60 * GiB,
    gpus=(Gpu(index=0, name="NVIDIA GeForce RTX 4090", vram_total=24 * GiB, vram_free=23 * GiB),),
    nvidia_driver="550.54",
    cuda_version="12.4",
    disk_path="/home/test/LLM/models",
    disk_total=2000 * GiB,
    disk_free=500 * GiB,
    docker_available=True,
    nvidia_runtime=True,
)
LAPTOP = Hardware(
    os="Linux",
    arch="x86_64",
    cpu_model="Test CPU",
    cpu_cores=4,
    cpu_threads=8,
    ram_total=16 * GiB,
    ram_available=12 * GiB,
    disk_path="/home/test/LLM/models",
    disk_total=500 * GiB,
    disk_free=80 * GiB,
)
# A Kepler GPU no CUDA build of the pinned torch runs on: refused, the model judged for CPU.
K80_SERVER = dataclasses.replace(
    WORKSTATION,
    gpus=(
        Gpu(
            index=0,
            name="Tesla K80",
            vram_total=12 * GiB,
            vram_free=12 * GiB,
            compute_capability=(3, 7),
        ),
    ),
    nvidia_driver="470.256.02",
    cuda_version="11.4",
)
CASES = {
    "qwen3-4b-k80-refused": ("Qwen/Qwen3-4B", K80_SERVER),
    "mixtral-workstation": ("mistralai/Mixtral-8x7B-Instruct-v0.1", WORKSTATION),
    "qwen3-4b-laptop": ("Qwen/Qwen3-4B", LAPTOP),
    "sd15-workstation": ("runwayml/stable-diffusion-v1-5", WORKSTATION),
    "whisper-base-laptop": ("openai/whisper-base", LAPTOP),
}


@pytest.mark.skipif(not REALCONFIGS_DIR.is_dir(), reason="shared realconfigs not available")
@pytest.mark.parametrize("case", sorted(CASES))
def test_report_matches_golden(hub_env, llm_home, case):
    model, hardware = CASES[case]
    result = run_check(
        model,
        revision=None,
        settings=load_settings(),
        output=Output(),
        hardware=hardware,
        save=False,
    )
    text = report_text(result.profile)
    golden = GOLDEN / f"{case}.txt"
    if os.environ.get("UPDATE_GOLDEN") or not golden.exists():
        golden.write_text(text)
    assert text == golden.read_text()
    if hardware is K80_SERVER:  # the refused GPU is named with the reason, and nothing runs on it
        assert "compute capability 3.7 is not supported by torch 2.13.0" in text
        assert all(row["device"] != "cuda" for row in result.profile["compatibility"]["inference"])
