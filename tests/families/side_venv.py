"""A side virtualenv with torchvision and timm, which the dev venv's CPU torch cannot have.

PyPI's Linux torchvision wheels are CUDA builds: their ops library links libtorch_cuda.so, so
`import torchvision` fails beside a +cpu torch ("operator torchvision::nms does not exist").
timm needs torchvision, and so does Qwen2-VL's processor (its video processor), so their tests
run in a venv of their own: torch, torchvision and timm from PyPI (CUDA builds, which run on
the CPU) plus the runtime's dependencies pinned to this interpreter's versions. It is made once (about two minutes, 6 GB) and cached under a folder
named by a hash of those requirements; the runtime's code always comes from this checkout.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import requires, version
from pathlib import Path

from packaging.requirements import Requirement
from runtime_server import Server, start_server

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
    root = cache / f"vision-venv-{key}"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f"vision-venv-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "complete").is_file():  # absent or half made by an interrupted run
            shutil.rmtree(root, ignore_errors=True)
            _make_venv(root, wanted)
    return root / "bin" / "python"


def _make_venv(root: Path, wanted: list[str]) -> None:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    command = [str(root / "bin" / "python"), "-m", "pip", "install", "-q", *wanted]
    done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    if done.returncode:
        raise RuntimeError(f"side venv install failed: {' '.join(command)}\n{done.stderr[-4000:]}")
    made = f"# made in {time.monotonic() - started:.0f} s\n"
    (root / "complete").write_text(made + "\n".join(wanted) + "\n")


@dataclass(frozen=True)
class SideVenv:
    """The side venv's python with this checkout's runtime (and tests/) on its PYTHONPATH."""

    python: Path
    pythonpath: Path

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": f"{self.pythonpath}{os.pathsep}{TESTS_DIR}"}
        env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
        env.pop("LLM_API_KEY", None)
        return env

    def run(self, *args: str, timeout: float = 300) -> str:
        """stdout of `python ARGS`; its stderr's end in the error when it fails."""
        done = subprocess.run(
            [str(self.python), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-4000:]}")
        return done.stdout

    def start_server(self, model: Path, logs_dir: Path) -> Server:
        """`python -m llm_runtime serve` in the side venv."""
        return start_server(model, logs_dir, python=self.python, env=self.env)


def side_venv(scratch: Path) -> SideVenv:
    """The side venv (made when missing); `llm_runtime` links to this checkout's runtime/."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "llm_runtime").symlink_to(REPO / "runtime", target_is_directory=True)
    return SideVenv(python=side_python(), pythonpath=scratch)
