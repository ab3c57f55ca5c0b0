"""The NVML probe per GPU (MIG, failures, problems) and the engine's GPU access, on NVML and
``docker info`` answers of GPU hosts this machine is not (the probing code is the real one)."""

from __future__ import annotations

import dataclasses

from fake_nvml import FakeGpu, FakeNvml, NVMLError_NoPermission

from llm_installer.check.hardware import Gpu, Hardware, gpu_access_from_info, probe_nvidia
from llm_installer.check.report import _docker_line, _hardware_lines

A100 = "NVIDIA A100-SXM4-40GB"


def uuid(n: int) -> str:
    return f"GPU-{n:08d}-0000-0000-0000-000000000000"


def test_one_failing_gpu_does_not_discard_the_others():
    nvml = FakeNvml(
        [
            FakeGpu("RTX 4090", uuid=uuid(0)),
            FakeGpu("bad", broken=True),
            FakeGpu("RTX 4090", uuid=uuid(2)),
        ]
    )
    found = probe_nvidia(nvml)
    assert [g.index for g in found.gpus] == [0, 2]
    assert [g.uuid for g in found.gpus] == [uuid(0), uuid(2)]
    assert found.driver == "580.95.05" and found.cuda == "13.0"
    assert any(p.startswith("GPU 1:") and "left out" in p for p in found.problems)
    assert nvml.calls == ["init", "shutdown"]


def test_mig_instances_are_the_devices():
    instances = [
        FakeGpu(f"{A100} MIG 3g.20gb", total_gib=19.6, free_gib=19.5, uuid=f"MIG-{i}")
        for i in range(2)
    ]
    nvml = FakeNvml(
        [
            FakeGpu(
                A100,
                total_gib=40,
                capability=(8, 0),
                uuid=uuid(0),
                mig=[instances[0], None, instances[1]],
            )
        ]
    )
    gpus = probe_nvidia(nvml).gpus
    assert [g.uuid for g in gpus] == ["MIG-0", "MIG-1"]
    assert all(g.mig_parent == 0 and g.compute_capability == (8, 0) for g in gpus)
    assert gpus[0].vram_total == int(19.6 * 2**30)  # the instance's memory, not the whole GPU's


def test_unreadable_mig_instances_are_a_problem_not_the_whole_gpu():
    nvml = FakeNvml([FakeGpu(A100, uuid=uuid(0), mig=[], mig_error=NVMLError_NoPermission)])
    found = probe_nvidia(nvml)
    assert found.gpus == ()
    assert any("MIG" in p and "Insufficient Permissions" in p for p in found.problems)
    assert any("try as root" in p for p in found.problems)


def test_a_missing_driver_version_is_a_problem():
    found = probe_nvidia(FakeNvml([FakeGpu("T4", capability=(7, 5))], driver_error=True))
    assert len(found.gpus) == 1 and found.driver is None
    assert any("driver version" in p for p in found.problems)


def test_engine_gpu_access_from_docker_info(tmp_path):
    none = lambda _name: None  # noqa: E731
    assert (
        gpu_access_from_info({"Runtimes": {"runc": {}, "nvidia": {}}}, local=False, which=none)
        == "runtime"
    )
    hook = lambda name: "/usr/bin/" + name if name == "nvidia-container-runtime-hook" else None  # noqa: E731
    assert gpu_access_from_info({"Runtimes": {"runc": {}}}, local=True, which=hook) == "hook"
    assert (
        gpu_access_from_info({"Runtimes": {"runc": {}}}, local=False, which=hook) is None
    )  # a remote engine
    discovered = {"DiscoveredDevices": [{"Source": "cdi", "ID": "nvidia.com/gpu=0"}]}
    assert gpu_access_from_info(discovered, local=False, which=none) == "cdi"
    spec_dir = tmp_path / "cdi"
    spec_dir.mkdir()
    info = {"Runtimes": {"runc": {}}, "CDISpecDirs": [str(spec_dir), str(tmp_path / "absent")]}
    assert gpu_access_from_info(info, local=True, which=none) is None
    (spec_dir / "nvidia.yaml").write_text(
        'cdiVersion: "0.5.0"\nkind: nvidia.com/gpu\ndevices:\n- name: "0"\n'
    )
    assert gpu_access_from_info(info, local=True, which=none) == "cdi"


def _hardware(**changes) -> dict:
    hardware = Hardware(
        os="Linux", arch="x86_64", cpu_model="x", cpu_cores=8, cpu_threads=16, ram_total=64 * 2**30,
        ram_available=60 * 2**30, disk_path="/", disk_total=2**40, disk_free=2**39,
    )  # fmt: skip
    return dataclasses.asdict(dataclasses.replace(hardware, **changes))


def test_report_does_not_blame_the_toolkit_when_docker_is_unreachable():
    line = _docker_line(_hardware(docker_error="No Docker engine answers: permission denied"))
    assert "not reachable" in line and "permission denied" in line
    assert "✗" in line and "not checked" in line
    cdi = _docker_line(_hardware(docker_available=True, nvidia_runtime=True, gpu_access="cdi"))
    assert "in containers [green]✓[/] (CDI, --device nvidia.com/gpu)" in cdi


def test_report_shows_driver_flavour_and_problems():
    gpus = (Gpu(0, "Tesla V100", 32 * 2**30, 31 * 2**30, (7, 0), uuid(0)),)
    hardware = _hardware(
        gpus=gpus, nvidia_driver="550.54.15", cuda_version="12.4", problems=("GPU 1: NVML error",)
    )
    cuda = {
        "flavour": "cuda-cu126",
        "cuda": "12.6",
        "torch": "2.13.0+cu126",
        "min_driver": "525.60.13",
        "reason": "",
    }
    text = "\n".join(_hardware_lines(hardware, cuda))
    assert "driver 550.54.15" in text and "compute capability 7.0" in text
    assert "torch 2.13.0+cu126 (base image cuda-cu126, driver ≥ 525.60.13)" in text
    assert "GPU 1: NVML error" in text
    refused = {"flavour": None, "reason": "a GPU of compute capability 3.7 is not supported"}
    assert "none: a GPU of compute capability 3.7" in "\n".join(_hardware_lines(hardware, refused))


def test_an_unreachable_engine_is_an_error_not_a_missing_toolkit(monkeypatch, tmp_path):
    from llm_installer.check.hardware import probe_docker

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    engine = probe_docker()
    assert not engine.available and engine.gpu_access is None and not engine.nvidia_runtime
    assert "No Docker engine answers" in engine.error
    line = _docker_line(_hardware(docker_error=engine.error))
    assert "not reachable" in line and "NVIDIA" not in line
