"""Schemathesis fuzzes a real text server from its own OpenAPI schema for a bounded time:
no input may give a 5xx, and every status code it answers is one the schema documents."""

from __future__ import annotations

import subprocess
import sys

import pytest

FUZZ_SECONDS = 60
KEY = "fuzz-key-1234"


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(serve, llama_dir, tmp_path):
    server = serve("fuzz", llama_dir, "--max-queue", "8", api_key=KEY)  # its own: no shared state
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
        "--header", f"Authorization: Bearer {KEY}",
        "--checks", "not_a_server_error,status_code_conformance",
        "--max-time", str(FUZZ_SECONDS), "--workers", "1", "--request-timeout", "60",
        "--seed", "14", "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(  # in tmp_path: schemathesis keeps a cache folder in its cwd
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 60,
        check=False,
    )
    summary = result.stdout[-4000:]
    assert result.returncode == 0, summary
    assert " passed" in summary and "failed" not in summary.split("SUMMARY")[-1], summary
    print(summary.split("Test cases:")[-1].strip().splitlines()[0])
