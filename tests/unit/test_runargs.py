"""Run plans (``docker run`` arguments, native macOS plans) against golden files.

Regenerate after an intended change: ``UPDATE_GOLDEN=1 pytest tests/unit/test_runargs.py``,
then read the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from support.records import record

from llm_installer.run.container import docker_py_kwargs
from llm_installer.run.devices import (
    DeviceUnavailableError,
    GpuRequiredError,
    HostRuntime,
    visible_gpus,
)
from llm_installer.run.start import foreground_env
from llm_installer.run.start_plan import (
    InvalidRunOptionError,
    ModelPaths,
    StartOptions,
    model_paths,
    plan_start,
    plan_summary,
)
from llm_installer.run.train_plan import TrainOptions, hub_datasets, plan_train

GOLDEN = Path(__file__).parent / "golden_runargs"
MODEL_DIR = Path("/home/user/LLM/models/Qwen_Qwen3-0.6B")
SECRET = "sk-do-not-leak-42"

INFO = record(
    {
        "model_id": "Qwen/Qwen3-0.6B",
        "family": "text-generation",
        "requires_gpu": False,
        "device": "cuda",
        "weights_path": str(MODEL_DIR / "model"),
        "model_dir": str(MODEL_DIR),
        "installer_dir": "/home/user/llm-installer",
        "compatibility": {
            "verdict": "compatible",
            "recommended": {"dtype": "bfloat16", "device": "cuda"},
        },
        "image": {"tag": "llm-installer/qwen_qwen3-0.6b:abc123", "flavour": "cuda"},
    }
)
PATHS = ModelPaths(
    model_dir=MODEL_DIR,
    weights=MODEL_DIR / "model",
    logs=MODEL_DIR / "logs",
    lora=MODEL_DIR / "lora",
    checkpoints=MODEL_DIR / "checkpoints",
    installer_dir=Path("/home/user/llm-installer"),
    protected=tuple(MODEL_DIR / name for name in ("model_info.json", "start.sh", "train.sh")),
)
# A full fine-tune saved after lora/'s adapter: start serves it unless told --weights base.
FINETUNED_PATHS = replace(
    PATHS, has_lora=True, finetuned=MODEL_DIR / "finetuned", finetuned_is_newer=True
)
GPU_LINUX = HostRuntime(os="linux", nvidia_runtime=True, gpu_count=1, uid=1000, gid=1000)
CPU_LINUX = HostRuntime(os="linux", nvidia_runtime=False, gpu_count=0, uid=1000, gid=1000)
MAC = HostRuntime(
    os="darwin",
    docker_available=False,
    mps_available=True,
    uid=501,
    gid=20,
    python="/usr/bin/python3",
)


def check_golden(name: str, plan) -> None:
    actual = json.dumps(plan_summary(plan), indent=2) + "\n"
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual)
    assert actual == path.read_text(), f"{path} differs; UPDATE_GOLDEN=1 regenerates it"


START_CASES = {
    "gpu_linux": (INFO, PATHS, GPU_LINUX, StartOptions()),
    "gpu_linux_two_gpus": (INFO, PATHS, replace(GPU_LINUX, gpu_count=2), StartOptions()),
    "gpu_linux_visible_1_2": (
        INFO, PATHS, replace(GPU_LINUX, gpu_count=4, cuda_visible_devices="1,2"), StartOptions()
    ),
    "gpu_linux_lora_dtype_extra": (
        INFO, replace(PATHS, has_lora=True), GPU_LINUX,
        StartOptions(port=9000, dtype="float16", load_in_4bit=True, extra_args=("--max-concurrency", "4")),
    ),
    "cpu_linux_no_toolkit": (INFO, PATHS, replace(CPU_LINUX, gpu_count=1), StartOptions()),
    "cpu_linux_no_gpu": (INFO, PATHS, CPU_LINUX, StartOptions()),
    "cpu_linux_requires_gpu_forced": (
        record(INFO, requires_gpu=True), PATHS, CPU_LINUX, StartOptions(force=True)
    ),
    "cpu_image_on_gpu_host": (
        record(INFO, device="cpu", image={"tag": "llm-installer/x:1", "flavour": "cpu"}),
        PATHS, GPU_LINUX, StartOptions(),
    ),
    "root_host_all_interfaces": (INFO, PATHS, replace(GPU_LINUX, uid=0, gid=0), StartOptions(host="0.0.0.0")),
    "local_folder_weights": (
        record(INFO, weights_path="/data/my-model"), replace(PATHS, weights=Path("/data/my-model")),
        GPU_LINUX, StartOptions(),
    ),
    "api_key": (INFO, PATHS, GPU_LINUX, StartOptions(api_key=SECRET)),
    "installed_4bit_on_cpu": (record(INFO, quantization="4bit"), PATHS, CPU_LINUX, StartOptions()),
    "macos_native_mps": (INFO, replace(PATHS, has_lora=True), MAC, StartOptions(api_key=SECRET)),
    "macos_native_cpu": (INFO, PATHS, replace(MAC, mps_available=False), StartOptions()),
    "gpu_linux_finetuned": (INFO, FINETUNED_PATHS, GPU_LINUX, StartOptions()),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(START_CASES))
def test_start_plan_matches_golden(name):
    check_golden(f"start_{name}", plan_start(*START_CASES[name]))


TRAIN_CASES = {
    "gpu_linux": (INFO, PATHS, GPU_LINUX, TrainOptions(data="org/dataset:train")),
    "cpu_linux": (INFO, PATHS, CPU_LINUX, TrainOptions(data="org/dataset:train", extra_args=("--epochs", "1"))),
    "cpu_linux_no_tensorboard": (
        INFO, PATHS, CPU_LINUX,
        TrainOptions(data="org/dataset:train", tensorboard=False, extra_args=("--max-steps", "10")),
    ),
    "tensorboard_only": (INFO, PATHS, GPU_LINUX, TrainOptions(tensorboard_only=True, tensorboard_port=7000)),
    "root_host": (INFO, PATHS, replace(GPU_LINUX, uid=0, gid=0), TrainOptions(data="org/dataset:train")),
    "macos_native": (INFO, PATHS, MAC, TrainOptions(data="/Users/me/data.jsonl")),
    "macos_native_hub_token": (INFO, PATHS, MAC, TrainOptions(data="org/dataset:train", hf_token=SECRET)),
    "hub_token_mirror": (
        INFO, PATHS, GPU_LINUX,
        TrainOptions(data="org/dataset:train[:50%]", hf_token=SECRET, hf_endpoint="https://hub.example"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TRAIN_CASES))
def test_train_plan_matches_golden(name):
    check_golden(f"train_{name}", plan_train(*TRAIN_CASES[name]))


def test_gpu_flags_come_from_the_host():
    assert "--gpus" in plan_start(*START_CASES["gpu_linux"]).argv()
    argv = plan_start(*START_CASES["gpu_linux_visible_1_2"]).argv()
    assert argv[argv.index("--gpus") + 1] == '"device=1,2"'
    for name in ("cpu_linux_no_toolkit", "cpu_linux_no_gpu", "cpu_image_on_gpu_host"):
        plan = plan_start(*START_CASES[name])
        assert plan.device == "cpu" and "--gpus" not in plan.argv()


def test_cpu_fallback_is_loud():
    plan = plan_start(*START_CASES["cpu_linux_no_toolkit"])
    assert any("Container Toolkit" in w for w in plan.warnings)
    assert any("no NVIDIA GPU" in w for w in plan_start(*START_CASES["cpu_linux_no_gpu"]).warnings)


@pytest.mark.parametrize("value", ["", "-1", "NoDevFiles"])
def test_cuda_visible_devices_can_hide_every_gpu(value):
    host = replace(GPU_LINUX, cuda_visible_devices=value)
    assert visible_gpus(host) is None
    plan = plan_start(INFO, PATHS, host, StartOptions())
    assert plan.device == "cpu" and any("CUDA_VISIBLE_DEVICES" in w for w in plan.warnings)


def test_gpu_only_model_is_refused_on_cpu_unless_forced():
    info = record(INFO, requires_gpu=True)
    with pytest.raises(GpuRequiredError) as caught:
        plan_start(info, PATHS, CPU_LINUX, StartOptions())
    assert "--force" in caught.value.hint
    with pytest.raises(GpuRequiredError):
        plan_train(info, PATHS, CPU_LINUX, TrainOptions(data="org/d:train"))
    assert plan_start(info, PATHS, GPU_LINUX, StartOptions()).device == "cuda"


@pytest.mark.parametrize(
    ("host", "options", "error"),
    [
        (CPU_LINUX, StartOptions(device="cuda"), DeviceUnavailableError),
        (GPU_LINUX, StartOptions(device="mps"), DeviceUnavailableError),
        (MAC, StartOptions(device="cuda"), DeviceUnavailableError),
        (CPU_LINUX, StartOptions(load_in_8bit=True), InvalidRunOptionError),
        (GPU_LINUX, StartOptions(load_in_8bit=True, load_in_4bit=True), InvalidRunOptionError),
        (GPU_LINUX, StartOptions(port=70000), InvalidRunOptionError),
        (GPU_LINUX, StartOptions(dtype="float8"), InvalidRunOptionError),
    ],
)
def test_impossible_requests_are_errors(host, options, error):
    with pytest.raises(error):
        plan_start(INFO, PATHS, host, options)


def test_api_key_never_reaches_argv_or_repr():
    for name in ("api_key", "macos_native_mps"):
        plan = plan_start(*START_CASES[name])
        assert not any(SECRET in arg for arg in plan.argv())
        assert SECRET not in repr(plan) and SECRET not in json.dumps(plan_summary(plan))
        assert plan.secrets == {"LLM_API_KEY": SECRET}
    docker_plan = plan_start(*START_CASES["api_key"])
    assert docker_plan.argv()[docker_plan.argv().index("LLM_API_KEY") - 1] == "-e"
    kwargs = docker_py_kwargs(docker_plan.container, docker_plan.secrets)
    assert kwargs["environment"]["LLM_API_KEY"] == SECRET


def test_published_port_is_local_unless_asked():
    assert "127.0.0.1:8000:8000" in plan_start(*START_CASES["gpu_linux"]).argv()
    assert "0.0.0.0:8000:8000" in plan_start(*START_CASES["root_host_all_interfaces"]).argv()


def test_model_is_read_only_and_lora_only_when_present():
    argv = plan_start(*START_CASES["gpu_linux"]).argv()
    assert f"{MODEL_DIR}/model:/model:ro" in argv
    assert not any(":/lora" in a for a in argv) and "--lora" not in argv
    argv = plan_start(*START_CASES["gpu_linux_lora_dtype_extra"]).argv()
    assert f"{MODEL_DIR}/lora:/lora:ro" in argv and "--lora" in argv


def test_docker_py_kwargs_match_the_argv():
    plan = plan_start(*START_CASES["gpu_linux_visible_1_2"])
    kwargs = docker_py_kwargs(plan.container, plan.secrets)
    assert kwargs["device_requests"][0]["DeviceIDs"] == ["1", "2"]
    assert kwargs["ports"] == {"8000/tcp": ("127.0.0.1", 8000)}
    assert kwargs["user"] == "1000:1000" and kwargs["init"] is True
    assert [m["Target"] for m in kwargs["mounts"]] == ["/model", "/logs"]
    assert kwargs["mounts"][0]["ReadOnly"] is True
    assert kwargs["command"] == list(plan.container.command)
    assert kwargs["labels"]["org.llm-installer.model-dir"] == str(MODEL_DIR)


def test_model_paths_reads_the_folder(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "lora").mkdir()
    paths = model_paths(tmp_path, record())
    assert paths.weights == tmp_path.resolve() / "model" and not paths.has_lora
    assert not paths.lora_unusable
    (tmp_path / "lora" / "notes.txt").write_text("x")
    assert model_paths(tmp_path, record()).lora_unusable
    (tmp_path / "lora" / "adapter_config.json").write_text("{}")
    assert model_paths(tmp_path, record()).has_lora
    assert model_paths(tmp_path, record(weights_path="/data/w")).weights == Path("/data/w")


def _train_plan(tmp_path, **options):
    paths = model_paths(tmp_path / "model-dir", INFO)
    return plan_train(INFO, paths, CPU_LINUX, TrainOptions(**options)), paths


def _volumes(plan) -> list[str]:
    argv = plan.argv()
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]


def _after(plan, flag: str) -> str:
    command = list(plan.container.command)
    return command[command.index(flag) + 1]


def test_train_data_file_folder_and_glob_are_mounted_read_only(tmp_path):
    data = tmp_path / "data"
    (data / "more").mkdir(parents=True)
    (data / "a.jsonl").write_text("{}\n")
    (data / "more" / "b.jsonl").write_text("{}\n")
    data.chmod(0o755)
    plan, _ = _train_plan(tmp_path, data=str(data / "a.jsonl"))
    assert f"{data}:/data:ro" in _volumes(plan)  # the file's folder: images beside it too
    assert _after(plan, "--data") == "/data/a.jsonl"
    data.chmod(0o700)  # a private folder: only the file goes in
    plan, _ = _train_plan(tmp_path, data=str(data / "a.jsonl"))
    assert f"{data / 'a.jsonl'}:/data/a.jsonl:ro" in _volumes(plan)
    assert _after(plan, "--data") == "/data/a.jsonl"
    data.chmod(0o755)
    plan, _ = _train_plan(tmp_path, data=str(data))
    assert f"{data}:/data:ro" in _volumes(plan) and _after(plan, "--data") == "/data"
    plan, _ = _train_plan(tmp_path, data=f"{data}/**/*.jsonl")
    assert f"{data}:/data:ro" in _volumes(plan) and _after(plan, "--data") == "/data/**/*.jsonl"
    plan, _ = _train_plan(tmp_path, data=f"{data / 'a.jsonl'},{data / 'more'},org/set:train")
    assert f"{data}:/data/1:ro" in _volumes(plan)
    assert f"{data / 'more'}:/data/2:ro" in _volumes(plan)
    assert _after(plan, "--data") == "/data/1/a.jsonl,/data/2,org/set:train"


def test_train_missing_data_is_an_error_before_docker(tmp_path):
    with pytest.raises(InvalidRunOptionError, match="no such file"):
        _train_plan(tmp_path, data=str(tmp_path / "missing.jsonl"))
    with pytest.raises(InvalidRunOptionError, match="--data is required"):
        _train_plan(tmp_path)


def test_train_outputs_stay_in_the_model_folder(tmp_path):
    plan, paths = _train_plan(tmp_path, data="org/set:train")
    assert f"{paths.model_dir}:/work" in _volumes(plan)
    assert _after(plan, "--output-dir") == "/work"
    hub_cache = paths.model_dir / "cache" / "huggingface"
    assert set(plan.writable_dirs) == {paths.lora, paths.checkpoints, paths.logs, hub_cache}
    for flag in ("--output-dir", "--lora-dir=/x", "--logs-dir", "--model"):
        with pytest.raises(InvalidRunOptionError, match="set by llm-installer"):
            _train_plan(tmp_path, data="org/set:train", extra_args=(flag, "/x"))


def test_train_resume_from_a_host_checkpoint_becomes_its_container_path(tmp_path):
    checkpoint = tmp_path / "model-dir" / "checkpoints" / "checkpoint-5"
    checkpoint.mkdir(parents=True)
    plan, _ = _train_plan(
        tmp_path,
        data="org/set:train",
        extra_args=("--resume-from", str(checkpoint), "--epochs", "2"),
    )
    assert plan.container.command[-4:] == (
        "--resume-from",
        "/work/checkpoints/checkpoint-5",
        "--epochs",
        "2",
    )
    plan, _ = _train_plan(
        tmp_path, data="org/set:train", extra_args=("--resume-from=checkpoint-5",)
    )
    assert _after(plan, "--resume-from") == "/work/checkpoints/checkpoint-5"
    with pytest.raises(InvalidRunOptionError, match="inside"):
        _train_plan(tmp_path, data="org/set:train", extra_args=("--resume-from", "/elsewhere/c"))


def test_train_command_uses_the_trainers_real_flags():
    """Every flag plan_train writes is one llm_runtime.training.cli parses, and parses as meant."""
    import argparse

    from llm_runtime.training.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for name in TRAIN_CASES:
        plan = plan_train(*TRAIN_CASES[name])
        command = list(plan.container.command if plan.kind == "docker" else plan.command)
        start = command.index("train") + 1
        args = parser.parse_args(command[start:])
        assert (args.tensorboard_only is not None) == (name == "tensorboard_only")
        if plan.kind == "docker":
            assert str(args.model) == "/model" and str(args.output_dir) == "/work"
        if args.tensorboard_only is None:
            assert args.data and args.device == plan.device
            assert args.no_tensorboard == (name == "cpu_linux_no_tensorboard")


def test_install_files_are_mounted_read_only_over_the_writable_work(tmp_path):
    model_dir = tmp_path / "model-dir"
    (model_dir / "model").mkdir(parents=True)
    for name in ("model_info.json", "start.sh", "train.sh", "compose.yml", "install.log"):
        (model_dir / name).write_text("x")
    paths = model_paths(model_dir, record(INFO, weights_path=None))  # weights in model/
    assert {p.name for p in paths.protected} == {
        "model_info.json", "start.sh", "train.sh", "compose.yml", "install.log"
    }  # fmt: skip
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    plan = plan_train(INFO, paths, CPU_LINUX, TrainOptions(data=str(data)))
    volumes = _volumes(plan)
    root = model_dir.resolve()
    assert f"{root}:/work" in volumes and f"{root}/model:/work/model:ro" in volumes
    for name in ("model_info.json", "start.sh", "train.sh", "compose.yml", "install.log"):
        assert f"{root}/{name}:/work/{name}:ro" in volumes
    assert volumes.index(f"{root}:/work") < volumes.index(
        f"{root}/model_info.json:/work/model_info.json:ro"
    )
    assert not any("Dockerfile" in v for v in volumes)  # only files that exist (no empty dirs)
    mounts = docker_py_kwargs(plan.container, plan.secrets)["mounts"]
    assert {m["Target"] for m in mounts if m["ReadOnly"]} >= {
        "/work/model_info.json",
        "/work/model",
    }


def test_hub_data_goes_online_with_a_writable_cache_and_the_token_by_name_only(tmp_path):
    plan = plan_train(*TRAIN_CASES["hub_token_mirror"])
    argv = plan.argv()
    assert not any(SECRET in arg for arg in argv)
    assert SECRET not in repr(plan) and SECRET not in json.dumps(plan_summary(plan))
    assert argv[argv.index("HF_TOKEN") - 1] == "-e"  # the value comes from docker's env
    env = dict(plan.container.env)
    assert env["HF_HUB_OFFLINE"] == "0" and env["HF_HOME"] == "/work/cache/huggingface"
    assert env["HF_ENDPOINT"] == "https://hub.example"
    assert _after(plan, "--data") == "org/dataset:train[:50%]"  # passed through, not mounted
    assert MODEL_DIR / "cache" / "huggingface" in plan.writable_dirs
    assert foreground_env(plan)["HF_TOKEN"] == SECRET  # what the docker CLI inherits
    kwargs = docker_py_kwargs(plan.container, plan.secrets)
    assert kwargs["environment"]["HF_TOKEN"] == SECRET
    assert not any(SECRET in arg for arg in kwargs["command"])
    native = plan_train(*TRAIN_CASES["macos_native_hub_token"])
    assert native.env == (
        ("HF_HUB_OFFLINE", "0"), ("HF_DATASETS_OFFLINE", "0"),
        ("HF_HOME", str(MODEL_DIR / "cache" / "huggingface")),
    )  # fmt: skip
    assert native.secrets == {"HF_TOKEN": SECRET} and SECRET not in " ".join(native.argv())


def test_local_data_stays_offline_and_gets_no_token(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    plan, paths = _train_plan(tmp_path, data=str(data), hf_token=SECRET)
    assert "HF_HUB_OFFLINE" not in dict(plan.container.env)  # the image's HF_HUB_OFFLINE=1 holds
    assert "HF_TOKEN" not in plan.argv() and plan.secrets == {}
    assert paths.model_dir / "cache" / "huggingface" not in plan.writable_dirs
    native = plan_train(INFO, PATHS, MAC, TrainOptions(data=str(data), hf_token=SECRET))
    assert native.env == (("HF_HUB_OFFLINE", "1"),) and native.secrets == {}


def test_hub_names_follow_the_trainers_syntax(tmp_path):
    from llm_runtime.training.data.sources import HUB_SPEC

    local = tmp_path / "notes.txt"
    local.write_text("x")
    spec = f"imdb:train,org/set:test[:10%],{local},data/*.jsonl"
    assert hub_datasets(spec) == ("imdb:train", "org/set:test[:10%]")
    assert all(HUB_SPEC.match(name) for name in hub_datasets(spec))
    assert hub_datasets(str(local)) == () and hub_datasets(None) == ()


def test_start_serves_a_newer_full_fine_tune_loudly_and_base_on_request():
    plan = plan_start(*START_CASES["gpu_linux_finetuned"])
    argv = plan.argv()
    assert f"{MODEL_DIR}/finetuned:/model:ro" in argv and f"{MODEL_DIR}/model:/model:ro" not in argv
    assert "--lora" not in argv and not any(":/lora" in a for a in argv)
    assert any("Serving the full fine-tune" in w and "--weights base" in w for w in plan.warnings)
    base = plan_start(INFO, FINETUNED_PATHS, GPU_LINUX, StartOptions(weights="base"))
    assert f"{MODEL_DIR}/model:/model:ro" in base.argv() and "--lora" in base.argv()
    assert not base.warnings
    older = replace(FINETUNED_PATHS, finetuned_is_newer=False)
    auto = plan_start(INFO, older, GPU_LINUX, StartOptions())
    assert "--lora" in auto.argv() and any("--weights finetuned" in w for w in auto.warnings)
    forced = plan_start(INFO, older, GPU_LINUX, StartOptions(weights="finetuned"))
    assert f"{MODEL_DIR}/finetuned:/model:ro" in forced.argv()
    native = plan_start(INFO, FINETUNED_PATHS, MAC, StartOptions())
    assert native.argv()[native.argv().index("--model") + 1] == str(MODEL_DIR / "finetuned")
    with pytest.raises(InvalidRunOptionError, match="holds no fine-tuned model"):
        plan_start(INFO, PATHS, GPU_LINUX, StartOptions(weights="finetuned"))
    with pytest.raises(InvalidRunOptionError, match="choose one of"):
        plan_start(INFO, PATHS, GPU_LINUX, StartOptions(weights="best"))


def test_model_paths_finds_a_full_fine_tune_and_which_is_newer(tmp_path):
    (tmp_path / "finetuned").mkdir()
    assert model_paths(tmp_path, record()).finetuned is None  # no config.json: not a model
    config = tmp_path / "finetuned" / "config.json"
    config.write_text("{}")
    paths = model_paths(tmp_path, record())
    assert paths.finetuned == tmp_path.resolve() / "finetuned" and paths.finetuned_is_newer
    (tmp_path / "lora").mkdir()
    adapter = tmp_path / "lora" / "adapter_config.json"
    adapter.write_text("{}")
    os.utime(config, (1_000_000, 1_000_000))
    assert not model_paths(tmp_path, record()).finetuned_is_newer
    os.utime(adapter, (900_000, 900_000))
    assert model_paths(tmp_path, record()).finetuned_is_newer
