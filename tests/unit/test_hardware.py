"""The hardware probe on this machine (no GPU here) and its isolation of failing probes."""

from __future__ import annotations

import sys
import types

import pytest

from llm_installer.check import hardware
from llm_installer.check.hardware import Gpu, Hardware, probe_hardware


@pytest.fixture(scope="module")
def probed(tmp_path_factory) -> Hardware:
    return probe_hardware(tmp_path_factory.mktemp("models") / "not" / "yet" / "made")


def test_cpu_and_ram_are_positive(probed):
    assert probed.cpu_cores > 0
    assert probed.cpu_threads >= probed.cpu_cores
    assert probed.ram_total > 0
    assert 0 < probed.ram_available <= probed.ram_total
    assert probed.cpu_model


def test_no_nvidia_gpu_gives_an_empty_list(probed):
    if probed.gpus:
        pytest.skip("this machine has an NVIDIA GPU")
    assert probed.gpus == ()
    assert not probed.has_cuda
    assert probed.vram_total == 0


def test_docker_probe_answers_with_bools(probed):
    assert isinstance(probed.docker_available, bool)
    assert isinstance(probed.nvidia_runtime, bool)
    assert probed.docker_available or not probed.nvidia_runtime


def test_disk_is_measured_at_the_nearest_existing_parent(probed, tmp_path):
    path, total, free = hardware.disk_space(tmp_path / "a" / "b")
    assert path == str(tmp_path)
    assert 0 < free <= total
    assert probed.disk_free > 0


def test_a_failing_probe_does_not_break_the_others(monkeypatch, tmp_path):
    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(hardware, "probe_nvidia", broken)
    monkeypatch.setattr(hardware, "ram_bytes", broken)
    result = probe_hardware(tmp_path)
    assert result.gpus == ()
    assert result.ram_total == 0
    assert result.cpu_cores > 0
    assert result.disk_free > 0
    assert any("boom" in p for p in result.problems)


def test_missing_nvml_library_means_no_gpus(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml → ImportError
    assert hardware.probe_nvidia().gpus == ()


def test_nvml_without_driver_means_no_gpus(monkeypatch):
    class NVMLError(Exception):
        pass

    def no_driver():
        raise NVMLError("Driver Not Loaded")

    fake = types.SimpleNamespace(NVMLError=NVMLError, nvmlInit=no_driver)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert hardware.probe_nvidia().gpus == ()


def test_nvml_gpus_are_read(monkeypatch):
    class NVMLError(Exception):
        pass

    memory = types.SimpleNamespace(total=24 * 2**30, free=23 * 2**30)
    fake = types.SimpleNamespace(
        NVMLError=NVMLError,
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetMemoryInfo=lambda h: memory,
        nvmlDeviceGetName=lambda h: b"NVIDIA GeForce RTX 4090",
        nvmlDeviceGetCudaComputeCapability=lambda h: (8, 9),
        nvmlSystemGetDriverVersion=lambda: "550.54.14",
        nvmlSystemGetCudaDriverVersion=lambda: 12040,
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    found = hardware.probe_nvidia()
    assert found.gpus[1] == Gpu(1, "NVIDIA GeForce RTX 4090", 24 * 2**30, 23 * 2**30, (8, 9))
    assert (found.driver, found.cuda) == ("550.54.14", "12.4")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse2 avx2 avx512f avx512_bf16 amx_tile", True),
        ("fpu sse2 avx2 amx_bf16 amx_tile amx_int8", True),
        ("fpu sse2 avx2 avx512f avx512_vnni", False),  # AVX-512 without bf16: fp32
        ("fp asimd bf16", False),  # an Arm core's bf16 is not what the runtime asks for
    ],
)
def test_cpu_bf16_reads_the_flags_line(flags, expected):
    cpuinfo = f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
    assert hardware.cpu_bf16(cpuinfo) is expected
    assert hardware.cpu_bf16("processor\t: 0\n") is False  # no flags line (macOS has no file)
