"""GPU flags for containers: CUDA_VISIBLE_DEVICES → GPU UUIDs, CDI, one GPU for training, compose
and the smoke test's container (start's own plan)."""

from __future__ import annotations

from dataclasses import replace

from support.records import record
from test_runargs import GPU_LINUX, INFO, PATHS, check_golden

from llm_installer.build.smoke import classify, smoke_kwargs, smoke_plan
from llm_installer.run.container import docker_py_kwargs
from llm_installer.run.devices import compose_gpus, gpu_flags, gpu_warnings, visible_gpus
from llm_installer.run.start_plan import StartOptions, plan_start
from llm_installer.run.train_plan import TrainOptions, plan_train

UUIDS = tuple(f"GPU-{n}a{n}b{n}c{n}-0000-0000-0000-00000000000{n}" for n in range(4))
FOUR = replace(GPU_LINUX, gpu_count=4, gpu_uuids=UUIDS, gpu_names=("NVIDIA A100-SXM4-80GB",) * 4)


def test_visible_indices_become_uuids():
    assert visible_gpus(replace(FOUR, cuda_visible_devices="1,2")) == f"{UUIDS[1]},{UUIDS[2]}"
    assert visible_gpus(replace(FOUR, cuda_visible_devices=" 3 ")) == UUIDS[3]
    assert visible_gpus(replace(FOUR, cuda_visible_devices="GPU-2a2")) == UUIDS[2]  # a UUID prefix
    assert visible_gpus(replace(FOUR, cuda_visible_devices=UUIDS[0])) == UUIDS[0]
    # As in CUDA, the list ends at the first entry that names no GPU here.
    assert visible_gpus(replace(FOUR, cuda_visible_devices="0,7,1")) == UUIDS[0]
    assert visible_gpus(replace(FOUR, cuda_visible_devices="9")) is None
    assert visible_gpus(FOUR) == "all"


def test_mixed_gpus_warn_about_cuda_order():
    mixed = replace(
        FOUR,
        gpu_names=("NVIDIA RTX A6000", "NVIDIA GeForce RTX 3060", "x", "x"),
        cuda_visible_devices="0",
    )
    assert any("CUDA_DEVICE_ORDER=PCI_BUS_ID" in w for w in gpu_warnings(mixed))
    assert gpu_warnings(replace(mixed, cuda_device_order="PCI_BUS_ID")) == ()
    assert gpu_warnings(replace(FOUR, cuda_visible_devices="0")) == ()  # identical GPUs: same order


def test_serving_gets_the_subset_and_training_one_gpu():
    subset = replace(FOUR, cuda_visible_devices="2,3")
    argv = plan_start(INFO, PATHS, subset, StartOptions()).argv()
    assert argv[argv.index("--gpus") + 1] == f'"device={UUIDS[2]},{UUIDS[3]}"'
    assert "--ipc=host" in argv
    train = plan_train(INFO, PATHS, subset, TrainOptions(data="org/dataset:train")).argv()
    assert train[train.index("--gpus") + 1] == f'"device={UUIDS[2]}"' and "--ipc=host" not in train
    every = plan_train(INFO, PATHS, FOUR, TrainOptions(data="org/dataset:train")).argv()
    assert every[every.index("--gpus") + 1] == f'"device={UUIDS[0]}"'
    assert gpu_flags("cuda", GPU_LINUX, "train")["gpus"] == "all"  # one GPU: all of it
    check_golden("start_gpu_linux_visible_uuids", plan_start(INFO, PATHS, subset, StartOptions()))
    check_golden(
        "train_gpu_linux_four_gpus",
        plan_train(INFO, PATHS, FOUR, TrainOptions(data="org/dataset:train")),
    )


def test_cdi_hosts_get_cdi_devices():
    cdi = replace(FOUR, gpu_access="cdi", cuda_visible_devices="1")
    plan = plan_start(INFO, PATHS, cdi, StartOptions())
    argv = plan.argv()
    assert "--gpus" not in argv and argv[argv.index("--device") + 1] == f"nvidia.com/gpu={UUIDS[1]}"
    (request,) = docker_py_kwargs(plan.container, {})["device_requests"]
    assert request["Driver"] == "cdi" and request["DeviceIDs"] == [f"nvidia.com/gpu={UUIDS[1]}"]
    every = plan_start(INFO, PATHS, replace(FOUR, gpu_access="cdi"), StartOptions()).argv()
    assert every[every.index("--device") + 1] == "nvidia.com/gpu=all"
    check_golden("start_gpu_linux_cdi", plan)


def test_compose_reserves_the_same_gpus():
    assert compose_gpus("cuda", replace(FOUR, cuda_visible_devices="1")) == {
        "gpu_ids": [UUIDS[1]],
        "gpu_driver": "nvidia",
    }
    assert compose_gpus("cuda", FOUR) == {"gpu_ids": None, "gpu_driver": "nvidia"}
    assert compose_gpus("cuda", replace(FOUR, gpu_access="cdi")) == {
        "gpu_ids": ["nvidia.com/gpu=all"],
        "gpu_driver": "cdi",
    }
    assert compose_gpus("cpu") == {"gpu_ids": None, "gpu_driver": "nvidia"}


def test_the_smoke_test_runs_starts_command_on_the_installed_device(tmp_path):
    model_dir = tmp_path / "Org_Model"
    (model_dir / "model").mkdir(parents=True)
    info = record(
        INFO, quantization="4bit", weights_path=str(model_dir / "model"), model_dir=str(model_dir)
    )
    plan = smoke_plan(info, model_dir, GPU_LINUX)
    kwargs = smoke_kwargs(plan.container)
    command = kwargs["command"]
    assert command[command.index("--device") + 1] == "cuda" and "--load-in-4bit" in command
    assert command == list(plan.container.command)  # start's serve arguments, unchanged
    assert kwargs["device_requests"][0]["Capabilities"] == [["gpu"]]
    assert kwargs["ports"] == {"8000/tcp": ("127.0.0.1", None)}
    assert [m["Target"] for m in kwargs["mounts"]] == ["/model"] and kwargs["mounts"][0]["ReadOnly"]
    assert kwargs["name"].startswith("llm-Org_Model-smoke-")
    cpu = smoke_kwargs(
        smoke_plan(record(info, device="cpu", quantization=None), model_dir, GPU_LINUX).container
    )
    assert (
        cpu["device_requests"] == []
        and cpu["command"][cpu["command"].index("--device") + 1] == "cpu"
    )


def test_gpu_failures_are_classified():
    assert classify('could not select device driver "" with capabilities: [[gpu]]') == "gpu"
    assert classify("RuntimeError: CUDA error: no kernel image is available for execution") == "gpu"
    assert classify("torch.OutOfMemoryError: CUDA out of memory") == "memory"


def test_compose_files_reserve_the_subset_or_cdi(monkeypatch):
    import yaml

    from llm_installer.run import scripts

    info = record(INFO, weights_path=str(PATHS.weights), model_dir=str(PATHS.model_dir))
    monkeypatch.setattr(
        scripts,
        "compose_gpus",
        lambda device: compose_gpus(device, replace(FOUR, cuda_visible_devices="1,3")),
    )
    (service,) = yaml.safe_load(
        scripts.render_run_scripts(PATHS.model_dir, info, (1000, 1000))["compose.yml"]
    )["services"].values()
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device == {
        "driver": "nvidia",
        "device_ids": [UUIDS[1], UUIDS[3]],
        "capabilities": ["gpu"],
    }
    monkeypatch.setattr(
        scripts,
        "compose_gpus",
        lambda device: compose_gpus(device, replace(FOUR, gpu_access="cdi")),
    )
    (service,) = yaml.safe_load(
        scripts.render_run_scripts(PATHS.model_dir, info, (1000, 1000))["compose.yml"]
    )["services"].values()
    assert service["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "cdi", "device_ids": ["nvidia.com/gpu=all"]}
    ]


def test_without_every_uuid_the_indices_stay():
    partial = replace(
        FOUR, gpu_uuids=(UUIDS[0], "", UUIDS[2], UUIDS[3]), cuda_visible_devices="1,2"
    )
    assert visible_gpus(partial) == "1,2"  # NVML order, as --gpus device= counts
