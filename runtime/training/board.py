"""TensorBoard beside training (started automatically) or alone (`--tensorboard-only`)."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from pathlib import Path

from llm_runtime.training.callbacks import say


def tensorboard_command(logdir: Path, port: int, host: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--port",
        str(port),
        "--host",
        host,
    ]


def start(logdir: Path, port: int, host: str) -> subprocess.Popen | None:
    """Start TensorBoard in the background; a missing package is a warning, not an error."""
    if importlib.util.find_spec("tensorboard") is None:
        say("⚠️  tensorboard is not installed; skipping the dashboard (pip install tensorboard)")
        return None
    logdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        tensorboard_command(logdir, port, host),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    say(f"📈 TensorBoard: http://{shown}:{port}  (logs in {logdir})")
    return process


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()


def serve_only(logdir: Path, port: int, host: str) -> int:
    """`--tensorboard-only [PORT]`: show past runs until Ctrl+C."""
    if not logdir.is_dir():
        say(f"No training logs in {logdir} yet.")
        return 1
    process = start(logdir, port, host)
    if process is None:
        return 1
    say("Press Ctrl+C to stop.")
    signal.signal(signal.SIGTERM, _raise_interrupt)  # `docker stop` / kill: stop the child too
    try:
        return process.wait()
    except KeyboardInterrupt:
        stop(process)
        return 0


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
