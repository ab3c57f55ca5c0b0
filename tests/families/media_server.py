"""Start `python -m llm_runtime serve` on a model folder and wait until it is ready."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MediaServer:
    url: str
    process: subprocess.Popen
    logs_dir: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)

    def log_text(self) -> str:
        path = self.logs_dir / "server.log"
        return path.read_text() if path.exists() else "(no server.log)"

    def wait_ready(self) -> MediaServer:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode})\n{self.log_text()}")
            try:
                response = httpx.get(f"{self.url}/health/ready", timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if response.status_code == 200:
                return self
            if response.json().get("error"):
                raise RuntimeError(f"model failed to load: {response.json()['error']}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.url} not ready\n{self.log_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_media_server(model: Path, logs_dir: Path, *args: str) -> MediaServer:
    """Start without waiting, so several servers load in parallel."""
    port = free_port()
    command = [sys.executable, "-m", "llm_runtime", "serve", "--model", str(model)]
    command += ["--port", str(port), "--logs-dir", str(logs_dir), "--device", "cpu", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("LLM_API_KEY", None)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return MediaServer(url=f"http://127.0.0.1:{port}", process=process, logs_dir=logs_dir)
