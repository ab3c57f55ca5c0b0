"""start.sh without the installer on a GPU server: it passes the GPU flags itself (``docker`` and
``nvidia-smi`` here are stand-ins that answer as on such a server and record the call)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support.records import record

from llm_installer.run.scripts import write_run_scripts

INFO = {
    "model_id": "Qwen/Qwen3-0.6B", "family": "text-generation", "installer_version": "0.1.0",
    "device": "cuda", "quantization": "4bit", "installer_dir": "/nonexistent/llm-installer",
    "installer_python": "/nonexistent/llm-installer/.venv/bin/python",
    "image": {"tag": "llm-installer/qwen_qwen3-0.6b:abc123", "flavour": "cuda-cu130"},
}  # fmt: skip
DOCKER = """#!/bin/sh
if [ "$1" = info ]; then printf 'Server:\\n Runtimes: io.containerd.runc.v2 %s runc\\n' "$RUNTIME"; exit 0; fi
printf '%s\\n' "$@" > "$RECORD"
"""


def run_start(
    tmp_path: Path, *, gpu: bool, runtime: str = "nvidia", visible: str | None = None
) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tools = {"docker": DOCKER, "python3": "#!/bin/sh\nexit 1\n"}  # a python3 without llm_installer
    if gpu:
        tools["nvidia-smi"] = "#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-1234)'\n"
    for name, text in tools.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    model_dir = tmp_path / "Qwen_Qwen3-0.6B"
    (model_dir / "model").mkdir(parents=True, exist_ok=True)
    info = {**INFO, "weights_path": str(model_dir / "model"), "model_dir": str(model_dir)}
    (model_dir / "model_info.json").write_text(json.dumps(info))
    write_run_scripts(model_dir, record(info))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RECORD": str(tmp_path / "argv"), "RUNTIME": runtime}
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    result = subprocess.run(
        [str(model_dir / "start.sh")], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return (tmp_path / "argv").read_text().splitlines()


def served_device(argv: list[str]) -> str:
    return argv[argv.index("--device", argv.index("serve")) + 1]


@pytest.mark.skipif(os.name != "posix", reason="bash scripts")
def test_without_the_installer_start_sh_uses_the_gpu(tmp_path):
    argv = run_start(tmp_path, gpu=True)
    assert argv[argv.index("--gpus") + 1] == "all"
    assert served_device(argv) == "cuda" and "--load-in-4bit" in argv  # the install's quantization


@pytest.mark.skipif(os.name != "posix", reason="bash scripts")
def test_without_the_installer_start_sh_honours_cuda_visible_devices(tmp_path):
    argv = run_start(tmp_path, gpu=True, visible="1")
    assert argv[argv.index("--gpus") + 1] == '"device=1"'


@pytest.mark.skipif(os.name != "posix", reason="bash scripts")
def test_without_a_usable_gpu_start_sh_falls_back_to_cpu(tmp_path):
    for gpu, runtime in ((False, "nvidia"), (True, "")):  # no driver; no toolkit in Docker
        argv = run_start(tmp_path, gpu=gpu, runtime=runtime)
        assert (
            "--gpus" not in argv and served_device(argv) == "cpu" and "--load-in-4bit" not in argv
        )
