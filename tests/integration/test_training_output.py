"""What training prints (issue 14, item 13): host paths, not the container's /work, and no
library FutureWarnings. The real trainer runs on a tiny model; the installer's plan says where
each mount comes from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import make_tiny_llama

from llm_installer.run.devices import HostRuntime
from llm_installer.run.train_plan import HOST_PATHS_ENV, TrainOptions, plan_train


@pytest.mark.slow
def test_trainer_prints_host_paths_and_no_future_warnings(tmp_path: Path):
    model = make_tiny_llama(tmp_path / "tiny")
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join(
            json.dumps({"instruction": f"say {i}", "output": f"{i} ok"}) + "\n" for i in range(12)
        )
    )
    inside = tmp_path / "work"  # what the container calls /work
    host = "/home/someone/LLM/models/tiny"
    env = {**os.environ, HOST_PATHS_ENV: json.dumps({str(inside): host})}
    env.pop("PYTHONWARNINGS", None)
    result = subprocess.run(
        [sys.executable, "-m", "llm_runtime.training", "--model", str(model), "--data", str(data),
         "--max-steps", "2", "--output-dir", str(inside), "--no-tensorboard", "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Adapter saved: {host}/lora" in result.stdout
    assert f"Saved checkpoint: {host}/checkpoints/checkpoint-" in result.stdout
    assert f"report {host}/logs/training/training_report.json" in result.stdout
    assert str(inside) not in result.stdout
    assert "FutureWarning" not in result.stderr
    assert (inside / "lora").is_dir()  # written where it really is


def test_train_plan_names_the_host_side_of_each_mount(tmp_path: Path):
    from llm_installer.run.start_plan import ModelPaths
    from llm_runtime.model_info import ModelInfo

    model_dir = tmp_path / "org_tiny"
    paths = ModelPaths(
        model_dir=model_dir, weights=model_dir / "model", logs=model_dir / "logs", lora=model_dir / "lora",
        checkpoints=model_dir / "checkpoints", installer_dir=tmp_path,
        protected=(model_dir / "model_info.json", model_dir / "start.sh"),
    )  # fmt: skip
    data = tmp_path / "mine" / "data.jsonl"
    data.parent.mkdir()
    data.write_text("{}\n")
    info = ModelInfo.new(model_id="org/tiny", device="cpu", image={"tag": "x:1", "flavour": "cpu"})
    host = HostRuntime(os="linux", nvidia_runtime=False, gpu_count=0, uid=1000, gid=1000)
    plan = plan_train(info, paths, host, TrainOptions(data=str(data), tensorboard=False))
    mounts = json.loads(dict(plan.container.env)[HOST_PATHS_ENV])
    assert mounts["/work"] == str(model_dir) and mounts["/model"] == str(model_dir / "model")
    assert any(
        target.startswith("/data") and str(data.parent) in source
        for target, source in mounts.items()
    )
    assert "/work/start.sh" not in mounts  # what /work already says is left out
