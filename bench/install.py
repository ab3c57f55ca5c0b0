"""Benchmark: install cost of a first and a second model of one family, and container start-up.

With the base image present (built offline here when missing):
  1. a cold install of a tiny causal LM (its dependency image removed first),
  2. a second tiny causal LM of the same family (everything heavy shared),
  3. start.sh until /health/ready versus loading the same model natively in a process.
Prints a table. Targets: the second model adds < 1 MB of layers and builds in < 10 s; the
container's start-up overhead over a native load is < 1.5 s.

    python bench/install.py [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny_models import make_tiny_llama  # noqa: E402


def run(env: dict[str, str], *args: str) -> float:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "llm_installer", *args], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(
            f"llm-installer {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        )
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout: float = 300) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} was not ready after {timeout} s")


def container_ready_seconds(env: dict[str, str], model_dir: Path) -> float:
    port = free_port()
    started = time.monotonic()
    subprocess.Popen([str(model_dir / "start.sh"), "--no-browser", "--port", str(port)], env=env,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_ready(f"http://127.0.0.1:{port}")
    seconds = time.monotonic() - started
    subprocess.run(
        [sys.executable, "-m", "llm_installer", "stop", str(model_dir)],
        env=env,
        capture_output=True,
    )
    return seconds


def native_ready_seconds(weights: Path, logs: Path) -> float:
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "llm_runtime", "serve", "--model", str(weights), "--port", str(port), "--logs-dir", str(logs)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        return time.monotonic() - started
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the dependency image (no cold build)"
    )
    args = parser.parse_args()
    client = docker.from_env()
    with tempfile.TemporaryDirectory(prefix="bench-install-") as workdir:
        home = Path(workdir)
        (home / "config.yaml").write_text("{}\n")
        env = {**os.environ, "LLM_INSTALLER_MODELS_DIR": str(home / "models"), "LLM_INSTALLER_LOGS_DIR": str(home / "logs"),
               "LLM_INSTALLER_CACHE_DIR": str(home / "cache"), "LLM_INSTALLER_CONFIG": str(home / "config.yaml"),
               "LLM_INSTALLER_ROOTFS": "1"}  # fmt: skip
        first, second = (
            make_tiny_llama(home / "src" / name, seed=i)
            for i, name in enumerate(("bench-one", "bench-two"))
        )
        for weights in (home / "src").rglob("*"):
            weights.chmod(
                weights.stat().st_mode | 0o444
            )  # the container's non-root user reads them
        run(env, "base", "build", "cpu", "--rootfs")
        rows = []
        for folder in (first, second):
            cold = folder == first and not args.keep
            seconds = run(env, "install", str(folder), "--yes", *(["--no-cache"] if cold else []))
            info = json.loads((home / "models" / folder.name / "model_info.json").read_text())
            image = client.images.get(info["image"]["tag"])
            deps = client.images.get(info["image"]["deps_image"])
            rows.append(
                (
                    folder.name,
                    seconds,
                    image.attrs["Size"] - deps.attrs["Size"],
                    image.attrs["Size"],
                )
            )
        container = min(
            container_ready_seconds(env, home / "models" / second.name) for _ in range(3)
        )
        native = min(native_ready_seconds(second, home / "native-logs") for _ in range(3))
    print(f"{'install':<12}{'seconds':>9}{'own layers':>14}{'image size':>14}")
    for name, seconds, own, size in rows:
        print(f"{name:<12}{seconds:>9.1f}{own / 1024:>11.0f} KB{size / 1024**3:>11.2f} GB")
    print(
        f"\nsecond model: {rows[1][1]:.1f} s (target < 10 s), adds {rows[1][2] / 1024:.0f} KB (target < 1024 KB)"
    )
    print(f"start to ready: container {container:.2f} s, native {native:.2f} s, overhead {container - native:.2f} s "
          f"(target < 1.5 s); ratio {container / native:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
