"""Helpers shared by the deploy tests and bench/deploy.py."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

FAKE_TOKEN = "hf_deployTestFakeToken0123456789"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_installer(env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "llm_installer", *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_no_token(paths, token: str = FAKE_TOKEN) -> list[Path]:
    """Scan every file (zstd bundles decompressed) for the token; returns the files scanned."""
    needle, scanned = token.encode(), []
    for path in map(Path, paths):
        if not path.is_file():
            continue
        with path.open("rb") as raw:
            stream = raw
            if raw.read(4) == ZSTD_MAGIC:
                import zstandard

                raw.seek(0)
                stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            else:
                raw.seek(0)
            tail = b""
            while chunk := stream.read(1 << 20):
                assert needle not in tail + chunk, f"the HF token is in {path}"
                tail = chunk[-len(needle) :]
        scanned.append(path)
    return scanned
