"""A side virtualenv with timm and torchvision, which the dev venv's CPU torch cannot have.

PyPI's Linux torchvision wheels are CUDA builds: their ops library links libtorch_cuda.so, so
`import torchvision` fails beside a +cpu torch ("operator torchvision::nms does not exist").
timm needs torchvision, so timm tests run in a venv of their own: torch, torchvision and timm
from PyPI (CUDA builds, which run on the CPU) plus the runtime's dependencies pinned to this
interpreter's versions. It is made once (about two minutes, 6 GB) and cached under a folder
named by a hash of those requirements; the runtime's code always comes from this checkout.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from importlib.metadata import requires, version
from pathlib import Path

from packaging.requirements import Requirement
from runtime_server import Server, free_port

VISION_PACKAGES = ("torch==2.14.1", "torchvision==0.29.1", "timm==1.0.31")
CACHE_ENV = "LLM_TEST_VENV_CACHE"  # where side venvs live (default ~/.cache/llm-installer-tests)
REPO = Path(__file__).resolve().parents[2]
TESTS_DIR = REPO / "tests"
INSTALL_TIMEOUT_S = 900


def requirements() -> list[str]:
    """The vision packages plus the runtime extra (less torch) at this interpreter's versions."""
    extra = [Requirement(r) for r in requires("llm-installer") or []]
    names = [r.name for r in extra if r.marker and r.marker.evaluate({"extra": "runtime"})]
    return [*VISION_PACKAGES, *(f"{name}=={version(name)}" for name in names if name != "torch")]


def side_python() -> Path:
    """The side venv's python, made first when missing (one maker at a time, under a lock)."""
    wanted = requirements()
    key = hashlib.sha256("\n".join([sys.version, *wanted]).encode()).hexdigest()[:12]
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "llm-installer-tests")
    root = cache / f"timm-venv-{key}"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f"timm-venv-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "complete").is_file():  # absent or half made by an interrupted run
            shutil.rmtree(root, ignore_errors=True)
            _make_venv(root, wanted)
    return root / "bin" / "python"


def _make_venv(root: Path, wanted: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    command = [str(root / "bin" / "python"), "-m", "pip", "install", "-q", *wanted]
    done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    if done.returncode:
        raise RuntimeError(f"side venv install failed: {' '.join(command)}\n{done.stderr[-4000:]}")
    (root / "complete").write_text("\n".join(wanted) + "\n")


def source_path(scratch: Path) -> Path:
    """A folder for PYTHONPATH holding `llm_runtime` (this checkout's runtime/) and tests/."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "llm_runtime").symlink_to(REPO / "runtime", target_is_directory=True)
    return scratch


def environment(pythonpath: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{pythonpath}{os.pathsep}{TESTS_DIR}"}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("LLM_API_KEY", None)
    return env


def start_server(python: Path, pythonpath: Path, model: Path, logs_dir: Path) -> Server:
    """`python -m llm_runtime serve` with the side venv's python (as runtime_server does)."""
    port = free_port()
    command = [str(python), "-m", "llm_runtime", "serve", "--model", str(model)]
    command += ["--port", str(port), "--logs-dir", str(logs_dir), "--device", "cpu"]
    process = subprocess.Popen(
        command, env=environment(pythonpath), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return Server(url=f"http://127.0.0.1:{port}", process=process, logs_dir=logs_dir)
