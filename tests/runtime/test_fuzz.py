"""Schemathesis fuzzes a real text server from its own OpenAPI schema for a bounded time:
no input may give a 5xx, and every status code it answers is one the schema documents."""

from __future__ import annotations

import subprocess
import sys

import pytest

FUZZ_SECONDS = 60


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(llama_server, tmp_path):
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{llama_server.url}/openapi.json",
        "--checks", "not_a_server_error,status_code_conformance",
        "--max-time", str(FUZZ_SECONDS), "--workers", "1", "--request-timeout", "60",
        "--seed", "14", "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=FUZZ_SECONDS + 60, check=False
    )
    summary = result.stdout[-4000:]
    assert result.returncode == 0, summary
    assert " passed" in summary and "failed" not in summary.split("SUMMARY")[-1], summary
    print(summary.split("Test cases:")[-1].strip().splitlines()[0])
