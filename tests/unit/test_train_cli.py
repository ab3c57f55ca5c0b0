"""`llm-installer train`: options, pass-through, errors, and the foreground runner's Ctrl+C."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_installer.cli import app
from llm_installer.console import Output
from llm_installer.run import train as train_run
from llm_installer.run.installed import RunningModel
from llm_installer.run.start import NATIVE_READY_MARKER
from llm_installer.run.start_plan import DockerPlan, NativePlan
from llm_installer.run.train_plan import TrainOptions

runner = CliRunner()


@pytest.fixture()
def captured(monkeypatch, tmp_path):
    """Calls of train_model, with settings from an empty config in tmp_path."""
    calls: list[tuple[str, TrainOptions]] = []
    monkeypatch.setattr(
        train_run, "train_model", lambda model, options, s, o: calls.append((model, options))
    )
    config = tmp_path / "config.yaml"
    config.write_text("{}\n")
    monkeypatch.setenv("LLM_INSTALLER_CONFIG", str(config))
    monkeypatch.setenv("LLM_INSTALLER_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("LLM_INSTALLER_LOGS_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("LLM_INSTALLER_CACHE_DIR", str(tmp_path / "cache"))
    return calls


def test_train_is_a_visible_command_without_the_placeholder():
    result = runner.invoke(app, ["--help"])
    assert " train " in result.output
    assert "arrives soon" not in runner.invoke(app, ["train", "--help"]).output


def test_trainer_options_pass_through(captured):
    argv = ["train", "org/m", "--data", "d.jsonl", "--epochs", "3", "--method", "qlora",
            "--resume", "--detach", "--device", "cpu"]  # fmt: skip
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    ((model, options),) = captured
    assert model == "org/m" and options.data == "d.jsonl" and options.detach
    assert options.device == "cpu" and options.tensorboard and not options.tensorboard_only
    assert options.extra_args == ("--epochs", "3", "--method", "qlora", "--resume")


def test_start_takes_the_weights_to_serve(captured, monkeypatch):
    from llm_installer.run import start

    calls = []
    monkeypatch.setattr(start, "start_model", lambda model, options, s, o: calls.append(options))
    assert runner.invoke(app, ["start", "org/m", "--weights", "finetuned"]).exit_code == 0
    assert runner.invoke(app, ["start", "org/m"]).exit_code == 0
    assert [options.weights for options in calls] == ["finetuned", "auto"]
    assert "--weights" in runner.invoke(app, ["start", "--help"]).output


def test_tensorboard_flags(captured):
    runner.invoke(
        app, ["train", "m", "--data", "d", "--no-tensorboard", "--tensorboard-port", "7001"]
    )
    runner.invoke(app, ["train", "m", "--tensorboard-only", "7002"])
    runner.invoke(app, ["train", "m", "--tensorboard-only"])
    (_, off), (_, only_port), (_, only) = captured
    assert not off.tensorboard and off.tensorboard_port == 7001
    assert only_port.tensorboard_only and only_port.tensorboard_port == 7002
    assert not only_port.extra_args and only_port.data is None
    assert only.tensorboard_only and only.tensorboard_port == 6006


def installed_model(models: Path, name: str = "tiny") -> Path:
    model_dir = models / name
    (model_dir / "model").mkdir(parents=True)
    info = {"model_id": f"org/{name}", "image": {"tag": "llm-installer/x:1"}, "device": "cpu"}
    (model_dir / "model_info.json").write_text(json.dumps(info))
    (model_dir / ".install_complete").write_text("")
    return model_dir


@pytest.fixture()
def settings_env(monkeypatch, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("{}\n")
    for key, value in {
        "LLM_INSTALLER_CONFIG": str(config),
        "LLM_INSTALLER_MODELS_DIR": str(tmp_path / "models"),
        "LLM_INSTALLER_LOGS_DIR": str(tmp_path / "logs"),
        "LLM_INSTALLER_CACHE_DIR": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LLM_INSTALLER_DEBUG", raising=False)
    monkeypatch.setattr(train_run, "running_container", lambda *a, **k: None)
    return tmp_path / "models"


def test_errors_before_docker(settings_env, tmp_path):
    result = runner.invoke(app, ["train", "nothing-here", "--data", "d.jsonl"])
    assert result.exit_code == 33 and "not installed" in result.output
    installed_model(settings_env)
    result = runner.invoke(app, ["train", "tiny", "--max-steps", "2"])
    assert result.exit_code == 2 and "--data is required" in result.output
    result = runner.invoke(app, ["train", "tiny", "--data", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "no such file" in result.output
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    result = runner.invoke(app, ["train", "tiny", "--data", str(data), "--output-dir", "/x"])
    assert result.exit_code == 2 and "set by llm-installer" in result.output


def test_a_running_training_is_not_started_twice(settings_env, monkeypatch, tmp_path):
    installed_model(settings_env)
    running = RunningModel(str(settings_env / "tiny"), "docker", "llm-train-tiny", "train", 6006)
    monkeypatch.setattr(train_run, "running_container", lambda *a, **k: running)
    result = runner.invoke(app, ["train", "tiny", "--data", str(tmp_path)])
    assert result.exit_code == 35 and "docker logs -f llm-train-tiny" in result.output


@pytest.mark.parametrize(
    ("code", "error", "exit_code"),
    [
        (130, train_run.TrainingInterruptedError, 130),
        (1, train_run.TrainingFailedError, 41),
        (125, train_run.TrainingFailedError, 41),
    ],
)
def test_exit_codes_become_messages(tmp_path, code, error, exit_code):
    plan = DockerPlan(container=None, device="cpu", url="")  # type: ignore[arg-type]
    with pytest.raises(error) as caught:
        train_run._training_result(code, plan, tmp_path, TrainOptions(data="d"), Output())
    assert caught.value.exit_code == exit_code


def test_a_second_ctrl_c_is_an_abort(tmp_path):
    plan = DockerPlan(container=None, device="cpu", url="")  # type: ignore[arg-type]
    with pytest.raises(train_run.TrainingInterruptedError, match="aborted"):
        train_run._training_result(
            130, plan, tmp_path, TrainOptions(data="d"), Output(), aborted=True
        )


def test_success_names_the_adapter_and_asks_a_running_server_to_restart(
    tmp_path, capsys, monkeypatch
):
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "adapter_config.json").write_text("{}")
    plan = DockerPlan(container=None, device="cpu", url="")  # type: ignore[arg-type]
    monkeypatch.setattr(train_run, "running_container", lambda *a, **k: None)
    train_run._training_result(0, plan, tmp_path, TrainOptions(data="d"), Output())
    out = capsys.readouterr()
    assert "Adapter saved" in out.out and "restart" not in out.out + out.err
    serving = RunningModel(str(tmp_path), "docker", "llm-x", "serve", 8000)
    monkeypatch.setattr(train_run, "running_container", lambda *a, **k: serving)
    train_run._training_result(0, plan, tmp_path, TrainOptions(data="d"), Output())
    out = capsys.readouterr()
    assert "restart" in out.out + out.err


def test_a_full_fine_tune_names_its_folder_and_how_start_serves_it(tmp_path, capsys, monkeypatch):
    (tmp_path / "lora").mkdir()
    adapter = tmp_path / "lora" / "adapter_config.json"
    adapter.write_text("{}")
    os.utime(adapter, (1_000_000, 1_000_000))  # an adapter from an earlier run
    started = time.time()
    (tmp_path / "finetuned").mkdir()
    (tmp_path / "finetuned" / "config.json").write_text("{}")
    plan = DockerPlan(container=None, device="cpu", url="")  # type: ignore[arg-type]
    monkeypatch.setattr(train_run, "running_container", lambda *a, **k: None)
    train_run._training_result(0, plan, tmp_path, TrainOptions(data="d"), Output(), since=started)
    out = capsys.readouterr().out
    assert "Fine-tuned model saved" in out and str(tmp_path / "finetuned") in out
    assert "--weights finetuned" in out and "--weights base" in out
    assert "Adapter saved" not in out  # lora/ is older than this run


def test_train_passes_the_configured_token_and_mirror_to_the_plan(tmp_path, monkeypatch):
    """train_model hands settings.token (HF_TOKEN > config) and HF_ENDPOINT to the plan."""
    seen = {}

    def plan_train(info, paths, host, options):
        seen["options"] = options
        raise train_run.TrainingFailedError("stop here")

    monkeypatch.setattr(train_run, "plan_train", plan_train)
    monkeypatch.setattr(train_run, "running_container", lambda *a, **k: None)
    model_dir = tmp_path / "m"
    (model_dir / "model").mkdir(parents=True)
    (model_dir / "model" / "config.json").write_text("{}")
    (model_dir / "model_info.json").write_text(json.dumps({"model_id": "org/m"}))
    (model_dir / ".install_complete").write_text("x")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_1234")
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example")
    from llm_installer.settings import load_settings

    config = tmp_path / "config.yaml"
    config.write_text("{}\n")
    settings = load_settings(str(config))
    with pytest.raises(train_run.TrainingFailedError):
        train_run.train_model(
            str(model_dir), TrainOptions(data="org/set:train"), settings, Output()
        )
    options = seen["options"]
    assert options.hf_token == "hf_secret_token_1234" and "hf_secret" not in repr(options)
    assert options.hf_endpoint == "https://mirror.example"


TRAINER = r"""
import signal, sys, time
from pathlib import Path

marker = Path(sys.argv[1])

def interrupted(signum, frame):
    marker.write_text("checkpoint saved")
    sys.exit(130)

signal.signal(signal.SIGINT, interrupted)
marker.write_text("ready")
time.sleep(60)
sys.exit(0)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_reaches_the_trainer_once_and_it_saves(tmp_path):
    """The first Ctrl+C is passed on as one SIGINT; the trainer's own exit code comes back."""
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / NATIVE_READY_MARKER).write_text("ok\n")
    script, marker = tmp_path / "trainer.py", tmp_path / "state"
    script.write_text(TRAINER)
    plan = NativePlan(
        venv=venv, setup=(), command=(sys.executable, str(script), str(marker)),
        device="cpu", url="",
    )  # fmt: skip

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (marker.exists() and marker.read_text()):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    assert train_run.run_training_foreground(plan, tmp_path, Output()) == (130, 1)
    assert marker.read_text() == "checkpoint saved"
