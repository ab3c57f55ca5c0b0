"""train.sh in the model's image against the real engine: lora/ lands on the host, owned by the
user, with a training report; start.sh then serves the model with that adapter.

The model is a tiny random Llama installed from a local folder (no Hub); base images are made
offline (LLM_INSTALLER_ROOTFS=1), and in CI built once per run.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tiny_models import make_tiny_llama

from llm_runtime.model_info import read_model_info

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ALPACA = [
    ("Name an animal that barks.", "", "A dog barks."),
    ("Say hello.", "", "Hello world."),
    ("What does the fox do?", "the quick brown fox", "The fox jumps over the lazy dog."),
    ("Count to three.", "", "1 2 3"),
]


@pytest.fixture(scope="module")
def train_env(docker_client, rootfs_image, tmp_path_factory):
    """A user whose ~/LLM is a temp folder, with an empty config.yaml."""
    home = tmp_path_factory.mktemp("llm-train-home")
    (home / "config.yaml").write_text("{}\n")
    env = {
        **os.environ,
        "LLM_INSTALLER_MODELS_DIR": str(home / "models"),
        "LLM_INSTALLER_CACHE_DIR": str(home / "cache"),
        "LLM_INSTALLER_LOGS_DIR": str(home / "logs"),
        "LLM_INSTALLER_CONFIG": str(home / "config.yaml"),
        "LLM_INSTALLER_ROOTFS": "1",
        "HF_HOME": str(home / "hf"),
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("LLM_INSTALLER_DEBUG", None)
    return {"env": env, "home": home, "models": home / "models"}


@pytest.fixture(scope="module")
def installed(train_env, docker_client, tmp_path_factory):
    """A tiny causal LM installed from a local folder; its image is removed afterwards."""
    folder = make_tiny_llama(tmp_path_factory.mktemp("train-src") / "train-llama", seed=7)
    for path in folder.rglob("*"):  # save_pretrained writes 0600; the container user reads them
        path.chmod(path.stat().st_mode | 0o444)
    result = installer(train_env, "install", str(folder), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    (model_dir,) = [p for p in train_env["models"].iterdir() if (p / "train.sh").is_file()]
    yield model_dir
    installer(train_env, "stop", str(model_dir), timeout=120)
    installer(train_env, "remove", str(model_dir), "--yes", timeout=120)


def installer(env, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "llm_installer", *args]
    return subprocess.run(
        command, env=env["env"], capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_alpaca(path: Path, count: int = 40) -> Path:
    with path.open("w") as out:
        for i in range(count):
            instruction, given, output = ALPACA[i % len(ALPACA)]
            record = {"instruction": instruction, "input": given, "output": f"{output} ({i})"}
            out.write(json.dumps(record) + "\n")
    return path


def test_train_sh_writes_lora_on_the_host_and_start_sh_serves_it(
    train_env, installed, docker_client, tmp_path
):
    model_dir = installed
    data = write_alpaca(tmp_path / "alpaca.jsonl")
    started = time.monotonic()
    result = subprocess.run(
        [str(model_dir / "train.sh"), "--data", str(data), "--max-steps", "10",
         "--no-tensorboard", "--eval-steps", "5", "--max-seq-length", "64"],
        env=train_env["env"], capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    train_seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "alpaca" in output.lower()  # the trainer's own console blocks came through
    assert "Adapter saved" in output
    assert (
        f"Adapter saved: {model_dir.resolve()}/lora" in output
    )  # host paths, not /work (issue 14)
    assert "/work/" not in result.stdout and "FutureWarning" not in output
    print(f"train.sh: {train_seconds:.1f}s")

    lora = model_dir / "lora"
    assert (lora / "adapter_config.json").is_file(), output
    weights = [p for p in lora.iterdir() if p.name.startswith("adapter_model.")]
    assert weights, sorted(p.name for p in lora.iterdir())
    report_path = model_dir / "logs" / "training" / "training_report.json"
    report = json.loads(report_path.read_text())
    assert report["global_step"] == 10 and report["stop_reason"]
    assert report["dataset_info"]["format"].lower().startswith("alpaca")
    info = json.loads((model_dir / "model_info.json").read_text())
    # The trainer found the install's model_info.json in the container (not the folder name),
    # and trained the family's LoRA targets that install wrote there (Llama: q/k/v/o).
    assert report["model_id"] == info["model_id"], report["model_id"]
    assert info["lora_target_modules"] == ["q_proj", "v_proj", "k_proj", "o_proj"]
    assert report["lora_config"]["target_modules"] == info["lora_target_modules"]
    # The container never runs as root: on a root host it is the image's user (uid 1000).
    owner = os.getuid() if os.getuid() != 0 else 1000
    for path in [lora, *lora.iterdir(), report_path, *(model_dir / "checkpoints").iterdir()]:
        assert path.stat().st_uid == owner, path
    assert not docker_client.containers.list(
        all=True, filters={"name": f"llm-train-{model_dir.name}"}
    )

    port = free_port()
    started = time.monotonic()
    result = subprocess.run(
        [str(model_dir / "start.sh"), "--no-browser", "--detach", "--port", str(port)],
        env=train_env["env"], capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"start.sh with the adapter: {time.monotonic() - started:.1f}s")
    try:
        url = f"http://127.0.0.1:{port}"
        info = httpx.get(f"{url}/info", timeout=10).json()
        assert info["adapter"] == "/lora"
        assert info["training_report"]["global_step"] == 10
        assert info["training_report"]["stop_reason"] == report["stop_reason"]
        reply = httpx.post(
            f"{url}/generate", json={"prompt": "Say hello.", "max_tokens": 5}, timeout=60
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["text"] is not None
    finally:
        stop = installer(train_env, "stop", str(model_dir), timeout=120)
        assert stop.returncode == 0, stop.stdout + stop.stderr
    assert report.get("family") == info["family"], sorted(report)  # the report names the family


def test_train_without_data_is_a_clear_error(train_env, installed):
    result = subprocess.run(
        [str(installed / "train.sh"), "--max-steps", "1"],
        env=train_env["env"], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--data is required" in result.stdout + result.stderr


PROBE = """
echo x >> /work/model_info.json && echo WROTE model_info.json
mv /work/start.sh /work/start.moved && echo MOVED start.sh
rm -f /work/train.sh && echo REMOVED train.sh
touch /work/model/probe && echo WROTE model/
touch /work/lora/probe && echo WROTE lora/
mkdir /work/.lora.tmp-1 && mv /work/.lora.tmp-1 /work/finetuned-probe && echo SWAPPED in /work
true
"""


def test_the_training_container_cannot_change_the_install(train_env, installed, docker_client):
    """/work is writable for the trainer's atomic swaps, but the install's files and the
    weights are mounted read-only over it: the same mounts as train.sh, another command."""
    from dataclasses import replace

    from llm_installer.run.container import docker_py_kwargs
    from llm_installer.run.devices import detect_host_runtime
    from llm_installer.run.start import prepare_dirs
    from llm_installer.run.start_plan import model_paths
    from llm_installer.run.train_plan import TrainOptions, plan_train

    model_dir = installed
    info = read_model_info(model_dir / "model_info.json")
    before = {name: (model_dir / name).read_bytes() for name in ("model_info.json", "start.sh")}
    plan = plan_train(
        info, model_paths(model_dir, info), detect_host_runtime(),
        TrainOptions(data="org/set:train", device="cpu", tensorboard=False),
    )  # fmt: skip
    prepare_dirs(plan)
    spec = replace(plan.container, command=("sh", "-c", PROBE), name="llm-test-readonly-probe")
    output = docker_client.containers.run(**docker_py_kwargs(spec, {}), remove=True).decode()
    assert "WROTE lora/" in output and "SWAPPED in /work" in output, output
    for refused in ("WROTE model_info.json", "MOVED start.sh", "REMOVED train.sh", "WROTE model/"):
        assert refused not in output, output
    assert {name: (model_dir / name).read_bytes() for name in before} == before
    assert (model_dir / "train.sh").is_file() and not (model_dir / "model" / "probe").exists()
    (model_dir / "lora" / "probe").unlink()
    (model_dir / "finetuned-probe").rmdir()


def test_a_full_fine_tune_lands_in_finetuned_and_start_sh_serves_it(
    train_env, installed, docker_client, tmp_path
):
    model_dir = installed
    data = write_alpaca(tmp_path / "alpaca.jsonl", count=16)
    result = subprocess.run(
        [str(model_dir / "train.sh"), "--data", str(data), "--method", "full", "--max-steps", "3",
         "--no-tensorboard", "--max-seq-length", "64"],
        env=train_env["env"], capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    finetuned = model_dir / "finetuned"
    assert "Fine-tuned model saved" in output and str(finetuned) in output, output
    assert "--weights base" in output
    assert (finetuned / "config.json").is_file() and any(finetuned.glob("*.safetensors"))

    port = free_port()
    result = subprocess.run(
        [str(model_dir / "start.sh"), "--no-browser", "--detach", "--port", str(port)],
        env=train_env["env"], capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Serving the full fine-tune" in result.stdout + result.stderr
    try:
        (container,) = docker_client.containers.list(
            filters={"label": f"org.llm-installer.model-dir={model_dir.resolve()}"}
        )
        sources = {m["Destination"]: m["Source"] for m in container.attrs["Mounts"]}
        assert sources["/model"] == str(finetuned.resolve()) and "/lora" not in sources
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/info", timeout=10).json()["adapter"] is None
        reply = httpx.post(
            f"{url}/generate", json={"prompt": "Say hello.", "max_tokens": 5}, timeout=60
        )
        assert reply.status_code == 200, reply.text
    finally:
        stop = installer(train_env, "stop", str(model_dir), timeout=120)
        assert stop.returncode == 0, stop.stdout + stop.stderr


HUB_PROBE = """
printf %s "$HF_TOKEN" | sha256sum
echo "OFFLINE=$HF_HUB_OFFLINE"
mkdir -p "$HF_HOME/datasets" && touch "$HF_HOME/datasets/probe" && echo CACHE-WRITABLE
"""


def test_hub_data_gets_the_token_by_name_and_a_writable_cache(train_env, installed):
    """The docker CLI runs the plan's argv (as train.sh does): the token reaches the container
    through `-e HF_TOKEN` from the CLI's environment, never through an argument."""
    from dataclasses import replace

    from llm_installer.run.devices import detect_host_runtime
    from llm_installer.run.start import foreground_env, prepare_dirs
    from llm_installer.run.start_plan import model_paths
    from llm_installer.run.train_plan import TrainOptions, plan_train

    token = "hf_probe_token_5678"
    model_dir = installed
    info = read_model_info(model_dir / "model_info.json")
    plan = plan_train(
        info, model_paths(model_dir, info), detect_host_runtime(),
        TrainOptions(data="org/set:train", device="cpu", tensorboard=False, hf_token=token),
    )  # fmt: skip
    prepare_dirs(plan)
    spec = replace(plan.container, command=("sh", "-c", HUB_PROBE), name="llm-test-hub-probe")
    plan = replace(plan, container=spec)
    argv = plan.argv()
    assert not any(token in arg for arg in argv)
    result = subprocess.run(
        argv, env=foreground_env(plan), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert hashlib.sha256(token.encode()).hexdigest() in result.stdout, result.stdout  # arrived
    assert "OFFLINE=0" in result.stdout, result.stdout
    assert "CACHE-WRITABLE" in result.stdout, result.stdout + result.stderr
    assert (model_dir / "cache" / "huggingface" / "datasets" / "probe").is_file()
