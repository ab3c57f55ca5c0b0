"""A real `python -m llm_runtime serve` subprocess on a free port (shared by the runtime,
family and browser tests): start it, wait until ready, talk to it over HTTP, stop it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

READY_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running `python -m llm_runtime serve` process."""

    url: str
    process: subprocess.Popen
    logs_dir: Path
    api_key: str | None = None
    ready_statuses: list[int] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=120, **kwargs)

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def wait_ready(self, *, expect_failure: bool = False) -> Server:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.returncode}\n{self.log_text()}")
            try:
                response = httpx.get(f"{self.url}/health/ready", timeout=2)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            self.ready_statuses.append(response.status_code)
            error = response.status_code != 200 and response.json().get("error")
            if response.status_code == 200 or (expect_failure and error):
                return self
            if error:
                raise RuntimeError(f"model failed to load: {error}\n{self.log_text()}")
            time.sleep(0.05)
        raise TimeoutError(f"server at {self.url} not ready\n{self.log_text()}")

    def log_text(self) -> str:
        path = self.logs_dir / "server.log"
        return path.read_text() if path.exists() else "(no server.log)"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(
    model: Path,
    logs_dir: Path,
    *args: str,
    api_key: str | None = None,
    python: Path | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """`python -m llm_runtime serve` on a free port (another venv's python and env when given)."""
    port = free_port()
    command = [str(python or sys.executable), "-m", "llm_runtime", "serve", "--model", str(model)]
    command += ["--port", str(port), "--logs-dir", str(logs_dir), "--device", "cpu", *args]
    if api_key:
        command += ["--api-key", api_key]
    env = {**(env or os.environ), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("LLM_API_KEY", None)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return Server(
        url=f"http://127.0.0.1:{port}", process=process, logs_dir=logs_dir, api_key=api_key
    )


@contextlib.contextmanager
def serving(folders: dict[str, Path], logs_root: Path, start=start_server):
    """name -> ready server for each model folder: all start together (they load side by side)
    and all stop afterwards, whatever happened. `start` may be another venv's start_server."""
    servers = {}
    try:
        for name, folder in folders.items():
            (logs_root / name).mkdir(parents=True, exist_ok=True)
            servers[name] = start(folder, logs_root / name)
        yield {name: server.wait_ready() for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
