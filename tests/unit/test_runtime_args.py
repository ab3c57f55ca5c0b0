"""Every ``serve``/``train`` argument list the host writes, parsed by the runtime's own parser.

The lists come from the real generators — start's plans (Docker and native), start.sh's and
compose.yml's commands, the lock's serve section (what deploy and the Kubernetes manifests run),
the model Dockerfile's CMD, and train's plans — for several families, engines, devices and
options. ``llm_runtime.cli.parse_serve``/``parse_train`` exit 2 on any unknown or ill-typed
argument, which fails the test.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from llm_installer.build.image import render_model_dockerfile
from llm_installer.deploy.k8s import _container
from llm_installer.deploy.lock import serve_section
from llm_installer.run.devices import HostRuntime
from llm_installer.run.scripts import render_run_scripts
from llm_installer.run.start_plan import RUNTIME, ModelPaths, StartOptions, plan_start
from llm_installer.run.train_plan import TrainOptions, plan_train
from llm_runtime import contract
from llm_runtime.cli import parse_serve, parse_train
from llm_runtime.model_info import ModelInfo, write_model_info

MODEL_DIR = Path("/home/user/LLM/models/org_model")
PATHS = ModelPaths(
    model_dir=MODEL_DIR,
    weights=MODEL_DIR / "model",
    logs=MODEL_DIR / "logs",
    lora=MODEL_DIR / "lora",
    checkpoints=MODEL_DIR / "checkpoints",
    installer_dir=Path("/home/user/llm-installer"),
)
GPU_LINUX = HostRuntime(os="linux", nvidia_runtime=True, gpu_count=1)
CPU_LINUX = HostRuntime(os="linux", nvidia_runtime=False, gpu_count=0)
MAC = HostRuntime(
    os="darwin", docker_available=False, mps_available=True, python="/usr/bin/python3"
)


def record(family: str, **changes) -> ModelInfo:
    values = {
        "model_id": "org/model", "family": family, "device": "cuda",
        "weights_path": str(PATHS.weights), "model_dir": str(MODEL_DIR),
        "installer_dir": str(PATHS.installer_dir),
        "image": {"tag": "llm-installer/org_model:abc", "flavour": "cuda"},
        "requirements": {"packages": ["transformers"]},
    }  # fmt: skip
    return ModelInfo.new(**{**values, **changes})


INSTALLS = {
    "text-generation-4bit": record(contract.TEXT_GENERATION, quantization="4bit"),
    "text-generation-vllm": record(contract.TEXT_GENERATION, engine=contract.VLLM),
    "embedding-cpu": record(contract.EMBEDDING, device="cpu"),
    "gguf": record(contract.GGUF, gguf_file="m-Q8_0.gguf", device="cpu"),
    "diffusion": record(contract.DIFFUSION),
    "adapter": record(contract.TEXT_GENERATION, adapter={"model_id": "org/lora"}),
}
START_OPTIONS = {
    "default": StartOptions(),
    "tuned": StartOptions(
        dtype="bfloat16", extra_args=("--max-concurrency", "4", "--threads", "2")
    ),
    "8bit": StartOptions(load_in_8bit=True),
}
ENGINE_FLAGS = ("--max-model-len", "512", "--gpu-memory-utilization", "0.8")  # vLLM's own


def serve_commands(info: ModelInfo, tmp_path: Path) -> dict[str, list[str]]:
    """Every serve command the host writes for this install, by where it is written."""
    found: dict[str, list[str]] = {}
    for host_name, host in (("gpu", GPU_LINUX), ("cpu", CPU_LINUX), ("mac", MAC)):
        for name, options in START_OPTIONS.items():
            if name == "8bit" and (host is not GPU_LINUX or info.device != "cuda"):
                continue  # refused on the host before any command (tested in test_runargs)
            if info.engine == contract.VLLM:
                options = replace(options, extra_args=(*options.extra_args, *ENGINE_FLAGS))
            plan = plan_start(info, replace(PATHS, has_lora=name == "tuned"), host, options)
            command = list(plan.argv() if plan.kind == "native" else plan.container.command)
            if plan.kind == "docker":
                assert plan.argv()[-len(command) :] == command  # what `docker run` runs
            found[f"start-{host_name}-{name}"] = command
    texts = render_run_scripts(tmp_path, info, (1000, 1000))
    for i, line in enumerate(re.findall(r"^\s*COMMAND=\((.*)\)$", texts["start.sh"], re.M)):
        found[f"start.sh-{i}"] = shlex.split(line)
    for name, service in yaml.safe_load(texts["compose.yml"])["services"].items():
        found[f"compose-{name}"] = service["command"]
    lock = {"serve": serve_section(info), "images": {"model": {"tag": "t"}}}
    found["lock"] = lock["serve"]["command"]
    found["k8s"] = _container(lock, gpu=info.device == "cuda")["command"]
    plan = SimpleNamespace(deps_tag="deps:1", base_image="base:1")
    dockerfile = render_model_dockerfile(info.to_dict(), plan, "torch==2.13.0\n")
    found["Dockerfile"] = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    return found


def runtime_argv(command: list[str]) -> list[str]:
    """What follows ``python -m llm_runtime`` (a venv's python natively, ``python`` in images)."""
    at = command.index("llm_runtime")
    assert command[at - 1] == "-m" and command[at - 2].endswith(RUNTIME[0])
    return command[at + 1 :]


@pytest.fixture
def image_model(tmp_path, monkeypatch):
    """The container's /model (or a Mac's weights folder) and model_info.json, here: the server
    reads the engine from it."""

    def mount(info: ModelInfo, argv: list[str]) -> list[str]:
        folder = tmp_path / "model"
        folder.mkdir(exist_ok=True)
        monkeypatch.setenv(
            "LLM_MODEL_INFO",
            str(write_model_info(tmp_path / "mi.json", info) and tmp_path / "mi.json"),
        )
        weights = ("/model", str(PATHS.weights))  # in the image; native (macOS)
        return [str(folder) if a in weights else a for a in argv]

    return mount


@pytest.mark.parametrize("install", sorted(INSTALLS))
def test_every_serve_command_parses_with_the_runtimes_parser(install, tmp_path, image_model):
    info = INSTALLS[install]
    commands = serve_commands(info, tmp_path / "org_model")
    assert {"lock", "k8s", "Dockerfile", "compose-org_model"} <= set(commands), sorted(commands)
    scripts = sum(k.startswith("start.sh") for k in commands)
    assert scripts == (2 if info.device == "cuda" else 1)  # CPU, and GPU for a CUDA install
    for where, command in commands.items():
        argv = runtime_argv(command)
        assert argv[0] == "serve", where
        config = parse_serve(image_model(info, argv))  # SystemExit(2) on a wrong argument
        assert config.port == 8000 and config.load.engine == info.engine, where
        if where.startswith("start-gpu") and install == "text-generation-4bit":
            assert config.load.quantization == ("8bit" if where.endswith("8bit") else "4bit")
        if where.endswith("tuned") and info.engine != contract.VLLM:
            assert (config.load.max_batch_size, config.load.threads) == (4, 2)
        if info.engine == contract.VLLM and where.startswith("start-"):
            assert config.load.engine_args == ENGINE_FLAGS


def test_a_wrong_or_ill_typed_serve_argument_fails_the_parse(tmp_path, image_model):
    info = INSTALLS["embedding-cpu"]
    good = runtime_argv(serve_commands(info, tmp_path)["lock"])
    for bad in (["--bogus"], ["--port", "eighty"], ["--max-concurrency", "0"], ENGINE_FLAGS):
        with pytest.raises(SystemExit) as exited:
            parse_serve(image_model(info, [*good, *bad]))
        assert exited.value.code == 2


TRAIN_OPTIONS = {
    "hub-data": TrainOptions(data="org/set:train"),
    "trainer-flags": TrainOptions(
        data="org/set:train",
        device="cpu",
        tensorboard=False,
        extra_args=("--method", "qlora", "--epochs", "2", "--lora-r", "8", "--max-steps", "3"),
    ),
    "tensorboard-only": TrainOptions(tensorboard_only=True),
}


@pytest.mark.parametrize("family", contract.trainable_families())
@pytest.mark.parametrize("options", sorted(TRAIN_OPTIONS))
def test_every_train_command_parses_with_the_trainers_parser(family, options, tmp_path):
    info = record(family)
    data_file = tmp_path / "d.jsonl"
    data_file.write_text('{"text": "x"}\n')
    for host in (GPU_LINUX, CPU_LINUX, MAC):
        chosen = TRAIN_OPTIONS[options]
        if chosen.device == "cpu" and host is MAC:
            chosen = replace(chosen, device=None)
        for data in (chosen.data, str(data_file)) if chosen.data else (None,):
            plan = plan_train(info, PATHS, host, replace(chosen, data=data))
            command = list(plan.argv() if plan.kind == "native" else plan.container.command)
            argv = runtime_argv(command)
            assert argv[0] == "train"
            args = parse_train(argv[1:])  # SystemExit(2) on a wrong argument
            assert args.model is not None
            if options == "trainer-flags":
                assert (args.method, args.epochs, args.lora_r, args.max_steps) == ("qlora", 2, 8, 3)
                assert args.no_tensorboard


def test_a_wrong_train_argument_fails_the_parse():
    with pytest.raises(SystemExit) as exited:
        parse_train(["--model", "/model", "--data", "x", "--epochs", "many"])
    assert exited.value.code == 2


@pytest.mark.parametrize(
    ("command", "extra", "needle"),
    [
        ("start", ["--bogus"], "unrecognized arguments: --bogus"),
        ("start", ["--max-concurrency", "many"], "argument --max-concurrency: invalid"),
        ("train", ["--epochs", "many"], "argument --epochs: invalid float value"),
    ],
)
def test_start_and_train_refuse_what_the_runtime_would(llm_home, tmp_path, monkeypatch, command, extra, needle):  # fmt: skip
    """The pass-through options are parsed on the host, before any container or folder."""
    from typer.testing import CliRunner

    from llm_installer.cli import app

    folder = llm_home / "models" / "org_model"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "config.json").write_text("{}")
    info = record(contract.TEXT_GENERATION, device="cpu", weights_path=str(folder / "model"))
    write_model_info(folder / "model_info.json", info.replace(model_dir=str(folder)))
    (folder / ".install_complete").write_text("now\n")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    data = ["--data", "org/set:train"] if command == "train" else []
    result = CliRunner().invoke(app, [command, str(folder), *data, "--", *extra])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "would refuse" in result.output
    assert not (folder / "logs").exists() and not (folder / "checkpoints").exists()
