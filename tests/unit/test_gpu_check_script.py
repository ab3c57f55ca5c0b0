"""bench/gpu_check.sh --dry-run on this CPU machine: the script for the first GPU runs end to end
(real probes, a tiny model served through the runtime, the CUDA-only sections listed as skipped)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "bench" / "gpu_check.sh"


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, env=env, timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "installer_picks_cuda" in output and "0 failed" in output
    checks = {c["name"]: c for c in json.loads((tmp_path / "gpu_check.json").read_text())}
    assert len(checks) == 13
    serve = next(c for name, c in checks.items() if name.startswith("serve fp32"))
    assert (
        serve["status"] == "ok"
        and serve["facts"]["tokens"] > 0
        and serve["facts"]["batching"] == "step"
    )
    assert serve["facts"]["sampling_cost_ratio"] > 0
    skipped = [name for name, c in checks.items() if c["status"] == "skipped"]
    assert any("qlora" in name for name in skipped) and any("4bit" in name for name in skipped)
    qlora = next(c for name, c in checks.items() if "qlora" in name)
    assert "--method qlora" in qlora["facts"]["would_run"]
