"""The CUDA line of torch for a host's driver and GPUs, and the exact torch build a base takes."""

from __future__ import annotations

import pytest

from llm_installer.build.base_images import (
    UnsupportedGpuError,
    choose_cuda_flavour,
    choose_flavour,
    flavour,
    flavours,
    install_flavour,
    matching_torch_wheels,
    render_base_dockerfile,
)
from llm_installer.build.buildenv import PipSettings, compile_settings

# (driver, compute capabilities) → row, as NVIDIA's and PyTorch's tables say (base-images/README.md).
CHOICES = {
    "RTX 3090 on 535": ("535.183.01", [(8, 6)], "cuda-cu126"),
    "RTX 4090 on 550 (8.9 runs 8.6 code)": ("550.54.15", [(8, 9)], "cuda-cu126"),
    "H100 on 570": ("570.86.10", [(9, 0)], "cuda-cu126"),
    "H200 on 580": ("580.159.03", [(9, 0)], "cuda-cu130"),
    "T4 on 580": ("580.65.06", [(7, 5)], "cuda-cu130"),
    "V100 on 580 (Volta: CUDA 12 only)": ("580.82.07", [(7, 0)], "cuda-cu126"),
    "GTX 1080 on 535 (6.1 runs 6.0 code)": ("535.54.03", [(6, 1)], "cuda-cu126"),
    "B200 on 580": ("580.82.07", [(10, 0)], "cuda-cu130"),
    "RTX 5090 on 580": ("580.82.07", [(12, 0)], "cuda-cu130"),
    "DGX Spark GB10 (12.1)": ("580.95.05", [(12, 1)], "cuda-cu130"),
    "two mixed Ampere/Hopper": ("550.54.15", [(8, 0), (9, 0)], "cuda-cu126"),
}
REFUSED = {
    "K80 (3.7)": (
        "470.256.02",
        [(3, 7)],
        "compute capability 3.7 is not supported by torch 2.13.0",
    ),
    "RTX 5090 on 570": ("570.133.07", [(12, 0)], "driver 570.133.07 is older than 580.65.06"),
    "A100 on 470": ("470.256.02", [(8, 0)], "driver 470.256.02 is older than 525.60.13"),
    "V100 beside B200": ("580.82.07", [(7, 0), (10, 0)], "no single CUDA build"),
}


@pytest.mark.parametrize("case", sorted(CHOICES))
def test_the_cuda_line_follows_driver_and_compute_capability(case):
    driver, capabilities, expected = CHOICES[case]
    assert choose_cuda_flavour("cuda", driver, capabilities).flavour.name == expected
    devel = choose_cuda_flavour("cuda-devel", driver, capabilities).flavour
    assert (
        devel.name == expected.replace("cuda-", "cuda-devel-")
        and devel.cuda == flavours()[expected].cuda
    )


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsupported_gpus_are_refused_with_the_reason(case):
    driver, capabilities, reason = REFUSED[case]
    choice = choose_cuda_flavour("cuda", driver, capabilities)
    assert choice.flavour is None and reason in choice.reason
    with pytest.raises(UnsupportedGpuError) as caught:
        choose_flavour("cuda", driver=driver, capabilities=capabilities)
    assert reason in caught.value.message and caught.value.exit_code == 32
    assert "driver" in caught.value.hint and "CUDA_VISIBLE_DEVICES" in caught.value.hint


def test_kinds_resolve_per_host_and_rows_by_name():
    assert flavour("cuda", driver="550.54.15", capabilities=[(8, 6)]).name == "cuda-cu126"
    assert flavour("cuda-cu130").name == "cuda-cu130"
    hardware = {"nvidia_driver": "550.54.15", "gpus": [{"compute_capability": [8, 9]}]}
    assert install_flavour(None, "cuda", False, hardware) == (flavours()["cuda-cu126"], False)
    assert install_flavour("cuda-devel", "cuda", False, hardware)[0].name == "cuda-devel-cu126"
    assert install_flavour("my/own:image", "cuda", False, hardware) == (
        flavours()["cuda-cu126"],
        True,
    )
    assert install_flavour(None, "cpu", False, hardware)[0].name == "cpu"


def test_every_cuda_row_pins_its_build_and_index():
    for row in flavours().values():
        text = render_base_dockerfile(row, os_image=row.os_image, torch_index=row.torch_index)
        assert f'pip install "torch=={row.torch_pin}" --index-url {row.torch_index}' in text
        runs = [line for line in text.splitlines() if line.startswith("RUN pip install")]
        assert not any(
            "--extra-index-url" in line for line in runs
        )  # torch never from a second index
        assert row.torch_index.endswith("/" + row.local_tag)
        if row.cuda:
            assert f"c.startswith('{row.cuda}') and '+cpu' not in v" in text
            assert ("nvcc --version" in text) == (row.kind == "cuda-devel")
            assert row.os_image.startswith(f"nvidia/cuda:{row.cuda}.") or row.kind in (
                "cuda",
                "cuda-vllm",
            )
        else:
            assert "sys.exit(0 if c is None" in text


def test_a_local_wheel_must_be_the_flavours_own_build(tmp_path):
    for name in (
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.13.0+cu130-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.13.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl",  # another Python
        "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl",  # PyPI's untagged build
        "torch-2.12.1+cu126-cp311-cp311-manylinux_2_28_x86_64.whl",  # another version
        "torchvision-0.28.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
    ):
        (tmp_path / name).write_bytes(b"")
    settings = PipSettings(find_links=(str(tmp_path),))
    names = {
        row: [p.name for p in matching_torch_wheels(settings, flavours()[row])]
        for row in flavours()
    }
    assert names["cpu"] == ["torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"]
    assert names["cuda-cu130"] == ["torch-2.13.0+cu130-cp311-cp311-manylinux_2_28_x86_64.whl"]
    assert names["cuda-cu126"] == [] and names["cuda-devel-cu126"] == []


def test_compile_settings_follow_the_host():
    hardware = {"gpus": [{"compute_capability": [9, 0]}, {"compute_capability": [8, 6]}], "cpu_cores": 32,
                "ram_available": 40 * 2**30}  # fmt: skip
    settings = compile_settings(
        ("accelerate", "mamba-ssm", "causal-conv1d"), hardware, "13.0", environ={}
    )
    assert settings.packages == (
        "causal-conv1d",
        "mamba-ssm",
    )  # causal-conv1d first: mamba-ssm uses it
    assert settings.arch_list == "8.6;9.0+PTX"
    assert settings.max_jobs == 5  # 40 GB / 8 GB per job, under the 32 cores
    small = compile_settings(
        ("flash-attn",), {"cpu_cores": 2, "ram_available": 100 * 2**30}, "12.6", environ={}
    )
    assert small.max_jobs == 2 and small.arch_list == "8.0;8.6;9.0+PTX"
    override = {"TORCH_CUDA_ARCH_LIST": "7.5", "LLM_INSTALLER_MAX_JOBS": "1"}
    assert compile_settings(("flash-attn",), hardware, "13.0", environ=override).max_jobs == 1
    assert compile_settings(("flash-attn",), hardware, "13.0", environ=override).arch_list == "7.5"
    assert compile_settings(("accelerate",), hardware, "13.0", environ={}) is None


def test_install_refuses_unsupported_gpus_before_downloading():
    from llm_installer.build.install import InstallOptions, choose_device
    from llm_installer.settings import Settings

    k80 = {
        "hardware": {
            "gpus": [{"compute_capability": [3, 7]}],
            "nvidia_driver": "470.256.02",
            "nvidia_runtime": True,
        }
    }
    with pytest.raises(UnsupportedGpuError, match="compute capability 3.7"):
        choose_device(k80, InstallOptions(device="cuda"), Settings())
    assert choose_device(k80, InstallOptions(), Settings()) == "cpu"  # auto: the GPU is not usable
    ampere = {
        "hardware": {
            **k80["hardware"],
            "gpus": [{"compute_capability": [8, 6]}],
            "nvidia_driver": "550.54.15",
        }
    }
    assert choose_device(ampere, InstallOptions(), Settings()) == "cuda"
